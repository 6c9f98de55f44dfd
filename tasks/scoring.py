"""Batch scoring logic: the model's contract checked on a batch, outlier flags, lineage columns, output layout.

Everything here is pure (frames and plain values in, frames and plain values out); ``flows.score`` reads the
input chunk by chunk and calls these on each chunk.

The contract is the list of ``ExpectationSpec`` logged with the model version. Its table-level checks (columns,
types, null shares, row count) are answered once per batch from the Parquet footers (``check_table``): a
failure names the column and stops the run before anything is written. Its row-level checks (``between``,
``not_null``, ...) run on every chunk, vectorized (``check_rows``): a failing row is quarantined with its
reasons, the others are scored. They follow Great Expectations' semantics (bounds inclusive, nulls pass every
check but ``not_null``), so the verdicts are those GX gives, at a fraction of its per-expectation cost.
"""

from __future__ import annotations

import difflib
import hashlib
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

import numpy as np
import pandas as pd

from tasks.batch import QUARANTINE_REASONS
from tasks.contract import ReferenceSketch
from tasks.errors import InputDataError, MlopsError
from tasks.expectations import ExpectationSpec
from tasks.training import feature_frame
from tasks.usecase import UseCase

# output columns besides the use case's id column
PROBABILITY = "probability"
PREDICTED_LABEL = "predicted_label"
OUTLIER = "outlier"
OUTLIER_FEATURES = "outlier_features"
MODEL_NAME = "model_name"
MODEL_VERSION = "model_version"
MODEL_RUN_ID = "model_run_id"
BATCH_ID = "batch_id"
SCORED_AT = "scored_at"
FLOW_RUN_ID = "flow_run_id"
LINEAGE_COLUMNS = (MODEL_NAME, MODEL_VERSION, MODEL_RUN_ID, BATCH_ID, SCORED_AT, FLOW_RUN_ID)
RESERVED_COLUMNS = frozenset({QUARANTINE_REASONS, *LINEAGE_COLUMNS})

# the contract's column types and the kinds of stored column each one accepts; a null-typed column (every
# value missing) is accepted everywhere so that the null-share check, not the type check, names the problem
_ACCEPTED_KINDS = {
    "float64": {"float", "int", "null"},  # integers widen to float losslessly
    "Int64": {"int", "null"},
    "int64": {"int", "null"},
    "str": {"str", "null"},
    "datetime64": {"datetime", "null"},
    "bool": {"bool", "null"},
}
_CHUNK_LOCAL_ROW_KINDS = frozenset({"not_null", "between", "in_set", "match_regex"})
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class ColumnProfile:
    """A stored column as the input's files describe it.

    ``kind`` is one of int, float, str, datetime, bool, null (no value at all) or other; ``type_name`` is the
    file's own spelling (for messages); ``nulls`` counts missing values over the whole input.
    """

    kind: str
    type_name: str
    nulls: int


@dataclass(frozen=True)
class InputProfile:
    """Row count and columns of a whole input batch, known before any row is read."""

    rows: int
    columns: dict[str, ColumnProfile]


@dataclass(frozen=True)
class Partition:
    """Row groups ``[row_groups[0], row_groups[1])`` of input file ``file``: the work of one scoring task."""

    index: int
    file: int
    row_groups: tuple[int, int]
    rows: int


@dataclass(frozen=True)
class Lineage:
    """What every output row says about where its score comes from."""

    model_name: str
    model_version: str
    model_run_id: str
    batch_id: str
    scored_at: datetime
    flow_run_id: str


@dataclass(frozen=True)
class OutlierReference:
    """Training range of each numeric feature and the categories seen for each categorical one."""

    ranges: dict[str, tuple[float, float]]
    categories: dict[str, tuple[str, ...]]


@dataclass(frozen=True)
class RowVerdict:
    """Row-level contract result of one chunk: which rows fail, why (``""`` if they pass), counts per check."""

    failed: np.ndarray
    reasons: np.ndarray
    counts: dict[str, int]


@dataclass(frozen=True)
class OutlierFlags:
    """Per row: outside the training reference or not, and which features are (comma-separated)."""

    flagged: np.ndarray
    features: pd.Categorical
    counts: dict[str, int]


@dataclass(frozen=True)
class PartitionResult:
    """What one scoring task did: rows in, scored, quarantined, flagged; reasons; files written (relative)."""

    rows_in: int = 0
    rows_scored: int = 0
    rows_quarantined: int = 0
    rows_outlier: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    outlier_features: dict[str, int] = field(default_factory=dict)
    files: tuple[str, ...] = ()


