"""A raw batch from tables to (validation frame) and, once validated, to curated rows + quarantined rows.

``prepare_batch`` runs every cleaning step and PII policy before validation, so no raw PII value reaches the
validation results or Data Docs. ``split_batch`` applies the validation report: rows with any reason go to
quarantine with all their reasons, the others are curated. Nothing is dropped silently.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import pandas as pd

from tasks import cleaning
from tasks.errors import InputDataError
from tasks.expectations import ROW_ID, ValidationReport
from tasks.periods import naive_in
from tasks.privacy import apply_pii_policy
from tasks.usecase import UseCase

QUARANTINE_REASONS = "quarantine_reasons"


@dataclass(frozen=True)
class PreparedBatch:
    """Cleaned rows ready for validation, the raw rows (PII applied) for quarantine, and reasons so far."""

    frame: pd.DataFrame
    raw: pd.DataFrame
    reasons: pd.DataFrame
    extra_columns: tuple[str, ...]


@dataclass(frozen=True)
class SplitBatch:
    curated: pd.DataFrame
    quarantine: pd.DataFrame
    rows_in: int

    @property
    def quarantine_fraction(self) -> float:
        return len(self.quarantine) / self.rows_in if self.rows_in else 0.0


def prepare_batch(
    tables: dict[str, pd.DataFrame], usecase: UseCase, period: str, pii_key: bytes | None
) -> PreparedBatch:
    """Check columns, cast types, join lookups, derive time/label, apply the PII policy, then derive the id.

    The id is built after the PII policy, so a key that is PII reaches curated rows, scores and monitoring
    only hashed (the same keyed hash a labels table gets, so late labels still join by id).

    Raises:
        InputDataError: a required column is missing, or the batch has a column named like the id column.
    """
    primary_name = usecase.source.primary
    raw = cleaning.with_row_ids(tables[primary_name])
    if usecase.id_column in raw.columns:
        raise InputDataError(
            f"{primary_name}: has a column named '{usecase.id_column}', the id column this use case derives; "
            "rename it in the source or choose another id_column"
        )
    extras = cleaning.check_columns(raw, usecase.columns, primary_name)
    frame, reasons = cleaning.coerce_types(raw, usecase.columns)
    all_reasons = [reasons]
    for lookup in usecase.source.lookups:
        side = tables[lookup.name]
        cleaning.check_columns(side, lookup.columns, lookup.name)
        side_typed, _ = cleaning.coerce_types(cleaning.with_row_ids(side), lookup.columns)
        frame = cleaning.join_lookup(frame, side_typed, lookup)
    zone = period_timezone(usecase)
    if usecase.derived_time is not None:
        frame, reasons = cleaning.derive_time(frame, usecase.derived_time)
        all_reasons.append(reasons)
    else:
        # curated times are naive wall-clock times of the period's zone: splits, time parts and bounds agree
        frame = frame.assign(**{usecase.time_column: naive_in(frame[usecase.time_column], zone)})
    all_reasons.append(cleaning.outside_period(frame, usecase.time_column, period, zone))
    frame = cleaning.derive_label(frame, usecase.target)
    all_reasons.append(cleaning.duplicate_keys(frame, usecase.key))
    frame = apply_pii_policy(frame.drop(columns=extras), usecase.pii, pii_key)
    frame = cleaning.derive_id(frame, usecase.key, usecase.id_column)
    as_text = raw.drop(columns=[ROW_ID]).astype("str").where(raw.notna())
    raw = apply_pii_policy(as_text.assign(**{ROW_ID: raw[ROW_ID]}), usecase.pii, pii_key)
    return PreparedBatch(frame, raw, pd.concat(all_reasons, ignore_index=True), tuple(extras))


def period_timezone(usecase: UseCase) -> str | None:
    """The zone period bounds are read in: the use case's, else the time column's declared zone."""
    spec = usecase.columns.get(usecase.time_column)
    return usecase.period.timezone or (spec.timezone if spec is not None else None)


def validation_frame(prepared: PreparedBatch) -> pd.DataFrame:
    """Rows to validate: every row except repeats of a key (already quarantined as duplicates)."""
    duplicate_rows = prepared.reasons.loc[prepared.reasons["reason"].str.startswith("duplicate_key"), ROW_ID]
    return prepared.frame[~prepared.frame[ROW_ID].isin(duplicate_rows)]


def split_batch(prepared: PreparedBatch, report: ValidationReport, usecase: UseCase) -> SplitBatch:
    """Curated rows (features, ids, label; no leaky or undeclared column) and quarantined raw rows."""
    reasons = [prepared.reasons]
    for result in report.row_failures:
        reasons.append(cleaning.reasons_for(pd.Series(result.failed_rows, dtype="int64"), result.spec.label))
    merged = pd.concat(reasons, ignore_index=True).drop_duplicates()
    by_row = merged.groupby(ROW_ID)["reason"].agg(lambda r: "; ".join(sorted(r)))
    bad = prepared.frame[ROW_ID].isin(by_row.index)
    keep = [c for c in prepared.frame.columns if c not in usecase.leaky_columns and c != ROW_ID]
    curated = prepared.frame.loc[~bad, keep].sort_values(usecase.id_column, kind="stable")
    quarantine = prepared.raw[prepared.raw[ROW_ID].isin(by_row.index)]
    quarantine = quarantine.assign(**{QUARANTINE_REASONS: quarantine[ROW_ID].map(by_row).astype("str")})
    return SplitBatch(curated.reset_index(drop=True), quarantine.reset_index(drop=True), len(prepared.frame))


def content_version(frame: pd.DataFrame) -> str:
    """Content address of a frame: same rows, columns and dtypes give the same version on any machine."""
    digest = hashlib.sha256()
    digest.update(json.dumps([[str(c), str(t)] for c, t in frame.dtypes.items()]).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()[:16]


def schema_of(frame: pd.DataFrame) -> dict[str, str]:
    return {str(c): str(t) for c, t in frame.dtypes.items()}
