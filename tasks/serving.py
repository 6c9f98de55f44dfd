"""Online scoring logic: a JSON request turned into a typed frame, checked with the batch contract, scored.

Pure: JSON values in, frames and plain values out. The REST API and the stream consumer call these; the
row checks, the scoring and the outlier flags are those of batch scoring (``tasks.scoring.score_chunk``), so a
row is judged the same way whichever way it arrives.

A request is all-or-nothing: when any row is bad (structure, type, null, value outside the contract's range)
no row is scored and the error lists every bad row with its field and reason. A client that sends one bad row
of a hundred gets the hundred back unscored, never a silent default or a partial answer it could misread.
An unseen category is not an error: the row is scored and flagged, as in batch scoring.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from tasks import scoring
from tasks.contract import ReferenceSketch
from tasks.errors import MlopsError
from tasks.expectations import ExpectationSpec
from tasks.privacy import apply_pii_policy
from tasks.scoring import Lineage, OutlierReference, Scorer
from tasks.training import model_inputs
from tasks.usecase import Strict, UseCase

REQUEST_ID, MODEL_ALIAS = "request_id", "model_alias"  # prediction log columns besides those of batch scores
MAX_PROBLEMS_LISTED = 50  # a body of 10k bad rows names the first ones, and says how many more


class ApiSettings(Strict):
    """The REST API: where it listens, which model it follows, request limits, prediction log."""

    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    alias: str = "champion"
    version: str | None = None  # a fixed version instead of following the alias
    poll_seconds: float = 5.0
    follow_events: bool = True
    check_rows: int = 20  # reference rows a candidate version must score before it serves
    max_rows: int = 1000
    max_body_bytes: int = 1_048_576
    shadow_alias: str | None = None  # e.g. "challenger": scores the same rows off the request path
    log_predictions: bool = True
    log_flush_rows: int = 5000
    log_flush_seconds: float = 30.0
    log_window: str = "hour"  # "hour" or "day": the time partition of the prediction log (one drift window)


@dataclass(frozen=True)
class Problem:
    """One reason a request is refused: the row (None: the whole request), the field (None: the row)."""

    row: int | None
    field: str | None
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"row": self.row, "field": self.field, "reason": self.reason}


class RequestError(MlopsError):
    """A request the API refuses, with the HTTP status and every problem found."""

    def __init__(self, status: int, problems: Sequence[Problem]) -> None:
        self.status = status
        self.problems = tuple(problems)
        first = self.problems[0] if self.problems else Problem(None, None, "bad request")
        where = "" if first.row is None else f"row {first.row}: "
        where += "" if first.field is None else f"field '{first.field}': "
        more = f" (and {len(self.problems) - 1} more)" if len(self.problems) > 1 else ""
        super().__init__(f"{where}{first.reason}{more}")

    def body(self) -> dict[str, Any]:
        listed = [p.to_dict() for p in self.problems[:MAX_PROBLEMS_LISTED]]
        return {"error": str(self), "problems": listed, "problems_total": len(self.problems)}


@dataclass(frozen=True)
class ServingContract:
    """What a model version accepts: fields, their contract types, row checks, outlier reference."""

    fields: tuple[str, ...]
    required: tuple[str, ...]
    types: dict[str, str]
    not_null: frozenset[str]
    row_specs: tuple[ExpectationSpec, ...]
    reference: OutlierReference
    id_column: str


def serving_contract(
    specs: Sequence[ExpectationSpec], reference: OutlierReference, usecase: UseCase
) -> ServingContract:
    """The request-side view of a version's contract (``specs`` as logged with the version)."""
    full = scoring.scoring_specs(tuple(specs), usecase)
    required = tuple(c for c in model_inputs(usecase))
    types = scoring.column_types(full)
    types.setdefault(usecase.id_column, "str")
    not_null = frozenset(s.column for s in full if s.kind == "not_null" and s.column)
    return ServingContract(
        fields=(usecase.id_column, *required),
        required=required,
        types=types,
        not_null=not_null,
        row_specs=tuple(s for s in full if s.row_level),
        reference=reference,
        id_column=usecase.id_column,
    )


def contract_summary(contract: ServingContract) -> dict[str, Any]:
    """Fields, types, nullability and ranges a client can read from ``GET /v1/model``."""
    ranges = {s.column: [s.min_value, s.max_value] for s in contract.row_specs if s.kind == "between" and s.column}
    return {
        "fields": {f: contract.types.get(f, "str") for f in contract.fields},
        "required": list(contract.required),
        "optional": [contract.id_column],
        "not_null": sorted(contract.not_null - {contract.id_column}),
        "ranges": ranges,
        "known_categories": {c: list(v) for c, v in contract.reference.categories.items()},
    }