class Scorer(Protocol):
    """A fitted classifier: the pipeline logged with a model version."""

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray: ...


@dataclass(frozen=True)
class ScoredChunk:
    """One chunk, scored: output rows of the rows that pass, and which rows fail the contract and why."""

    scores: pd.DataFrame
    failed: np.ndarray
    reasons: np.ndarray
    result: PartitionResult


# --- the contract ---------------------------------------------------------------------------------------


def scoring_specs(contract: Sequence[ExpectationSpec], usecase: UseCase) -> tuple[ExpectationSpec, ...]:
    """The model's contract plus what lineage needs: the id column present and set on every row.

    Raises:
        MlopsError: the contract holds a row check that cannot be decided chunk by chunk (e.g. uniqueness).
    """
    unsupported = [s.label for s in contract if s.row_level and s.kind not in _CHUNK_LOCAL_ROW_KINDS]
    if unsupported:
        raise MlopsError(f"the model's contract holds checks scoring cannot run chunk by chunk: {unsupported}")
    ident = usecase.id_column
    return (
        *contract,
        ExpectationSpec("columns_exist", columns=(ident,)),
        ExpectationSpec("not_null", column=ident),
    )


def needed_columns(specs: Sequence[ExpectationSpec]) -> tuple[str, ...]:
    """Every column the specs name, in first-seen order."""
    names = [c for s in specs for c in ((s.column,) if s.column else s.columns)]
    return tuple(dict.fromkeys(names))


def column_types(specs: Sequence[ExpectationSpec]) -> dict[str, str]:
    """The type the contract gives each column (``of_type`` specs): what chunks are cast to when read."""
    return {s.column: s.type_name for s in specs if s.kind == "of_type" and s.column and s.type_name}


def table_problems(profile: InputProfile, specs: Sequence[ExpectationSpec]) -> list[str]:
    """Table-level contract failures of a whole batch, one readable line each; [] when it passes.

    An empty batch is reported alone; checks of a missing column are skipped (the missing column is named).
    Input columns named like the quarantine's own columns are a problem too: a quarantined row keeps them all.
    """
    if profile.rows == 0:
        return ["the input has no rows"]
    cols = profile.columns
    problems = [f"column '{c}' clashes with a column scoring adds" for c in cols if c in RESERVED_COLUMNS]
    for spec in specs:
        if spec.kind == "columns_exist":
            problems += [_missing_column(name, cols) for name in spec.columns if name not in cols]
        elif spec.kind == "row_count_between":
            low, high = spec.min_value, spec.max_value
            if (low is not None and profile.rows < low) or (high is not None and profile.rows > high):
                problems.append(f"the input has {profile.rows} rows, outside the contract's [{low}, {high}]")
        elif spec.column not in cols:
            continue
        elif spec.kind == "of_type":
            problems += _type_problem(spec, cols[spec.column])
        elif spec.kind == "null_fraction_at_most":
            share, limit = cols[spec.column].nulls / profile.rows, spec.max_fraction or 0.0
            if share > limit:
                what = "entirely null" if share == 1.0 else f"{share:.2%} null"
                problems.append(f"column '{spec.column}' is {what}; the contract allows at most {limit:.2%}")
    return list(dict.fromkeys(problems))


def check_table(profile: InputProfile, specs: Sequence[ExpectationSpec], source: str) -> None:
    """Fail the batch on any table-level contract failure.

    Raises:
        InputDataError: naming every failing column or check of ``source``.
    """
    problems = table_problems(profile, specs)
    if problems:
        raise InputDataError(f"{source} breaks the model's contract: " + "; ".join(problems))


def _missing_column(name: str, present: dict[str, ColumnProfile]) -> str:
    close = difflib.get_close_matches(name, list(present), n=1, cutoff=0.6)
    hint = f" (renamed? the input has '{close[0]}')" if close else ""
    return f"column '{name}' is missing{hint}"


def _type_problem(spec: ExpectationSpec, column: ColumnProfile) -> list[str]:
    accepted = _ACCEPTED_KINDS.get(spec.type_name or "")
    if accepted is None:
        return [f"the contract's type {spec.type_name!r} of column '{spec.column}' is not one scoring knows"]
    if column.kind in accepted:
        return []
    return [f"column '{spec.column}' is {column.type_name}; the contract expects {spec.type_name}"]


