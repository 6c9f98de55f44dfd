"""Training logic: labelled rows, a time-ordered split, input checks and one sklearn Pipeline.

Every column name comes from the ``UseCase``. The pipeline takes the raw model inputs (``feature_frame``) and
does all its own preprocessing, so what is logged and served is that one object.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, clone
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

from tasks.errors import MlopsError
from tasks.features import AsFloat, TimeParts
from tasks.usecase import ModelSpec, SplitSpec, UseCase

# names of the ColumnTransformer branches: encoded columns are called "<branch>__<column>"
NUMERIC, CATEGORICAL, TIME = "numeric", "categorical", "time"


@dataclass(frozen=True)
class TimeSplit:
    """Train, validation and holdout rows, each strictly later in time than the one before.

    The ``*_end`` / ``*_start`` stamps are the last / first time value actually present in each part.
    """

    train: pd.DataFrame
    validation: pd.DataFrame
    holdout: pd.DataFrame
    train_end: pd.Timestamp
    validation_end: pd.Timestamp
    holdout_start: pd.Timestamp
    holdout_end: pd.Timestamp

    def boundaries(self) -> dict[str, str]:
        """The boundary time values as ISO strings, for run metadata and lineage."""
        return {
            "train_end": self.train_end.isoformat(),
            "validation_end": self.validation_end.isoformat(),
            "holdout_start": self.holdout_start.isoformat(),
            "holdout_end": self.holdout_end.isoformat(),
        }


def labelled_rows(frame: pd.DataFrame, usecase: UseCase) -> pd.DataFrame:
    """Rows whose label is known, the label as int64 (a null label means the outcome is unknown)."""
    label = usecase.target.name
    known = frame[frame[label].notna()]
    return known.assign(**{label: known[label].astype("int64")})


def time_split(frame: pd.DataFrame, usecase: UseCase) -> TimeSplit:
    """Split labelled rows by time: the latest ones are holdout, those before them validation, the rest train.

    Cuts are placed at time values so that about ``validation_fraction`` / ``holdout_fraction`` of the rows
    fall in the last two parts; rows sharing a timestamp at a cut all go to the later part, so no time value
    is in two parts (a model never trains on the same moment it is judged on).

    Raises:
        MlopsError: the time column has nulls, or a part would be empty.
    """
    time = usecase.time_column
    rows = labelled_rows(frame, usecase)
    if rows[time].isna().any():
        raise MlopsError(f"{int(rows[time].isna().sum())} labelled rows have no '{time}': cannot split by time")
    # the id breaks ties so the same snapshot always gives the same row order
    order = [c for c in (time, usecase.id_column) if c in rows.columns]
    ordered = rows.sort_values(order, kind="stable").reset_index(drop=True)
    stamps, n = ordered[time], len(ordered)
    validation_cut, holdout_cut = _cut_times(stamps, usecase.split)
    parts = {
        "train": ordered[stamps < validation_cut],
        "validation": ordered[(stamps >= validation_cut) & (stamps < holdout_cut)],
        "holdout": ordered[stamps >= holdout_cut],
    }
    empty = [name for name, part in parts.items() if part.empty]
    if empty:
        raise MlopsError(
            f"time split of {n} labelled rows leaves {' and '.join(empty)} empty "
            f"(too few rows or too few distinct '{time}' values)"
        )
    train, validation, holdout = (p.reset_index(drop=True) for p in parts.values())
    return TimeSplit(
        train,
        validation,
        holdout,
        train_end=train[time].max(),
        validation_end=validation[time].max(),
        holdout_start=holdout[time].min(),
        holdout_end=holdout[time].max(),
    )


def _cut_times(stamps: pd.Series, split: SplitSpec) -> tuple[pd.Timestamp, pd.Timestamp]:
    """First time value of validation and of holdout, read off sorted ``stamps`` (NaT when there are none)."""
    n = len(stamps)
    if n == 0:
        return pd.NaT, pd.NaT
    holdout_at = n - round(n * split.holdout_fraction)
    validation_at = n - round(n * (split.holdout_fraction + split.validation_fraction))
    return stamps.iloc[min(max(validation_at, 0), n - 1)], stamps.iloc[min(max(holdout_at, 0), n - 1)]


def check_training_input(frame: pd.DataFrame, usecase: UseCase) -> None:
    """Fail early, naming the problem, when a snapshot cannot train a model.

    Raises:
        MlopsError: empty snapshot, missing input or label column, too few labelled rows, a single class.
    """
    if frame.empty:
        raise MlopsError("the training snapshot is empty")
    needed = (*model_inputs(usecase), usecase.target.name)
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise MlopsError(f"the training snapshot lacks column(s): {', '.join(missing)}")
    labels = frame[usecase.target.name].dropna()
    if len(labels) < usecase.model.min_training_rows:
        raise MlopsError(
            f"the training snapshot has {len(labels)} labelled rows, fewer than "
            f"model.min_training_rows = {usecase.model.min_training_rows}"
        )
    classes = sorted(int(c) for c in labels.unique())
    if len(classes) < 2:
        raise MlopsError(f"every labelled row of the training snapshot has class {classes[0]}: need both 0 and 1")


def model_inputs(usecase: UseCase) -> tuple[str, ...]:
    """Columns the pipeline reads, in its fixed order: numeric, categorical, then the time column."""
    return (*usecase.features.numeric, *usecase.features.categorical, usecase.time_column)


def feature_frame(frame: pd.DataFrame, usecase: UseCase) -> pd.DataFrame:
    """Only the model inputs, in the fixed order of ``model_inputs`` (the pipeline derives time parts).

    Raises:
        MlopsError: an input column is missing.
    """
    columns = model_inputs(usecase)
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise MlopsError(f"model input column(s) missing: {', '.join(missing)}")
    return frame.loc[:, list(columns)].reset_index(drop=True)


def build_pipeline(usecase: UseCase) -> Pipeline:
    """One unfitted Pipeline: preprocessing by column type, then the configured estimator.

    Unseen and missing categories are accepted at predict time: trees see them as missing (gradient
    boosting) or as one extra code (forest); the linear model maps them to the infrequent bucket or zeros.
    """
    spec = usecase.model
    features = usecase.features
    branches = [
        (NUMERIC, _numeric_branch(spec), list(features.numeric)),
        (CATEGORICAL, _categorical_branch(spec), list(features.categorical)),
    ]
    if features.time_parts:
        branches.append((TIME, TimeParts(parts=tuple(features.time_parts)), [usecase.time_column]))
    # pandas output keeps column names, so the estimator can be told which encoded columns are categories
    preprocess = ColumnTransformer(
        [branch for branch in branches if branch[2]], remainder="drop", verbose_feature_names_out=True
    ).set_output(transform="pandas")
    categorical = [f"{CATEGORICAL}__{c}" for c in features.categorical]
    return Pipeline([("preprocess", preprocess), ("model", _estimator(spec, categorical))])


def _numeric_branch(spec: ModelSpec) -> BaseEstimator:
    # trees split on NaN themselves; the linear model needs complete, comparable scales
    if spec.estimator == "logistic_regression":
        return make_pipeline(AsFloat(), SimpleImputer(strategy="median"), StandardScaler())
    return AsFloat()


def _categorical_branch(spec: ModelSpec) -> BaseEstimator:
    if spec.estimator == "logistic_regression":
        return OneHotEncoder(
            handle_unknown="infrequent_if_exist", max_categories=spec.max_categories, sparse_output=False
        )
    # gradient boosting treats NaN codes as missing; the forest gets one shared code below every known one
    missing = np.nan if spec.estimator == "hist_gradient_boosting" else -1
    return OrdinalEncoder(
        handle_unknown="use_encoded_value",
        unknown_value=missing,
        encoded_missing_value=missing,
        max_categories=spec.max_categories,
    )


_ESTIMATORS = {
    "hist_gradient_boosting": HistGradientBoostingClassifier,
    "logistic_regression": LogisticRegression,
    "random_forest": RandomForestClassifier,
}


def _estimator(spec: ModelSpec, categorical: list[str]) -> BaseEstimator:
    """The allow-listed estimator with the configured params and seed.

    Raises:
        MlopsError: a param is not one the estimator knows.
    """
    cls = _ESTIMATORS[spec.estimator]
    unknown = sorted(set(spec.params) - set(cls().get_params()))
    if unknown:
        raise MlopsError(f"model.params has unknown parameter(s) for {spec.estimator}: {', '.join(unknown)}")
    params: dict[str, object] = {**spec.params, "random_state": spec.seed}
    if spec.estimator == "hist_gradient_boosting":
        params["categorical_features"] = categorical or None
    if spec.estimator == "logistic_regression":
        params.setdefault("max_iter", 1000)
    return cls(**params)


def fit_pipeline(pipeline: Pipeline, split: TimeSplit, usecase: UseCase) -> Pipeline:
    """A fitted copy of ``pipeline``, trained on the train part only (validation/holdout stay unseen)."""
    fitted = clone(pipeline)
    labels = split.train[usecase.target.name].astype("int64").to_numpy()
    return fitted.fit(feature_frame(split.train, usecase), labels)
