"""Model-side feature transformers: small sklearn estimators the training pipeline is built from.

They are module-level classes with plain attributes (no lambdas, no closures), so a fitted pipeline pickles
and serializes with skops by naming these types as trusted.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin

TIME_PARTS = ("hour", "dayofweek", "month", "dayofyear", "minute_of_day")


def time_part(stamps: pd.Series, part: str) -> np.ndarray:
    """One calendar part of a datetime series as float64 (NaT gives NaN)."""
    values = stamps.dt.hour * 60 + stamps.dt.minute if part == "minute_of_day" else getattr(stamps.dt, part)
    return values.astype("float64").to_numpy()


class TimeParts(TransformerMixin, BaseEstimator):
    """Calendar parts (hour, day of week, ...) of one datetime column, as float columns (NaT gives NaN).

    Args:
        parts: Names from ``TIME_PARTS``, in output order.
    """

    def __init__(self, parts: Sequence[str] = ("hour", "dayofweek")):
        self.parts = parts

    def fit(self, X: pd.DataFrame, y: object = None) -> TimeParts:
        """Check the parts and remember the input column; nothing is learned from the data."""
        unknown = [p for p in self.parts if p not in TIME_PARTS]
        if unknown:
            raise ValueError(f"unknown time part(s): {', '.join(unknown)}; known: {', '.join(TIME_PARTS)}")
        frame = pd.DataFrame(X)
        if frame.shape[1] != 1:
            raise ValueError(f"TimeParts takes one datetime column, got {frame.shape[1]}")
        self.feature_names_in_ = np.asarray([str(frame.columns[0])], dtype=object)
        self.n_features_in_ = 1
        return self

    def transform(self, X: pd.DataFrame) -> np.ndarray:
        """One float column per part."""
        stamps = pd.to_datetime(pd.DataFrame(X).iloc[:, 0])
        columns = [time_part(stamps, p) for p in self.parts]
        return np.column_stack(columns) if columns else np.empty((len(stamps), 0))

    def get_feature_names_out(self, input_features: Sequence[str] | None = None) -> np.ndarray:
        """``<column>_<part>`` for each part."""
        source = input_features[0] if input_features is not None else self.feature_names_in_[0]
        return np.asarray([f"{source}_{p}" for p in self.parts], dtype=object)


class AsFloat(TransformerMixin, BaseEstimator):
    """Numeric columns as float64, nullable-integer NA becoming NaN, so every estimator reads them alike."""

    def fit(self, X: pd.DataFrame, y: object = None) -> AsFloat:
        """Remember the input columns."""
        frame = pd.DataFrame(X)
        self.feature_names_in_ = np.asarray([str(c) for c in frame.columns], dtype=object)
        self.n_features_in_ = frame.shape[1]
        return self

    def transform(self, X: pd.DataFrame) -> np.ndarray:
        """The values as a float64 array."""
        frame = pd.DataFrame(X)
        columns = [pd.to_numeric(frame[c], errors="coerce").to_numpy(dtype="float64", na_value=np.nan) for c in frame]
        return np.column_stack(columns) if columns else np.empty((len(frame), 0))

    def get_feature_names_out(self, input_features: Sequence[str] | None = None) -> np.ndarray:
        """Names unchanged."""
        names = input_features if input_features is not None else self.feature_names_in_
        return np.asarray([str(n) for n in names], dtype=object)
