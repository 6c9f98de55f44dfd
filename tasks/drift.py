"""The decisions of the drift check: per-column verdicts, importance weighting, window decision, debounce.

The numbers (window counts on the sketch's cells, statistics, calibration) are in ``tasks.drift_stats``; the
names a caller needs from there are re-exported here, so ``tasks.drift`` is the whole public surface.

Decision rule, per input (and for the model's scores, named ``prediction``): it drifted when its effect size
(PSI / Jensen–Shannon / L-infinity, from ``DriftSpec``) is above its threshold, which is the config override
if any, else ``max(calibrated, min_effect)``. ``calibrate`` simulates no-drift windows of the current
window's size (parametric bootstrap of both samples from the reference frequencies) and takes the
``1 - false_alarm_rate`` quantile; the floor keeps large windows from alarming on shifts too small to act
on. The two-sample chi-square p-value is reported, never used to decide. A window has no decision below
``min_rows`` rows; otherwise it drifted when the training-importance share of its drifted inputs reaches
``drift_share``, or its scores drifted and ``prediction_triggers`` is on. ``should_retrain`` debounces.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Literal

from tasks.contract import ReferenceSketch
from tasks.drift_stats import (
    PREDICTION,
    STATISTICS,
    ColumnCounts,
    CurrentProfile,
    calibrate,
    cell_table,
    chi_square_two_sample,
    current_cells,
    current_profile,
    effect_size,
    reference_cells,
    sketched_columns,
    statistic_for,
)
from tasks.errors import MlopsError
from tasks.explain import normalized_weights
from tasks.serialization import json_safe
from tasks.usecase import DriftSpec

__all__ = [
    "PREDICTION",
    "ColumnCounts",
    "CurrentProfile",
    "FeatureDrift",
    "RetrainDecision",
    "WindowDrift",
    "calibrate",
    "cell_table",
    "check_drift",
    "compare",
    "current_profile",
    "decide",
    "drift_score",
    "feature_weights",
    "should_retrain",
]
_UNSEEN_EXAMPLES = 5


Kind = Literal["numeric", "categorical", "prediction"]


@dataclass(frozen=True)
class FeatureDrift:
    """The verdict on one input (or on the scores, ``kind == "prediction"``) in one window.

    ``drifted`` is None when the window had too few rows to decide; ``threshold_source`` says where the
    threshold came from: ``calibrated``, ``min_effect`` (the floor was higher) or ``override``.
    """

    feature: str
    kind: Kind
    statistic: str
    value: float
    threshold: float | None
    drifted: bool | None
    p_value: float | None
    rows: int
    null_rate: float
    reference_null_rate: float
    unseen_share: float
    weight: float = 0.0
    threshold_source: str = "calibrated"
    statistics: dict[str, float] = field(default_factory=dict)
    unseen_examples: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        """JSON-safe form: NaN and infinities as None, tuples as lists."""
        return json_safe(asdict(self))


@dataclass(frozen=True)
class WindowDrift:
    """The verdict on one window: per-input results, scores, importance-weighted share, decision and why."""

    rows: int
    features: tuple[FeatureDrift, ...]
    prediction: FeatureDrift | None
    score: float | None
    drift_share: float
    drifted: bool | None
    reason: str

    def to_dict(self) -> dict:
        return json_safe(asdict(self))


@dataclass(frozen=True)
class RetrainDecision:
    retrain: bool
    reason: str

    def to_dict(self) -> dict:
        return asdict(self)


# ---- per-column verdicts, weighting, window decision


def compare(
    profile: CurrentProfile, sketch: ReferenceSketch, spec: DriftSpec, calibrated: Mapping[str, float]
) -> tuple[FeatureDrift, ...]:
    """Every column's statistics and verdict (the scores last, when profiled); weights are set by ``decide``.

    Args:
        profile: Counts of the window.
        sketch: The reference the counts were taken on.
        spec: Statistics, floors, overrides and ``min_rows``.
        calibrated: ``calibrate``'s thresholds for this window's size (a column without one gets no verdict).

    Raises:
        MlopsError: a threshold override names a column the sketch does not have.
    """
    columns = sketched_columns(sketch)
    unknown = sorted(set(spec.thresholds) - set(columns))
    if unknown:
        raise MlopsError(f"drift threshold override(s) for unknown column(s): {', '.join(unknown)}")
    counts = {**profile.numeric, **profile.categorical}
    if profile.prediction is not None:
        counts[PREDICTION] = profile.prediction
    sufficient = profile.rows >= spec.min_rows
    results = []
    for name, (kind, column) in columns.items():
        if name not in counts:
            continue
        ref, cur = reference_cells(column, sketch.rows), current_cells(counts[name])
        statistic = statistic_for(kind, spec)
        values = {stat: float(effect_size(stat, ref, cur)) for stat in STATISTICS}
        chi2, p_value = chi_square_two_sample(ref, cur)
        threshold, source = _threshold(name, statistic, calibrated, spec)
        total = int(cur.sum())
        unseen = counts[name].unseen_values
        results.append(
            FeatureDrift(
                feature=name,
                kind=kind,
                statistic=statistic,
                value=values[statistic],
                threshold=threshold,
                drifted=bool(values[statistic] > threshold) if sufficient and threshold is not None else None,
                p_value=p_value,
                rows=total,
                null_rate=counts[name].nulls / total if total else 0.0,
                reference_null_rate=column.null_rate,
                unseen_share=counts[name].unseen / total if total else 0.0,
                threshold_source=source,
                statistics={**values, "chi_square": chi2},
                unseen_examples=tuple(sorted(unseen, key=lambda k: (-unseen[k], k))[:_UNSEEN_EXAMPLES]),
            )
        )
    return tuple(results)


def _threshold(name: str, statistic: str, calibrated: Mapping[str, float], spec: DriftSpec) -> tuple[float | None, str]:
    if name in spec.thresholds:
        return spec.thresholds[name], "override"
    if name not in calibrated:
        return None, "calibrated"
    floor = spec.min_effect.get(statistic, 0.0)
    return (floor, "min_effect") if floor > calibrated[name] else (calibrated[name], "calibrated")


def feature_weights(importances: Mapping[str, float], features: Iterable[str]) -> dict[str, float]:
    """Training importances of the monitored inputs as weights summing to 1 (negatives count as 0).

    No importances at all gives equal weights; importances where no monitored input matters give zeros, so
    drift in inputs the model does not use never retrains it.
    """
    names = list(features)
    if not importances:
        return dict.fromkeys(names, 1.0 / len(names)) if names else {}
    restricted = {name: max(float(importances.get(name, 0.0)), 0.0) for name in names}
    if sum(restricted.values()) <= 0.0:
        return dict.fromkeys(names, 0.0)
    return normalized_weights(restricted)


def drift_score(results: Sequence[FeatureDrift], weights: Mapping[str, float]) -> float | None:
    """Weight share of the drifted inputs among the inputs with a verdict (None when none has one)."""
    decided = [r for r in results if r.drifted is not None and r.kind != "prediction"]
    if not decided:
        return None
    total = sum(weights.get(r.feature, 0.0) for r in decided)
    drifted = sum(weights.get(r.feature, 0.0) for r in decided if r.drifted)
    return drifted / total if total > 0 else 0.0


def decide(results: Sequence[FeatureDrift], rows: int, weights: Mapping[str, float], spec: DriftSpec) -> WindowDrift:
    """The window's decision from its per-column results (see the module doc for the rule)."""
    features = tuple(replace(r, weight=weights.get(r.feature, 0.0)) for r in results if r.kind != "prediction")
    prediction = next((r for r in results if r.kind == "prediction"), None)
    score = drift_score(features, weights)
    if rows < spec.min_rows or score is None:
        return WindowDrift(rows, features, prediction, None, spec.drift_share, None, f"insufficient data: {rows} rows")
    names = ", ".join(r.feature for r in features if r.drifted) or "none"
    reasons = [f"weighted drift {score:.2f} {'>=' if score >= spec.drift_share else '<'} {spec.drift_share:.2f}"]
    reasons[0] += f" (drifted: {names})"
    scores_drifted = prediction is not None and bool(prediction.drifted) and spec.prediction_triggers
    if scores_drifted:
        reasons.append(f"scores drifted ({prediction.statistic} {prediction.value:.3f} > {prediction.threshold:.3f})")
    drifted = score >= spec.drift_share or scores_drifted
    return WindowDrift(rows, features, prediction, score, spec.drift_share, drifted, "; ".join(reasons))


