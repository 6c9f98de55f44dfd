"""Evaluation metrics of a binary scorer: ranking, probability quality, the thresholded decision, the KPI."""

from __future__ import annotations

import math

import numpy as np
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score

from tasks.errors import MlopsError
from tasks.usecase import KpiSpec


def _as_arrays(y_true: np.ndarray, proba: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Labels as int64 and scores as float64 of equal length.

    Raises:
        MlopsError: lengths differ, labels are not 0/1, or there are no rows.
    """
    raw = np.asarray(y_true)
    p = np.asarray(proba, dtype="float64")
    if raw.shape != p.shape or raw.ndim != 1:
        raise MlopsError(f"labels {raw.shape} and scores {p.shape} must be 1-d arrays of one length")
    if raw.size == 0:
        raise MlopsError("cannot evaluate on zero rows")
    if not np.isin(raw, (0, 1)).all():  # checked before casting, so 0.5 or a missing label is not read as 0
        raise MlopsError("labels must be 0 or 1")
    return raw.astype("int64"), p


def recall_at_top(y: np.ndarray, proba: np.ndarray, fraction: float) -> float:
    """Share of all positives found among the ``ceil(fraction * n)`` highest scores (ties by row order).

    Raises:
        MlopsError: no positive rows (the recall is undefined).
    """
    y, p = _as_arrays(y, proba)
    positives = int(y.sum())
    if positives == 0:
        raise MlopsError("recall at top is undefined without positive rows")
    k = max(1, math.ceil(fraction * y.size))
    top = np.argsort(-p, kind="stable")[:k]
    return float(y[top].sum() / positives)


def calibration_bins(y: np.ndarray, proba: np.ndarray, bins: int = 10) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean score, observed positive rate and row count of each non-empty equal-frequency bin.

    Bin edges are score quantiles, so every bin holds about ``n / bins`` rows even when scores crowd near 0;
    tied scores always share a bin (a constant scorer gets one bin, not noise from splitting its ties).
    """
    y, p = _as_arrays(y, proba)
    edges = np.quantile(p, np.linspace(0.0, 1.0, bins + 1))
    index = np.searchsorted(edges[1:-1], p, side="right")
    counts = np.bincount(index, minlength=bins)
    used = counts > 0
    mean_score = np.bincount(index, weights=p, minlength=bins)[used] / counts[used]
    rate = np.bincount(index, weights=y, minlength=bins)[used] / counts[used]
    return mean_score, rate, counts[used]


def expected_calibration_error(y: np.ndarray, proba: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error: row-weighted mean gap between score and observed rate over the bins."""
    mean_score, rate, counts = calibration_bins(y, proba, bins)
    return float(np.sum(counts * np.abs(rate - mean_score)) / counts.sum())


def confusion(y: np.ndarray, proba: np.ndarray, threshold: float) -> dict[str, int]:
    """Counts of the decision ``proba >= threshold`` against the labels."""
    y, p = _as_arrays(y, proba)
    flagged = p >= threshold
    return {
        "tn": int(((y == 0) & ~flagged).sum()),
        "fp": int(((y == 0) & flagged).sum()),
        "fn": int(((y == 1) & ~flagged).sum()),
        "tp": int(((y == 1) & flagged).sum()),
    }


def evaluate(y_true: np.ndarray, proba: np.ndarray, threshold: float, kpi: KpiSpec) -> dict[str, float]:
    """All evaluation metrics of one scored set of labelled rows.

    Returns:
        roc_auc, average_precision, log_loss, brier, precision and recall at ``threshold``, positive_rate
        (share flagged), calibration_error, kpi (recall among the top ``kpi.top_fraction``), rows, positives.

    Raises:
        MlopsError: the labels hold a single class (ranking metrics are undefined).
    """
    y, p = _as_arrays(y_true, proba)
    classes = np.unique(y)
    if classes.size < 2:
        raise MlopsError(f"all {y.size} evaluation rows have class {int(classes[0])}: need both 0 and 1")
    counts = confusion(y, p, threshold)
    flagged = counts["tp"] + counts["fp"]
    return {
        "roc_auc": float(roc_auc_score(y, p)),
        "average_precision": float(average_precision_score(y, p)),
        "log_loss": float(log_loss(y, np.clip(p, 1e-15, 1 - 1e-15), labels=[0, 1])),
        "brier": float(brier_score_loss(y, p)),
        "precision": counts["tp"] / flagged if flagged else 0.0,
        "recall": counts["tp"] / (counts["tp"] + counts["fn"]),
        "positive_rate": flagged / y.size,
        "calibration_error": expected_calibration_error(y, p),
        "kpi": recall_at_top(y, p, kpi.top_fraction),
        "rows": float(y.size),
        "positives": float(y.sum()),
    }