# --- request body -> records ----------------------------------------------------------------------------


def request_records(body: Any, max_rows: int) -> list[Any]:
    """The rows of a parsed JSON body: a list of objects, one object, or MLflow's ``/invocations`` formats.

    Accepted: ``[{...}, ...]``, ``{...}`` (one row), ``{"records": [...]}``, ``{"dataframe_records": [...]}``,
    ``{"dataframe_split": {"columns": [...], "data": [[...], ...]}}``.

    Raises:
        RequestError: 400 for a body of the wrong shape, 422 for no rows, 413 for more than ``max_rows``.
    """
    if isinstance(body, list):
        records = body
    elif isinstance(body, dict):
        records = _wrapped_records(body)
    else:
        kind = "null" if body is None else type(body).__name__
        raise RequestError(
            400, [Problem(None, None, f"the body must be a JSON object or a list of objects, not {kind}")]
        )
    if not records:
        raise RequestError(422, [Problem(None, None, "the request has no rows")])
    if len(records) > max_rows:
        raise RequestError(
            413, [Problem(None, None, f"the request has {len(records)} rows; at most {max_rows} allowed")]
        )
    return records


def _wrapped_records(body: dict) -> list[Any]:
    formats = [k for k in ("records", "dataframe_records", "dataframe_split", "instances", "inputs") if k in body]
    if not formats:
        return [body]
    if len(formats) > 1 or (len(body) > 1 and not set(body) <= {formats[0], "params"}):
        extra = sorted(set(body) - {formats[0], "params"}) or formats[1:]
        raise RequestError(400, [Problem(None, None, f"unexpected top-level key(s) {extra} beside '{formats[0]}'")])
    key, value = formats[0], body[formats[0]]
    if key in ("instances", "inputs"):
        raise RequestError(400, [Problem(None, None, f"'{key}' (tensor input) is not accepted: send records")])
    if key == "dataframe_split":
        return _split_records(value)
    if not isinstance(value, list):
        raise RequestError(400, [Problem(None, None, f"'{key}' must be a list of objects")])
    return value


def _split_records(value: Any) -> list[Any]:
    if not isinstance(value, dict) or not isinstance(value.get("columns"), list) or "data" not in value:
        raise RequestError(400, [Problem(None, None, "'dataframe_split' must be an object with 'columns' and 'data'")])
    columns, data = value["columns"], value["data"]
    if not all(isinstance(c, str) for c in columns) or len(set(columns)) != len(columns):
        raise RequestError(400, [Problem(None, None, "'dataframe_split.columns' must be distinct strings")])
    if not isinstance(data, list):
        raise RequestError(400, [Problem(None, None, "'dataframe_split.data' must be a list of rows")])
    records: list[Any] = []
    for i, row in enumerate(data):
        if not isinstance(row, list) or len(row) != len(columns):
            raise RequestError(
                400, [Problem(i, None, f"row {i} of 'dataframe_split.data' must be a list of {len(columns)} values")]
            )
        records.append(dict(zip(columns, row, strict=True)))
    return records


# --- records -> typed frame ------------------------------------------------------------------------------


def records_frame(records: Sequence[Any], contract: ServingContract, ids: Sequence[str]) -> pd.DataFrame:
    """The rows as a frame typed as the contract says; ``ids`` fill the id column where a row has none.

    Raises:
        RequestError: 422 naming every row that is not an object, has an unknown or missing field, a value of
            the wrong type, or a null where the contract allows none.
    """
    problems: list[Problem] = []
    columns: dict[str, list[Any]] = {f: [] for f in contract.fields}
    allowed = set(contract.fields)
    for i, record in enumerate(records):
        if not isinstance(record, Mapping):
            problems.append(Problem(i, None, f"a row must be a JSON object, not {_json_kind(record)}"))
            continue
        for name in record:
            if name not in allowed:
                problems.append(Problem(i, str(name), _unknown(str(name), contract.fields)))
        for name in contract.required:
            if name not in record:
                problems.append(Problem(i, name, "missing required field"))
        for name in contract.fields:
            raw = record.get(name)
            if name == contract.id_column:
                raw = ids[i] if raw is None else str(raw) if isinstance(raw, int | float) else raw
            value, reason = _typed(raw, contract.types.get(name, "str"))
            if reason is None and value is None and name in contract.not_null and name in record:
                reason = "null is not allowed"
            if reason is not None and name in record:
                problems.append(Problem(i, name, reason))
            columns[name].append(value)
    if problems:
        raise RequestError(422, problems)
    return pd.DataFrame({name: _column(values, contract.types.get(name, "str")) for name, values in columns.items()})


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", str: "a string", int: "a number", float: "a number", list: "a list"}.get(
        type(value), type(value).__name__
    )