def check_rows(frame: pd.DataFrame, specs: Sequence[ExpectationSpec]) -> RowVerdict:
    """Row-level contract checks of one chunk (Great Expectations' semantics; table-level specs are skipped).

    Raises:
        MlopsError: a row check of a kind scoring cannot run chunk by chunk.
    """
    n = len(frame)
    masks = {s.label: _failing_rows(frame, s) for s in specs if s.row_level}
    failed = np.zeros(n, dtype=bool)
    reasons = np.full(n, "", dtype=object)
    counts: dict[str, int] = {}
    for label in sorted(masks):
        mask = masks[label]
        if not mask.any():
            continue
        counts[label] = int(mask.sum())
        before = reasons[mask]
        reasons[mask] = np.where(before == "", label, before + "; " + label)
        failed |= mask
    return RowVerdict(failed, reasons, counts)


DUPLICATE_ID_REASON = "duplicate {column}: an earlier row of the batch has it"


def _with_failure(verdict: RowVerdict, mask: np.ndarray, label: str) -> RowVerdict:
    before = verdict.reasons[mask]
    reasons = verdict.reasons.copy()
    reasons[mask] = np.where(before == "", label, before + "; " + label)
    return RowVerdict(verdict.failed | mask, reasons, {**verdict.counts, label: int(mask.sum())})


def duplicate_positions(ids: pd.Series) -> np.ndarray:
    """Positions of the rows whose id an earlier row already has (the first of each id is kept)."""
    return np.flatnonzero(ids.duplicated(keep="first").to_numpy())


def positions_by_partition(
    positions: np.ndarray, row_groups: Sequence[Sequence[int]], partitions: Sequence[Partition]
) -> dict[int, np.ndarray]:
    """Batch-wide row positions split by partition, relative to each partition's first row (files in order)."""
    file_starts = np.cumsum([0, *(sum(g) for g in row_groups)])
    found = {}
    for part in partitions:
        groups = row_groups[part.file]
        start = int(file_starts[part.file]) + sum(groups[: part.row_groups[0]])
        inside = positions[(positions >= start) & (positions < start + part.rows)] - start
        if len(inside):
            found[part.index] = inside
    return found


def _failing_rows(frame: pd.DataFrame, spec: ExpectationSpec) -> np.ndarray:
    if spec.kind not in _CHUNK_LOCAL_ROW_KINDS:
        raise MlopsError(f"scoring cannot check {spec.label} chunk by chunk")
    values = frame[spec.column]
    if spec.kind == "not_null":
        return values.isna().to_numpy()
    if spec.kind == "between":
        data = _floats(values)
        bad = np.zeros(len(values), dtype=bool)
        if spec.min_value is not None:
            bad |= data < spec.min_value  # NaN compares False: nulls pass, as in GX
        if spec.max_value is not None:
            bad |= data > spec.max_value
        return bad
    present = values.notna().to_numpy()
    if spec.kind == "in_set":
        return present & ~values.isin(list(spec.value_set)).to_numpy()
    # match_regex
    found = values.astype("str").str.contains(spec.regex or "", regex=True).to_numpy(dtype=bool, na_value=True)
    return present & ~found


def _floats(values: pd.Series) -> np.ndarray:
    return pd.to_numeric(values, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)


def score_chunk(
    frame: pd.DataFrame,
    model: Scorer,
    usecase: UseCase,
    row_specs: Sequence[ExpectationSpec],
    reference: OutlierReference,
    lineage: Lineage,
    duplicate: np.ndarray | None = None,
) -> ScoredChunk:
    """Check the rows of one chunk, score those that pass, flag outliers and add lineage.

    Args:
        frame: The chunk: at least the id column and the model inputs, typed as the contract says.
        model: The fitted pipeline.
        usecase: Id column, model inputs and decision threshold.
        row_specs: Row-level checks (others are ignored); a failing row is not scored.
        reference: Training ranges and categories for the outlier flags.
        lineage: Model, batch and run the output rows name.
        duplicate: Per row, whether an earlier row of the batch has its id (quarantined: a join by id would
            count it twice).

    Returns:
        Scores of the passing rows; ``failed`` (per input row) and ``reasons`` (per failing row, in order).
    """
    verdict = check_rows(frame, row_specs)
    if duplicate is not None and duplicate.any():
        verdict = _with_failure(verdict, duplicate, DUPLICATE_ID_REASON.format(column=usecase.id_column))
    passing = frame.loc[~verdict.failed] if verdict.counts else frame
    proba = model.predict_proba(feature_frame(passing, usecase))[:, 1] if len(passing) else np.zeros(0)
    flags = outlier_flags(passing, reference)
    ident = usecase.id_column
    scores = assemble_scores(passing[ident], proba, usecase.model.decision_threshold, flags, lineage, ident)
    result = PartitionResult(
        rows_in=len(frame),
        rows_scored=len(scores),
        rows_quarantined=int(verdict.failed.sum()),
        rows_outlier=int(flags.flagged.sum()),
        reasons=verdict.counts,
        outlier_features=flags.counts,
    )
    return ScoredChunk(scores, verdict.failed, verdict.reasons[verdict.failed], result)


