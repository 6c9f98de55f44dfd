"""The data contract a model learns from its training data, and the reference sketch drift checks compare to.

The contract is a tuple of ``ExpectationSpec`` over the model's input columns, checked at scoring time:
table-level ones (columns, types, null shares) fail a batch, row-level ones (numeric ranges, a present time
value) quarantine the rows a model should not extrapolate to. Categories are not restricted: an unseen one
is scored (the pipeline handles it) and flagged by the drift check, which reads the domain from the sketch.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from tasks.errors import MlopsError
from tasks.expectations import ExpectationSpec
from tasks.serialization import json_safe
from tasks.usecase import ColumnSpec, UseCase

# training quantiles that bound the accepted range: the extreme 0.1 % on each side are not trusted as limits
_LOW_Q, _HIGH_Q = 0.001, 0.999
CONTRACT_FORMAT = 1
# where training logs them in the version's run: batch scoring, the drift check and the online holder read them
CONTRACT_ARTIFACT = "contract/expectations.json"
SKETCH_ARTIFACT = "contract/reference_sketch.json"


@dataclass(frozen=True)
class NumericSketch:
    """Quantile bins of a numeric column: ``len(edges) - 1`` bins, values beyond the edges in the end bins.

    ``n`` counts non-null values (``sum(counts) == n``); ``null_rate`` is over all rows; ``min``/``max`` are
    None when there is no value.
    """

    edges: tuple[float, ...]
    counts: tuple[int, ...]
    null_rate: float
    min: float | None
    max: float | None
    n: int


@dataclass(frozen=True)
class CategoricalSketch:
    """Frequencies of each category seen (``sum(frequencies.values()) == n``, the non-null count)."""

    frequencies: dict[str, int]
    null_rate: float
    n: int


@dataclass(frozen=True)
class ReferenceSketch:
    """Distribution of every model input (and optionally the model's scores) in the training data."""

    numeric: dict[str, NumericSketch]
    categorical: dict[str, CategoricalSketch]
    prediction: NumericSketch | None
    rows: int


def _floats(values: pd.Series | np.ndarray) -> np.ndarray:
    """Values as float64 with NaN for every kind of null (nullable integers included)."""
    return pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(dtype="float64", na_value=np.nan)


def numeric_sketch(values: pd.Series | np.ndarray, bins: int) -> NumericSketch:
    """Sketch of numeric values with ``bins`` equal-frequency bins (fewer when quantiles coincide)."""
    data = _floats(values)
    present = data[~np.isnan(data)]
    null_rate = float(1.0 - present.size / data.size) if data.size else 0.0
    if present.size == 0:
        return NumericSketch((), (), null_rate, None, None, 0)
    quantiles = np.quantile(present, np.linspace(0.0, 1.0, bins + 1))
    edges = np.unique(quantiles)
    if edges.size == 1:  # a constant column: one bin holding everything
        edges = np.repeat(edges, 2)
    elif quantiles[1] == quantiles[0]:
        # a point mass at the minimum (e.g. mostly zeros) keeps a bin of its own; merged into the next bin,
        # a column that is 90 % zeros would have a single bin and could never show drift
        edges = np.concatenate([edges[:1], edges])
    counts = np.bincount(bin_index(edges, present), minlength=edges.size - 1)
    return NumericSketch(
        edges=tuple(float(e) for e in edges),
        counts=tuple(int(c) for c in counts),
        null_rate=null_rate,
        min=float(present.min()),
        max=float(present.max()),
        n=int(present.size),
    )


def bin_index(edges: np.ndarray | tuple[float, ...], values: np.ndarray) -> np.ndarray:
    """Bin of each value for the sketch ``edges``: right-closed inner edges, outliers in the end bins."""
    inner = np.asarray(edges, dtype="float64")[1:-1]
    return np.searchsorted(inner, values, side="left")


def categorical_sketch(values: pd.Series) -> CategoricalSketch:
    """Sketch of categorical values: count per category, nulls apart."""
    present = values.dropna().astype("str")
    counts = present.value_counts(sort=False)
    frequencies = {str(k): int(v) for k, v in sorted(counts.items())}
    null_rate = float(1.0 - len(present) / len(values)) if len(values) else 0.0
    return CategoricalSketch(frequencies, null_rate, len(present))


def sketch_predictions(proba: np.ndarray, bins: int) -> NumericSketch:
    """Reference sketch of a model's scores on training-time data, for prediction drift."""
    return numeric_sketch(np.asarray(proba, dtype="float64"), bins)


def _type_name(series: pd.Series) -> str:
    """The dtype spelling ``ExpectationSpec.of_type`` uses for a column."""
    dtype = series.dtype
    if isinstance(dtype, pd.Int64Dtype):
        return "Int64"
    if pd.api.types.is_float_dtype(dtype):
        return "float64"
    if pd.api.types.is_string_dtype(dtype) and not pd.api.types.is_object_dtype(dtype):
        return "str"
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return "datetime64"
    return str(dtype)


def _accepted_range(values: pd.Series, tolerance: float) -> tuple[float, float] | None:
    """Training [q0.001, q0.999] widened by ``tolerance`` times its width (None when there is no value)."""
    data = _floats(values)
    data = data[~np.isnan(data)]
    if data.size == 0:
        return None
    low, high = np.quantile(data, [_LOW_Q, _HIGH_Q])
    # a constant column has no width: widen relative to its magnitude instead, so one value is not a wall
    width = (high - low) or max(abs(float(low)), 1.0)
    return float(low - tolerance * width), float(high + tolerance * width)


def _within_domain(learned: tuple[float, float], spec: ColumnSpec | None) -> tuple[float, float]:
    """The row-level range of the contract: the declared domain of the column where the use case has one.

    Values outside the widened training range but inside the declared domain are real data the model has
    not seen (a warmer month): they are scored and flagged as outliers, and the drift check needs them.
    Quarantining them would hide drift. Only values the use case declares impossible are refused.
    """
    low = spec.min if spec is not None and spec.min is not None else learned[0]
    high = spec.max if spec is not None and spec.max is not None else learned[1]
    return min(low, learned[0]), max(high, learned[1])


def derive_contract(frame: pd.DataFrame, usecase: UseCase) -> tuple[tuple[ExpectationSpec, ...], ReferenceSketch]:
    """Learn the scoring contract and the reference sketch from training rows.

    Raises:
        MlopsError: the frame is empty or lacks a model input column.
    """
    features = usecase.features
    inputs = (*features.numeric, *features.categorical, usecase.time_column)
    missing = [c for c in inputs if c not in frame.columns]
    if frame.empty or missing:
        raise MlopsError(f"cannot derive a contract: {'no rows' if frame.empty else 'missing ' + ', '.join(missing)}")
    slack = usecase.contract.null_rate_slack
    specs = [ExpectationSpec("columns_exist", columns=inputs)]
    specs += [ExpectationSpec("of_type", column=c, type_name=_type_name(frame[c])) for c in inputs]
    for column in (*features.numeric, *features.categorical):
        limit = min(1.0, float(frame[column].isna().mean()) + slack)
        specs.append(ExpectationSpec("null_fraction_at_most", column=column, max_fraction=limit))
    declared = usecase.all_columns()
    for column in features.numeric:
        bounds = _accepted_range(frame[column], usecase.contract.quantile_tolerance)
        if bounds is not None:
            low, high = _within_domain(bounds, declared.get(column))
            specs.append(ExpectationSpec("between", column=column, min_value=low, max_value=high))
    specs.append(ExpectationSpec("not_null", column=usecase.time_column))
    bins = usecase.contract.reference_bins
    sketch = ReferenceSketch(
        numeric={c: numeric_sketch(frame[c], bins) for c in features.numeric},
        categorical={c: categorical_sketch(frame[c]) for c in features.categorical},
        prediction=None,
        rows=len(frame),
    )
    return tuple(specs), sketch


def contract_to_dict(specs: tuple[ExpectationSpec, ...]) -> dict:
    """JSON-safe form of a contract (tuples become lists)."""
    return {"format": CONTRACT_FORMAT, "expectations": [json_safe(asdict(s)) for s in specs]}


def contract_from_dict(data: dict) -> tuple[ExpectationSpec, ...]:
    """Inverse of ``contract_to_dict``.

    Raises:
        MlopsError: unknown format version or malformed entries.
    """
    if data.get("format") != CONTRACT_FORMAT:
        raise MlopsError(f"data contract format {data.get('format')!r} is not {CONTRACT_FORMAT}")
    try:
        return tuple(
            ExpectationSpec(**{k: tuple(v) if isinstance(v, list) else v for k, v in item.items()})
            for item in data["expectations"]
        )
    except (KeyError, TypeError) as exc:
        raise MlopsError(f"malformed data contract: {exc}") from exc


def sketch_to_dict(sketch: ReferenceSketch) -> dict:
    """JSON-safe form of a reference sketch."""
    return json_safe(asdict(sketch))


def sketch_from_dict(data: dict) -> ReferenceSketch:
    """Inverse of ``sketch_to_dict``.

    Raises:
        MlopsError: malformed entries.
    """
    try:
        prediction = data.get("prediction")
        return ReferenceSketch(
            numeric={k: _numeric_from_dict(v) for k, v in data["numeric"].items()},
            categorical={k: CategoricalSketch(**v) for k, v in data["categorical"].items()},
            prediction=_numeric_from_dict(prediction) if prediction is not None else None,
            rows=int(data["rows"]),
        )
    except (KeyError, TypeError) as exc:
        raise MlopsError(f"malformed reference sketch: {exc}") from exc


def _numeric_from_dict(data: dict) -> NumericSketch:
    return NumericSketch(**{**data, "edges": tuple(data["edges"]), "counts": tuple(data["counts"])})
