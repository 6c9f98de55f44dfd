"""The promotion gate: floors, guardrails and non-inferiority to the champion by a paired bootstrap.

``decide`` never moves anything: it returns a ``GateDecision`` and callers move aliases only when
``decision.applied and decision.promote``. Every reason is a sentence with the numbers behind it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tasks.errors import MlopsError
from tasks.usecase import GateSpec

METRICS = ("roc_auc", "average_precision")
# rows x resamples held in memory at once by the bootstrap (~8 MB of float64 per array)
_CHUNK_CELLS = 1_000_000


@dataclass(frozen=True)
class BootstrapResult:
    """Challenger minus champion on the same rows, and its percentile confidence interval.

    ``resamples`` counts the resamples that held both classes (the others have no defined metric).
    """

    diff: float
    low: float
    high: float
    resamples: int


def metric_with_counts(metric: str, y: np.ndarray, proba: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """ROC AUC or average precision of each resample given as row multiplicities, exactly as on the rows.

    A resample drawing row ``i`` k times is the original rows weighted by ``counts[:, i] = k``: sorting the
    scores once serves every resample, which is what makes a thousand resamples cheap.

    Args:
        metric: ``roc_auc`` or ``average_precision``.
        y: 0/1 labels, shape (n,).
        proba: Scores, shape (n,).
        counts: Row multiplicities per resample, shape (resamples, n).

    Returns:
        One value per resample; NaN where a resample lacks a class.

    Raises:
        MlopsError: unknown metric.
    """
    if metric not in METRICS:
        raise MlopsError(f"metric '{metric}' is not one of {', '.join(METRICS)}")
    order = np.argsort(proba, kind="stable")
    ranked = proba[order]
    starts = np.flatnonzero(np.r_[True, ranked[1:] != ranked[:-1]])  # first row of each distinct score
    weights = counts[:, order].astype("float64")
    positive = y[order].astype(bool)
    pos = np.add.reduceat(np.where(positive, weights, 0.0), starts, axis=1)
    neg = np.add.reduceat(np.where(positive, 0.0, weights), starts, axis=1)
    total_pos, total_neg = pos.sum(axis=1), neg.sum(axis=1)
    neg_below = np.cumsum(neg, axis=1) - neg
    with np.errstate(invalid="ignore", divide="ignore"):
        if metric == "roc_auc":
            # ties between a positive and a negative count one half
            value = (pos * (neg_below + 0.5 * neg)).sum(axis=1) / (total_pos * total_neg)
        else:
            # precision at each distinct threshold, weighted by the positives first reached there
            pos_below = np.cumsum(pos, axis=1) - pos
            caught = total_pos[:, None] - pos_below  # positives scored at or above each distinct score
            flagged = caught + (total_neg[:, None] - neg_below)
            precision = np.divide(caught, flagged, out=np.zeros_like(pos), where=flagged > 0)
            value = (pos * precision).sum(axis=1) / total_pos
    return np.where((total_pos > 0) & (total_neg > 0), value, np.nan)


def paired_bootstrap(
    y: np.ndarray,
    p_challenger: np.ndarray,
    p_champion: np.ndarray,
    metric: str,
    resamples: int,
    confidence: float,
    seed: int,
) -> BootstrapResult:
    """Paired percentile bootstrap of ``metric(challenger) - metric(champion)``.

    Each resample draws row indices once and scores both models on those same rows, so the interval reflects
    the difference between models, not the (much larger) noise of which rows were drawn.

    Raises:
        MlopsError: unknown metric, mismatched lengths, a single class, or no resample with both classes.
    """
    labels, challenger, champion = _paired_arrays(y, p_challenger, p_champion, metric)
    n = labels.size
    diff = float(_paired_diff(metric, labels, challenger, champion, np.ones((1, n), dtype="int64"))[0])
    rng = np.random.default_rng(seed)
    chunks = (_resample_counts(rng, size, n) for size in _chunk_sizes(resamples, n))
    values = np.concatenate([_paired_diff(metric, labels, challenger, champion, counts) for counts in chunks])
    values = values[~np.isnan(values)]
    if values.size == 0:
        raise MlopsError("no bootstrap resample held both classes: too few evaluation rows")
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(values, [tail, 1.0 - tail])
    return BootstrapResult(diff=diff, low=float(low), high=float(high), resamples=int(values.size))


def _paired_diff(
    metric: str, y: np.ndarray, challenger: np.ndarray, champion: np.ndarray, counts: np.ndarray
) -> np.ndarray:
    return metric_with_counts(metric, y, challenger, counts) - metric_with_counts(metric, y, champion, counts)


def _paired_arrays(
    y: np.ndarray, p_challenger: np.ndarray, p_champion: np.ndarray, metric: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if metric not in METRICS:
        raise MlopsError(f"bootstrap metric '{metric}' is not one of {', '.join(METRICS)}")
    labels = np.asarray(y).astype("int64")
    challenger, champion = np.asarray(p_challenger, dtype="float64"), np.asarray(p_champion, dtype="float64")
    if not labels.size or not (labels.shape == challenger.shape == champion.shape):
        raise MlopsError(f"labels {labels.shape}, challenger {challenger.shape}, champion {champion.shape} differ")
    if np.unique(labels).size < 2:
        raise MlopsError(f"all {labels.size} evaluation rows have one class: the comparison is undefined")
    return labels, challenger, champion


def _chunk_sizes(resamples: int, n: int) -> list[int]:
    """Resamples per chunk so that a chunk's arrays stay a few MB whatever ``n`` is."""
    step = max(1, _CHUNK_CELLS // max(n, 1))
    return [min(step, resamples - start) for start in range(0, resamples, step)]


def _resample_counts(rng: np.random.Generator, size: int, n: int) -> np.ndarray:
    """How often each row is drawn in each of ``size`` resamples of ``n`` rows with replacement."""
    drawn = rng.integers(0, n, size=(size, n)) + (np.arange(size)[:, None] * n)
    return np.bincount(drawn.ravel(), minlength=size * n).reshape(size, n)


@dataclass(frozen=True)
class GateDecision:
    """Outcome of the gate.

    Attributes:
        promote: Whether the challenger should become champion under this mode (``disabled``: always).
        mode: ``enforce``, ``dry_run``, ``disabled`` or ``approval`` (as enforce, then a person decides).
        reasons: A summary sentence first, then one sentence per check with its numbers.
        challenger: Challenger metrics the checks read.
        champion: Champion metrics on the same rows, or None for the first model.
        bootstrap: Paired bootstrap of the gate metric, or None for the first model.
        checks: Pass/fail per check name.
        would_promote: What ``enforce`` would decide (all checks pass), whatever the mode.
        applied: Whether callers act on ``promote``; False in ``dry_run``, where nothing moves.
    """

    promote: bool
    mode: str
    reasons: tuple[str, ...]
    challenger: dict[str, float]
    champion: dict[str, float] | None
    bootstrap: BootstrapResult | None
    checks: dict[str, bool]
    would_promote: bool
    applied: bool

    def to_dict(self) -> dict:
        """JSON-safe form (plain bools, floats, strings, lists, dicts)."""
        return {
            "promote": bool(self.promote),
            "mode": self.mode,
            "reasons": list(self.reasons),
            "challenger": {k: float(v) for k, v in self.challenger.items()},
            "champion": None if self.champion is None else {k: float(v) for k, v in self.champion.items()},
            "bootstrap": None if self.bootstrap is None else _bootstrap_dict(self.bootstrap),
            "checks": {k: bool(v) for k, v in self.checks.items()},
            "would_promote": bool(self.would_promote),
            "applied": bool(self.applied),
        }


def _bootstrap_dict(result: BootstrapResult) -> dict:
    return {
        "diff": float(result.diff),
        "low": float(result.low),
        "high": float(result.high),
        "resamples": int(result.resamples),
    }


Check = tuple[str, bool, str]


def _metric(metrics: dict[str, float], name: str) -> float:
    if name not in metrics:
        raise MlopsError(f"challenger metrics lack '{name}', which the gate checks")
    return float(metrics[name])


def _floor_checks(gate: GateSpec, metrics: dict[str, float]) -> list[Check]:
    """Each configured floor: the challenger's metric must reach it (NaN never does)."""
    checks = []
    for name, floor in gate.floors.items():
        value = _metric(metrics, name)
        ok = value >= floor
        verdict = "meets" if ok else "is below"
        checks.append((f"floor_{name}", ok, f"{name} {value:.3f} {verdict} the floor {floor:.3f}"))
    return checks


def _ceiling(name: str, label: str, value: float, limit: float, unit: str = "") -> Check:
    ok = value <= limit
    verdict = "is within" if ok else "is above"
    return name, ok, f"{label} {value:.3f}{unit} {verdict} the maximum {limit:.3f}{unit}"


def _guardrail_checks(gate: GateSpec, metrics: dict[str, float], model_megabytes: float) -> list[Check]:
    """Evaluation size, probability quality and model size limits (only those configured)."""
    rows = int(_metric(metrics, "rows"))
    enough = rows >= gate.min_evaluation_rows
    relation = "at least" if enough else "fewer than"
    reason = f"evaluated on {rows} rows, {relation} the minimum {gate.min_evaluation_rows}"
    checks: list[Check] = [("min_evaluation_rows", enough, reason)]
    if gate.max_brier is not None:
        checks.append(_ceiling("max_brier", "brier", _metric(metrics, "brier"), gate.max_brier))
    if gate.max_calibration_error is not None:
        error = _metric(metrics, "calibration_error")
        checks.append(_ceiling("max_calibration_error", "calibration_error", error, gate.max_calibration_error))
    if gate.max_model_megabytes is not None:
        checks.append(_ceiling("max_model_megabytes", "model size", model_megabytes, gate.max_model_megabytes, " MB"))
    return checks


def _non_inferiority_check(gate: GateSpec, bootstrap: BootstrapResult) -> Check:
    """Non-inferior iff the lower confidence bound of challenger - champion is at least -margin."""
    bound = -gate.non_inferiority_margin
    ok = bootstrap.low >= bound
    return (
        "non_inferior",
        ok,
        f"{gate.metric} challenger - champion is {bootstrap.diff:+.4f} ({gate.confidence:.0%} CI {bootstrap.low:+.4f}"
        f" to {bootstrap.high:+.4f}, {bootstrap.resamples} paired resamples); the lower bound is "
        f"{'at or above' if ok else 'below'} -margin {bound:+.4f}: {'non-inferior' if ok else 'inferior'}",
    )


def _summary(mode: str, outcomes: list[bool]) -> str:
    """First reason: what happens under ``mode`` and what enforce would do."""
    passed = all(outcomes)
    verdict = "every check passed" if passed else f"{outcomes.count(False)} of {len(outcomes)} checks failed"
    would = "promote" if passed else "reject"
    if mode == "disabled":
        return f"gate disabled: promoted without checks (enforce would {would}: {verdict})"
    if mode == "dry_run":
        return f"dry run, nothing moves: enforce would {would} ({verdict})"
    if mode == "approval" and passed:
        return f"passed the gate, promoted only once a person approves: {verdict}"
    return f"{'promoted' if passed else 'rejected'}: {verdict}"


def decide(
    gate: GateSpec,
    challenger_metrics: dict[str, float],
    champion_metrics: dict[str, float] | None,
    bootstrap: BootstrapResult | None,
    model_megabytes: float,
) -> GateDecision:
    """Judge a challenger: floors and guardrails always, non-inferiority when a champion exists.

    Raises:
        MlopsError: a champion without a bootstrap (or the reverse), or a checked metric is missing.
    """
    if (champion_metrics is None) != (bootstrap is None):
        raise MlopsError("the gate needs both champion metrics and a paired bootstrap, or neither (first model)")
    checks = _floor_checks(gate, challenger_metrics) + _guardrail_checks(gate, challenger_metrics, model_megabytes)
    if bootstrap is not None:
        checks.append(_non_inferiority_check(gate, bootstrap))
    passed = all(ok for _, ok, _ in checks)
    details = [reason for _, _, reason in checks]
    if bootstrap is None:
        details.append("no champion yet: the first model is judged on floors and guardrails only")
    return GateDecision(
        promote=passed or gate.mode == "disabled",
        mode=gate.mode,
        reasons=(_summary(gate.mode, [ok for _, ok, _ in checks]), *details),
        challenger=dict(challenger_metrics),
        champion=None if champion_metrics is None else dict(champion_metrics),
        bootstrap=bootstrap,
        checks={name: ok for name, ok, _ in checks},
        would_promote=passed,
        applied=gate.mode != "dry_run",
    )


def reject_for_data(gate: GateSpec, rows: int) -> GateDecision:
    """The decision when too few labelled rows exist that neither model was trained on: nothing can be compared.

    In ``disabled`` mode the challenger is still promoted (the gate is off); otherwise it is not.
    """
    reason = (
        f"only {rows:,} labelled rows that neither model was trained on; the gate needs "
        f"{gate.min_evaluation_rows:,} (land and ingest a later month, then register again)"
    )
    applied = gate.mode != "dry_run"
    promote = gate.mode == "disabled"
    summary = "gate disabled: promoted without evaluation" if promote else "rejected: not enough evaluation data"
    return GateDecision(
        promote=promote,
        mode=gate.mode,
        reasons=(summary, reason),
        challenger={"rows": float(rows)},
        champion=None,
        bootstrap=None,
        checks={"evaluation_rows": False},
        would_promote=False,
        applied=applied,
    )