# --- outliers -------------------------------------------------------------------------------------------


def outlier_reference(sketch: ReferenceSketch) -> OutlierReference:
    """From the training sketch: each numeric feature's [min, max] and each categorical feature's categories."""
    ranges = {c: (s.min, s.max) for c, s in sketch.numeric.items() if s.min is not None and s.max is not None}
    categories = {c: tuple(sorted(s.frequencies)) for c, s in sketch.categorical.items()}
    return OutlierReference(ranges, categories)


def outlier_flags(frame: pd.DataFrame, reference: OutlierReference) -> OutlierFlags:
    """Flag values outside the training range and categories never seen in training (nulls are not flagged)."""
    masks: dict[str, np.ndarray] = {}
    for column, (low, high) in reference.ranges.items():
        data = _floats(frame[column])
        masks[column] = (data < low) | (data > high)
    for column, seen in reference.categories.items():
        values = frame[column]
        masks[column] = (values.notna() & ~values.isin(list(seen))).to_numpy()
    # each row's set of flagged features as one integer (a bit per feature), so that the few distinct sets
    # are found by sorting integers and the names are built once per set, not once per row
    names = list(masks)
    keys = np.zeros(len(frame), dtype=object if len(names) > 62 else "int64")
    for bit, column in enumerate(names):
        keys[masks[column]] += 1 << bit
    sets, codes = np.unique(keys, return_inverse=True)
    labels = [",".join(c for bit, c in enumerate(names) if int(key) >> bit & 1) for key in sets]
    features = pd.Categorical.from_codes(np.asarray(codes, dtype="int64").reshape(-1), categories=labels)
    counts = {c: int(masks[c].sum()) for c in names if masks[c].any()}
    return OutlierFlags(keys != 0, features, counts)


# --- output rows ----------------------------------------------------------------------------------------


def lineage_columns(lineage: Lineage, rows: int) -> dict[str, object]:
    """The lineage columns for ``rows`` rows: constant strings as categoricals (dictionary-encoded in Parquet)."""
    codes = np.zeros(rows, dtype="int8")
    text = {
        MODEL_NAME: lineage.model_name,
        MODEL_VERSION: lineage.model_version,
        MODEL_RUN_ID: lineage.model_run_id,
        BATCH_ID: lineage.batch_id,
        FLOW_RUN_ID: lineage.flow_run_id,
    }
    columns: dict[str, object] = {k: pd.Categorical.from_codes(codes, categories=[v]) for k, v in text.items()}
    stamp = pd.Timestamp(lineage.scored_at)
    utc = stamp.tz_convert("UTC") if stamp.tzinfo else stamp.tz_localize("UTC")
    naive = np.full(rows, utc.tz_localize(None).to_datetime64().astype("datetime64[us]"))
    columns[SCORED_AT] = pd.DatetimeIndex(naive).tz_localize("UTC").array
    return {name: columns[name] for name in LINEAGE_COLUMNS}


def assemble_scores(
    ids: pd.Series, proba: np.ndarray, threshold: float, flags: OutlierFlags, lineage: Lineage, id_column: str
) -> pd.DataFrame:
    """One output row per scored input row: id, probability, label at ``threshold``, outlier flags, lineage."""
    proba = np.asarray(proba, dtype="float64")
    if not len(ids) == len(proba) == len(flags.flagged):
        raise ValueError(f"{len(ids)} ids, {len(proba)} probabilities and {len(flags.flagged)} flags")
    return pd.DataFrame(
        {
            id_column: ids.reset_index(drop=True),
            PROBABILITY: proba,
            PREDICTED_LABEL: (proba >= threshold).astype("int8"),
            OUTLIER: flags.flagged,
            OUTLIER_FEATURES: flags.features,
            **lineage_columns(lineage, len(proba)),
        }
    )


