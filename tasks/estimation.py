"""Performance estimated from scores alone (confidence-based performance estimation, CBPE) and business value.

At training, an isotonic map from the model's score to the observed positive rate is fitted on the validation
split. On a scored window without labels, each row's calibrated probability ``p_i`` is read as the chance its
label is 1. Then:

- the expected confusion matrix at the threshold is ``E[tp] = sum p_i [s_i >= t]``, ``E[fp] = sum (1 - p_i)
  [s_i >= t]`` (and so on); precision, recall and the value per cell follow from it;
- the expected ROC AUC is the expected count of correctly ordered (positive, negative) pairs over the expected
  count of such pairs: ``sum_{i != j} p_i (1 - p_j) 1[s_i > s_j] / sum_{i != j} p_i (1 - p_j)`` (ties half),
  computed in one sort;
- the KPI (recall in the top fraction) is the expected positives among the top ``k`` over all expected positives.

Intervals: ``resamples`` label vectors are drawn, each label independently ``Bernoulli(p_i)``; every metric is
computed on each draw against the fixed scores, and the interval is the central ``confidence`` quantile range
of the draws. It is the spread labels would have *if the calibration still holds*: it does not cover a
changed relation between inputs and label (concept drift), which no label-free estimate can see.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from itertools import pairwise

import numpy as np
from sklearn.isotonic import IsotonicRegression

from tasks.errors import MlopsError
from tasks.usecase import KpiSpec

CELLS = ("tp", "fp", "fn", "tn")
_DRAW_CELLS = 4_000_000
ESTIMATED_METRICS = ("roc_auc", "precision", "recall", "positive_rate", "base_rate", "kpi")


@dataclass(frozen=True)
class CalibrationMap:
    """A monotone step map score -> probability, linear between its knots (as sklearn's isotonic predict)."""

    knots_x: tuple[float, ...]
    knots_y: tuple[float, ...]
    rows: int

    def apply(self, scores: np.ndarray) -> np.ndarray:
        return np.interp(np.asarray(scores, dtype="float64"), self.knots_x, self.knots_y)

    def to_dict(self) -> dict:
        return {"method": "isotonic", **asdict(self)}


def fit_calibration(y: np.ndarray, scores: np.ndarray) -> CalibrationMap:
    """Isotonic regression of the labels on the scores (clipped outside the fitted range).

    Raises:
        MlopsError: fewer than two classes or mismatched inputs.
    """
    y = np.asarray(y)
    s = np.asarray(scores, dtype="float64")
    if y.shape != s.shape or y.ndim != 1 or np.unique(y).size < 2:
        raise MlopsError("a calibration map needs 1-d labels of both classes and scores of the same length")
    iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(s, y.astype("float64"))
    return CalibrationMap(
        knots_x=tuple(float(v) for v in iso.X_thresholds_),
        knots_y=tuple(float(v) for v in iso.y_thresholds_),
        rows=int(y.size),
    )


def calibration_from_dict(data: Mapping) -> CalibrationMap:
    """The map logged with a model version.

    Raises:
        MlopsError: not an isotonic map, or knots of unequal length / unsorted.
    """
    if data.get("method") != "isotonic":
        raise MlopsError(f"unknown calibration method {data.get('method')!r} (expected 'isotonic')")
    x, y = tuple(map(float, data["knots_x"])), tuple(map(float, data["knots_y"]))
    if len(x) != len(y) or not x or any(b < a for a, b in pairwise(x)):
        raise MlopsError("calibration map knots must be non-empty, of equal length, and sorted")
    return CalibrationMap(knots_x=x, knots_y=y, rows=int(data.get("rows", 0)))


@dataclass(frozen=True)
class Estimate:
    """Point estimates and their intervals for one window, plus the expected confusion matrix."""

    rows: int
    metrics: dict[str, float]
    intervals: dict[str, tuple[float, float]]
    confusion: dict[str, float]
    value: dict[str, float] | None
    value_interval: tuple[float, float] | None
    resamples: int
    confidence: float

    def to_dict(self) -> dict:
        return {
            "rows": self.rows,
            "metrics": self.metrics,
            "intervals": {k: list(v) for k, v in self.intervals.items()},
            "confusion": self.confusion,
            "value": self.value,
            "value_interval": None if self.value_interval is None else list(self.value_interval),
            "resamples": self.resamples,
            "confidence": self.confidence,
            "method": "CBPE: calibrated probabilities; interval = quantiles over labels drawn Bernoulli(p)",
        }


def expected_auc(scores: np.ndarray, proba: np.ndarray) -> float:
    """Expected correctly ordered (positive, negative) pairs over expected pairs; ties count one half."""
    s = np.asarray(scores, dtype="float64")
    p = np.asarray(proba, dtype="float64")
    order = np.argsort(s, kind="stable")
    s, p = s[order], p[order]
    q = 1.0 - p
    # negatives strictly below each row, plus half of the tied rows' negatives other than the row itself
    uniq, start = np.unique(s, return_index=True)
    group_q = np.add.reduceat(q, start) if s.size else np.array([])
    below = np.concatenate(([0.0], np.cumsum(group_q)[:-1]))
    group = np.searchsorted(uniq, s)
    tied_others = group_q[group] - q
    numerator = float(np.sum(p * (below[group] + 0.5 * tied_others)))
    pairs = float(p.sum() * q.sum() - np.sum(p * q))
    return numerator / pairs if pairs > 0 else math.nan


def _midranks(scores: np.ndarray) -> np.ndarray:
    order = np.argsort(scores, kind="stable")
    s = scores[order]
    uniq, start, counts = np.unique(s, return_index=True, return_counts=True)
    mid = start + (counts + 1) / 2.0  # 1-based average rank of each tie group
    ranks = np.empty(s.size)
    ranks[order] = mid[np.searchsorted(uniq, s)]
    return ranks


def _sampled_metrics(
    ranks: np.ndarray, draws: np.ndarray, flagged: np.ndarray, top: np.ndarray, payoff: Mapping[str, float] | None
) -> dict[str, np.ndarray]:
    """Each metric on each row of ``draws`` (resamples x rows of 0/1 labels) against the fixed scores' ranks."""
    n = ranks.size
    pos = draws.sum(axis=1)
    neg = n - pos
    with np.errstate(divide="ignore", invalid="ignore"):
        auc = (draws @ ranks - pos * (pos + 1) / 2.0) / (pos * neg)
        tp = draws @ flagged.astype("float64")
        fp = flagged.sum() - tp
        fn = pos - tp
        tn = neg - fp
        out = {
            "roc_auc": auc,
            "precision": np.where(flagged.sum() > 0, tp / max(int(flagged.sum()), 1), 0.0),
            "recall": tp / pos,
            "positive_rate": np.full(draws.shape[0], flagged.mean()),
            "base_rate": pos / n,
            "kpi": (draws @ top.astype("float64")) / pos,
        }
    if payoff is not None:
        out["value"] = sum(payoff[c] * v for c, v in zip(CELLS, (tp, fp, fn, tn), strict=True))
    return out


def estimate_performance(
    scores: np.ndarray,
    calibration: CalibrationMap,
    threshold: float,
    kpi: KpiSpec,
    *,
    payoff: Mapping[str, float] | None = None,
    resamples: int = 200,
    confidence: float = 0.9,
    seed: int = 0,
) -> Estimate:
    """The window's expected metrics at ``threshold`` from its scores alone, with sampled intervals.

    Raises:
        MlopsError: no scores, or scores that are not finite.
    """
    s = np.asarray(scores, dtype="float64")
    if s.size == 0 or not np.isfinite(s).all():
        raise MlopsError("performance estimation needs at least one finite score")
    p = calibration.apply(s)
    flagged = s >= threshold
    k = max(1, math.ceil(kpi.top_fraction * s.size))
    top = np.zeros(s.size, dtype=bool)
    top[np.argsort(-s, kind="stable")[:k]] = True
    cells = expected_confusion(s, p, threshold)
    positives = float(p.sum())
    point = {
        "roc_auc": expected_auc(s, p),
        "precision": cells["tp"] / float(flagged.sum()) if flagged.any() else 0.0,
        "recall": cells["tp"] / positives if positives > 0 else math.nan,
        "positive_rate": float(flagged.mean()),
        "base_rate": positives / s.size,
        "kpi": float(p[top].sum() / positives) if positives > 0 else math.nan,
    }
    rng = np.random.default_rng(seed)
    ranks = _midranks(s)
    # label draws in blocks of at most ~4M cells: a 1M-row window never holds resamples x rows in memory
    block = max(1, _DRAW_CELLS // s.size)
    parts = []
    for start in range(0, resamples, block):
        draws = (rng.random((min(block, resamples - start), s.size)) < p).astype("float64")
        parts.append(_sampled_metrics(ranks, draws, flagged, top, payoff))
    sampled = {m: np.concatenate([part[m] for part in parts]) for m in parts[0]}
    low, high = (1.0 - confidence) / 2.0, (1.0 + confidence) / 2.0

    def band(values: np.ndarray) -> tuple[float, float]:
        finite = values[np.isfinite(values)]
        if finite.size == 0:
            return (math.nan, math.nan)
        return (float(np.quantile(finite, low)), float(np.quantile(finite, high)))

    value = None if payoff is None else window_value(cells, payoff)
    return Estimate(
        rows=int(s.size),
        metrics=point,
        intervals={m: band(sampled[m]) for m in ESTIMATED_METRICS},
        confusion=cells,
        value=value,
        value_interval=None if payoff is None else band(sampled["value"]),
        resamples=resamples,
        confidence=confidence,
    )


def expected_confusion(scores: np.ndarray, proba: np.ndarray, threshold: float) -> dict[str, float]:
    """Expected counts of each confusion-matrix cell of the decision ``score >= threshold``."""
    flagged = np.asarray(scores) >= threshold
    p = np.asarray(proba, dtype="float64")
    return {
        "tp": float(p[flagged].sum()),
        "fp": float((1.0 - p[flagged]).sum()),
        "fn": float(p[~flagged].sum()),
        "tn": float((1.0 - p[~flagged]).sum()),
    }


def window_value(confusion: Mapping[str, float], payoff: Mapping[str, float]) -> dict[str, float]:
    """Business value of a window: each confusion cell times its payoff; total and per scored row.

    Raises:
        MlopsError: a cell is missing from the confusion counts or from the payoff.
    """
    missing = [c for c in CELLS if c not in confusion or c not in payoff]
    if missing:
        raise MlopsError(f"value needs every confusion cell and its payoff; missing: {', '.join(missing)}")
    parts = {c: float(confusion[c]) * float(payoff[c]) for c in CELLS}
    rows = sum(float(confusion[c]) for c in CELLS)
    total = sum(parts.values())
    return {"total": total, "per_row": total / rows if rows else 0.0, **{f"value_{c}": v for c, v in parts.items()}}


def estimation_errors(estimated: Mapping[str, float], realized: Mapping[str, float]) -> dict[str, float]:
    """``realized - estimated`` for every metric both know (positive: the model did better than estimated)."""
    return {
        m: float(realized[m]) - float(estimated[m])
        for m in ESTIMATED_METRICS
        if m in realized and m in estimated and not math.isnan(float(estimated[m]))
    }


def estimated_drop(
    metrics: Mapping[str, float], holdout: float | None, metric: str, max_drop: float
) -> tuple[bool | None, str]:
    """Whether the estimated ``metric`` is more than ``max_drop`` under the model's holdout value, and why."""
    value = metrics.get(metric)
    if holdout is None or value is None or math.isnan(value):
        return None, f"no estimated {metric} or no holdout value to compare with"
    limit = holdout - max_drop
    if value < limit:
        return True, f"estimated {metric} {value:.4f} < holdout {holdout:.4f} - {max_drop:.4f}"
    return False, f"estimated {metric} {value:.4f} >= limit {limit:.4f}"


def estimate_history(results: Sequence[Mapping], window: str) -> tuple[list[bool | None], int | None]:
    """Estimated-drop flags of the drift results before ``window`` (oldest first) and the last request index."""
    earlier = sorted((r for r in results if r["window"] < window), key=lambda r: r["window"])
    marks = [(r.get("estimate") or {}).get("trigger") or {} for r in earlier]
    requested = [i for i, m in enumerate(marks) if m.get("retrain_requested")]
    return [m.get("dropped") for m in marks], (requested[-1] if requested else None)