def check_drift(
    profile: CurrentProfile, sketch: ReferenceSketch, spec: DriftSpec, importances: Mapping[str, float]
) -> WindowDrift:
    """Calibrate for this window's size, judge every column, weight by importance and decide."""
    calibrated = {}
    if profile.rows >= spec.min_rows:
        quantile = 1.0 - spec.false_alarm_rate
        calibrated = calibrate(sketch, profile.rows, spec.resamples, spec.seed, quantile, spec=spec)
    results = compare(profile, sketch, spec, calibrated)
    weights = feature_weights(importances, [*sketch.numeric, *sketch.categorical])
    return decide(results, profile.rows, weights, spec)


# ---- debounce


def should_retrain(
    history: Sequence[bool | None],
    k: int,
    n: int,
    last_retrain_at_index: int | None = None,
    cooldown_windows: int = 0,
) -> RetrainDecision:
    """Whether the latest window (``history[-1]``, oldest first) warrants a retraining request.

    Yes only when the latest window drifted, at least ``k`` of the last ``n`` windows drifted (a window
    without a decision, None, fills a slot without counting), and the latest window is more than
    ``cooldown_windows`` windows after the one that requested the last retrain. Windows up to that one are
    never counted again: they were judged against the previous model's reference.

    Raises:
        MlopsError: ``k`` or ``n`` out of ``1 <= k <= n``, or a retrain index beyond the history.
    """
    if not 1 <= k <= n:
        raise MlopsError(f"debounce needs 1 <= k <= n, got k={k}, n={n}")
    latest = len(history) - 1
    if last_retrain_at_index is not None and not 0 <= last_retrain_at_index <= latest:
        raise MlopsError(f"last retrain at window {last_retrain_at_index} is outside the {len(history)} windows")
    if latest < 0:
        return RetrainDecision(False, "no window yet")
    if last_retrain_at_index is not None and latest - last_retrain_at_index <= cooldown_windows:
        return RetrainDecision(False, f"cooldown: {latest - last_retrain_at_index} of {cooldown_windows} windows")
    if history[-1] is None:
        return RetrainDecision(False, "latest window has insufficient data")
    if not history[-1]:
        return RetrainDecision(False, "latest window did not drift")
    start = 0 if last_retrain_at_index is None else last_retrain_at_index + 1
    drifted = sum(1 for h in history[start:][-n:] if h)
    verdict = "retrain" if drifted >= k else "wait"
    return RetrainDecision(drifted >= k, f"{verdict}: {drifted} of the last {n} windows drifted (need {k})")
