"""Which input columns a fitted pipeline relies on, measured on held-out rows by permutation."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.inspection import permutation_importance
from sklearn.pipeline import Pipeline

from tasks.errors import MlopsError


def permutation_importances(
    pipeline: Pipeline,
    X: pd.DataFrame,
    y: np.ndarray,
    seed: int,
    n_repeats: int = 5,
    max_rows: int = 5000,
) -> dict[str, float]:
    """Mean drop in ROC AUC when one raw input column is shuffled, per column, largest first.

    Columns are the pipeline's raw inputs (the time column counts once for all its derived parts), so the
    numbers speak of data a user knows, not of encoded columns.

    Args:
        pipeline: A fitted pipeline taking ``X``.
        X: Raw model inputs of held-out rows.
        y: Their 0/1 labels.
        seed: Seeds both the row subsample and the shuffles.
        n_repeats: Shuffles per column.
        max_rows: Rows used at most; a larger ``X`` is subsampled without replacement.

    Raises:
        MlopsError: lengths differ or the labels hold a single class.
    """
    labels = np.asarray(y).astype("int64")
    if len(X) != labels.size:
        raise MlopsError(f"{len(X)} rows of inputs but {labels.size} labels")
    rows = _subsample(len(X), max_rows, seed)
    sample, sample_labels = X.iloc[rows].reset_index(drop=True), labels[rows]
    if np.unique(sample_labels).size < 2:
        raise MlopsError("permutation importance needs both classes among the labels")
    result = permutation_importance(
        pipeline, sample, sample_labels, scoring="roc_auc", n_repeats=n_repeats, random_state=seed
    )
    pairs = zip((str(c) for c in X.columns), (float(v) for v in result.importances_mean), strict=True)
    return dict(sorted(pairs, key=lambda kv: (-kv[1], kv[0])))


def _subsample(n: int, max_rows: int, seed: int) -> np.ndarray:
    """Sorted positions of at most ``max_rows`` rows, the same for the same seed."""
    if n <= max_rows:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=max_rows, replace=False))


def normalized_weights(importances: dict[str, float]) -> dict[str, float]:
    """Importances as weights summing to 1: negatives (noise) count as 0; all zero gives equal weights."""
    if not importances:
        return {}
    clipped = {name: max(float(value), 0.0) for name, value in importances.items()}
    total = sum(clipped.values())
    if total <= 0.0:
        return dict.fromkeys(clipped, 1.0 / len(clipped))
    return {name: value / total for name, value in clipped.items()}