def _unknown(name: str, fields: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, list(fields), n=1, cutoff=0.6)
    return "unknown field" + (f" (did you mean '{close[0]}'?)" if close else "")


def _typed(value: Any, type_name: str) -> tuple[Any, str | None]:
    """The value as the contract type wants it, or the reason it cannot be (None: fine)."""
    if value is None:
        return None, None
    if type_name in ("float64", "Int64", "int64"):
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None, f"expected a number, got {_json_kind(value)}"
        if isinstance(value, float) and not math.isfinite(value):
            return None, "expected a finite number"
        if type_name != "float64" and isinstance(value, float) and not value.is_integer():
            return None, f"expected an integer, got {value}"
        return (float(value) if type_name == "float64" else int(value)), None
    if type_name == "str":
        if isinstance(value, str):
            return value, None
        if isinstance(value, int) and not isinstance(value, bool):
            return None, f"expected a string, got a number ({value}); quote it"
        return None, f"expected a string, got {_json_kind(value)}"
    if type_name == "datetime64":
        if not isinstance(value, str):
            return None, f"expected an ISO 8601 date-time string, got {_json_kind(value)}"
        try:
            stamp = pd.Timestamp(value)
        except (ValueError, TypeError):
            return None, f"'{value[:40]}' is not an ISO 8601 date-time"
        if stamp is pd.NaT:
            return None, f"'{value[:40]}' is not an ISO 8601 date-time"
        if stamp.tzinfo is not None:
            return None, "expected a local date-time without a UTC offset, as in training"
        return stamp, None
    if type_name == "bool":
        return (value, None) if isinstance(value, bool) else (None, f"expected true or false, got {_json_kind(value)}")
    return None, f"the contract's type {type_name!r} is not one the API knows"


def _column(values: list[Any], type_name: str) -> Any:
    if type_name == "float64":
        return pd.array(values, dtype="Float64").astype("float64")
    if type_name in ("Int64", "int64"):
        return pd.array(values, dtype="Int64")
    if type_name == "datetime64":
        return pd.to_datetime(pd.Series(values, dtype="object")).astype("datetime64[us]")
    if type_name == "bool":
        return pd.array(values, dtype="boolean")
    return pd.array(values, dtype="str")


# --- scoring ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScoredRequest:
    """The scored rows of one request (same order as sent), and what to log."""

    scores: pd.DataFrame
    frame: pd.DataFrame
    rows: list[dict[str, Any]]
    rows_outlier: int
    rows_unseen: int


def score_request(
    frame: pd.DataFrame, model: Scorer, usecase: UseCase, contract: ServingContract, lineage: Lineage
) -> ScoredRequest:
    """Check every row with the batch contract, then score them all, or refuse the request.

    Raises:
        RequestError: 422 naming each row outside the contract (field and range), nothing scored.
    """
    chunk = scoring.score_chunk(frame, model, usecase, contract.row_specs, contract.reference, lineage)
    if chunk.failed.any():
        raise RequestError(422, contract_problems(frame, chunk.failed, chunk.reasons, contract.row_specs))
    categorical = set(contract.reference.categories)
    rows, outliers, unseen = [], 0, 0
    threshold = usecase.model.decision_threshold
    for i, (ident, proba, flag, features) in enumerate(
        zip(
            chunk.scores[contract.id_column],
            chunk.scores[scoring.PROBABILITY],
            chunk.scores[scoring.OUTLIER],
            chunk.scores[scoring.OUTLIER_FEATURES].astype("str"),
            strict=True,
        )
    ):
        flagged = [f for f in features.split(",") if f]
        new_categories = [f for f in flagged if f in categorical]
        out_of_range = [f for f in flagged if f not in categorical]
        outliers += bool(flag)
        unseen += bool(new_categories)
        rows.append(
            {
                "row": i,
                "id": str(ident),
                "probability": float(proba),
                "label": int(proba >= threshold),
                "outlier": bool(out_of_range),
                "outlier_features": out_of_range,
                "unseen": bool(new_categories),
                "unseen_features": new_categories,
            }
        )
    return ScoredRequest(chunk.scores, frame, rows, outliers, unseen)