def assemble_quarantine(rows: pd.DataFrame, reasons: np.ndarray, lineage: Lineage) -> pd.DataFrame:
    """Quarantined input rows, every input column kept, with their reasons and the run's lineage."""
    if len(rows) != len(reasons):
        raise ValueError(f"{len(rows)} rows and {len(reasons)} reasons")
    extra = {QUARANTINE_REASONS: pd.array(reasons, dtype="str"), **lineage_columns(lineage, len(rows))}
    clash = sorted(set(extra) & set(rows.columns))
    if clash:
        raise MlopsError(f"input column(s) {clash} clash with the quarantine's own columns")
    return rows.reset_index(drop=True).assign(**extra)


# --- layout and bookkeeping -----------------------------------------------------------------------------


def plan_partitions(row_groups: Sequence[Sequence[int]], chunk_rows: int) -> tuple[Partition, ...]:
    """Cut the row groups of each file into consecutive runs of at most ``chunk_rows`` rows.

    A row group larger than ``chunk_rows`` is a partition of its own (read back in slices of ``chunk_rows``);
    files or row groups without rows give no partition.

    Args:
        row_groups: Row count of each row group, per input file.
        chunk_rows: Target rows per partition.
    """
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be positive, got {chunk_rows}")
    plan: list[Partition] = []
    for file, sizes in enumerate(row_groups):
        start, rows = 0, 0
        for group, size in enumerate(sizes):
            if rows and rows + size > chunk_rows:
                plan.append(Partition(len(plan), file, (start, group), rows))
                start, rows = group, 0
            rows += size
        if rows:
            plan.append(Partition(len(plan), file, (start, len(sizes)), rows))
    return tuple(plan)


def snapshot_batch_id(period: str, version: str) -> str:
    """Batch id of a curated snapshot: its period and content version."""
    return safe_value(f"{period}_{version}")


def file_batch_id(uri: str) -> str:
    """Batch id of a Parquet file or folder: its name and a digest of the URI (stable across reruns)."""
    name = uri.rstrip("/").rsplit("/", 1)[-1].removesuffix(".parquet") or "input"
    return safe_value(f"{name}-{hashlib.sha256(uri.rstrip('/').encode()).hexdigest()[:10]}")


def safe_value(text: str) -> str:
    """``text`` usable as one path segment and partition value: letters, digits and ``._-`` only."""
    cleaned = _UNSAFE.sub("-", text).strip("-.")
    if not cleaned:
        raise ValueError(f"nothing usable in {text!r}")
    return cleaned


def partition_path(batch_id: str, model_version: str) -> str:
    """Relative folder of one (batch, model version): ``batch=<id>/model=<version>``.

    The keys differ from the in-file column names (``batch_id``, ``model_version``) so that a Hive-partitioned
    read of the output root never meets two types for one name.
    """
    return f"batch={safe_value(batch_id)}/model={safe_value(model_version)}"


def part_name(partition: int, piece: int) -> str:
    """File name of one written chunk: partition index, then the slice within the partition."""
    return f"part-{partition:05d}-{piece:03d}.parquet"


def stale_files(existing: Iterable[str], written: Iterable[str]) -> list[str]:
    """Parquet files in a folder (URIs) that an earlier run wrote and this run, which wrote ``written``
    (file names), did not rewrite."""
    keep = set(written)
    return sorted(f for f in existing if f.endswith(".parquet") and f.rsplit("/", 1)[-1] not in keep)


def combine(results: Iterable[PartitionResult]) -> PartitionResult:
    """Totals over partitions."""
    results = list(results)
    reasons: Counter[str] = Counter()
    features: Counter[str] = Counter()
    for r in results:
        reasons.update(r.reasons)
        features.update(r.outlier_features)
    return PartitionResult(
        rows_in=sum(r.rows_in for r in results),
        rows_scored=sum(r.rows_scored for r in results),
        rows_quarantined=sum(r.rows_quarantined for r in results),
        rows_outlier=sum(r.rows_outlier for r in results),
        reasons=dict(reasons.most_common()),
        outlier_features=dict(features.most_common()),
        files=tuple(sorted(f for r in results for f in r.files)),
    )