def contract_problems(
    frame: pd.DataFrame, failed: np.ndarray, reasons: np.ndarray, specs: Sequence[ExpectationSpec]
) -> list[Problem]:
    """The batch row checks' verdict (labels like ``between(distance)``) as a row, field and reason each."""
    by_label = {s.label: s for s in specs}
    problems = []
    for row, labels in zip(np.flatnonzero(failed), reasons, strict=True):
        for label in str(labels).split("; "):
            spec = by_label.get(label)
            column = spec.column if spec is not None else None
            value = frame[column].iloc[row] if column in frame.columns else None
            problems.append(Problem(int(row), column, _reason(spec, value, label)))
    return problems


def _reason(spec: ExpectationSpec | None, value: Any, label: str) -> str:
    if spec is None:
        return f"fails the contract's check {label}"
    if spec.kind == "between":
        return f"value {value} is outside the contract's range [{spec.min_value:g}, {spec.max_value:g}]"
    if spec.kind == "not_null":
        return "null is not allowed"
    if spec.kind == "in_set":
        return f"value {value!r} is not one of the contract's values"
    return f"value {value!r} fails the contract's check {label}"


def prediction_rows(
    requests: Sequence[tuple[ScoredRequest, str, str | None]], usecase: UseCase, pii_key: bytes | None
) -> pd.DataFrame:
    """The prediction log's rows of scored requests ``(scored, request id, alias)``, built once for them all.

    Per row: outputs and lineage, the inputs after the PII policy, request id and alias.
    """
    scores = pd.concat([_plain(s.scores) for s, _, _ in requests], ignore_index=True)
    frames = pd.concat([s.frame for s, _, _ in requests], ignore_index=True)
    inputs = apply_pii_policy(frames.drop(columns=[usecase.id_column]), usecase.pii, pii_key)
    sizes = [len(s.scores) for s, _, _ in requests]
    extra = {
        REQUEST_ID: pd.array(np.repeat([r for _, r, _ in requests], sizes), dtype="str"),
        MODEL_ALIAS: pd.array(np.repeat([a or "" for _, _, a in requests], sizes), dtype="str"),
    }
    return pd.concat([scores, inputs], axis=1).assign(**extra)


def _plain(frame: pd.DataFrame) -> pd.DataFrame:
    """Categoricals (lineage, outlier features) as strings, so frames of different requests concatenate."""
    converted = {c: frame[c].astype("str") for c in frame.columns if isinstance(frame[c].dtype, pd.CategoricalDtype)}
    return frame.assign(**converted)


# --- checking a candidate version --------------------------------------------------------------------------


def reference_rows(sketch: ReferenceSketch, contract: ServingContract, rows: int) -> list[dict[str, Any]]:
    """Rows built from the training sketch (bin middles, seen categories), as a client would send them.

    A new version must score them before it serves: a contract and a sketch that disagree with the model, or a
    model that cannot score its own training distribution, are caught before any request reaches it.
    """
    if rows < 1:
        raise ValueError(f"rows must be positive, got {rows}")
    records = [{} for _ in range(rows)]
    for name in contract.required:
        numeric = sketch.numeric.get(name)
        categorical = sketch.categorical.get(name)
        for i, record in enumerate(records):
            if numeric is not None and len(numeric.edges) >= 2:
                j = i % (len(numeric.edges) - 1)
                middle = (numeric.edges[j] + numeric.edges[j + 1]) / 2
                record[name] = round(middle) if contract.types.get(name) in ("Int64", "int64") else middle
            elif categorical is not None and categorical.frequencies:
                seen = sorted(categorical.frequencies, key=lambda k: -categorical.frequencies[k])
                record[name] = seen[i % len(seen)]
            elif contract.types.get(name) == "datetime64":
                record[name] = (pd.Timestamp("2000-01-03 06:00") + pd.Timedelta(hours=7 * i)).isoformat()
            else:
                record[name] = None
    return records


def check_scores(proba: np.ndarray, rows: int) -> str | None:
    """Why a candidate's scores of the reference rows are unusable, or None when they are fine."""
    values = np.asarray(proba, dtype="float64")
    if values.shape != (rows,):
        return f"scored {values.shape} values for {rows} reference rows"
    if not np.isfinite(values).all() or (values < 0).any() or (values > 1).any():
        return "scores of the reference rows are not probabilities in [0, 1]"
    return None
