"""Labels that arrive after scoring: a table of key columns and the target's source, cut to one period.

``prepare_labels`` turns the raw rows into (id, label) pairs by the same rules ingestion uses (types, PII
policy before the id, label threshold), so they join the curated rows, the scores and the monitoring inputs by
id. Rows that cannot be used are quarantined with their reasons; rows in = labels + quarantined.
``attach_labels`` puts arrived labels onto curated rows for training.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from tasks import cleaning
from tasks.batch import QUARANTINE_REASONS, period_timezone
from tasks.errors import InputDataError
from tasks.expectations import ROW_ID
from tasks.periods import naive_in
from tasks.privacy import apply_pii_policy
from tasks.usecase import UseCase


@dataclass(frozen=True)
class PreparedLabels:
    """Usable labels (id, label), the quarantined raw rows with their reasons, and the rows read."""

    labels: pd.DataFrame
    quarantine: pd.DataFrame
    rows_in: int


def label_columns(usecase: UseCase) -> dict:
    """The declared columns of the labels table: the key columns, the time column, and its own columns."""
    spec = usecase.source.labels
    if spec is None:
        raise InputDataError(f"use case '{usecase.name}' declares no source.labels table")
    wanted = {c: usecase.columns[c] for c in (*usecase.key, usecase.time_column) if c in usecase.columns}
    return {**wanted, **spec.columns}


def prepare_labels(
    table: pd.DataFrame, usecase: UseCase, period: str, pii_key: bytes | None, known_ids: pd.Series
) -> PreparedLabels:
    """(id, label) pairs of one period; ids repeated, unknown to the period's curated rows or without outcome
    are quarantined with the reason.

    Raises:
        InputDataError: a key, time or target-source column is missing from the table.
    """
    specs = label_columns(usecase)
    raw = cleaning.with_row_ids(table)
    cleaning.check_columns(raw, specs, usecase.source.labels.table)
    frame, type_reasons = cleaning.coerce_types(raw, specs)
    zone = period_timezone(usecase)
    if usecase.time_column in frame.columns:
        frame = frame.assign(**{usecase.time_column: naive_in(frame[usecase.time_column], zone)})
    frame = cleaning.derive_label(frame, usecase.target)
    frame = apply_pii_policy(frame, usecase.pii, pii_key)
    frame = cleaning.derive_id(frame, usecase.key, usecase.id_column)
    reasons = [type_reasons, cleaning.outside_period(frame, usecase.time_column, period, zone)]
    ids, label = frame[usecase.id_column], frame[usecase.target.name]
    unusable = frame[ROW_ID].isin(pd.concat(reasons)[ROW_ID])
    repeated = ids.duplicated(keep="first") & ~unusable
    reasons.append(cleaning.reasons_for(frame.loc[repeated, ROW_ID], f"duplicate_id({usecase.id_column})"))
    unknown = ~ids.isin(set(known_ids.astype("str"))) & ~unusable
    reasons.append(cleaning.reasons_for(frame.loc[unknown, ROW_ID], f"id_not_ingested({period})"))
    no_outcome = label.isna() & ~unusable
    reasons.append(cleaning.reasons_for(frame.loc[no_outcome, ROW_ID], f"no_outcome({usecase.target.source})"))
    merged = pd.concat(reasons, ignore_index=True).drop_duplicates()
    by_row = merged.groupby(ROW_ID)[cleaning.REASON].agg(lambda r: "; ".join(sorted(r)))
    bad = frame[ROW_ID].isin(by_row.index)
    labels = frame.loc[~bad, [usecase.id_column, usecase.target.name]].reset_index(drop=True)
    as_text = raw.drop(columns=[ROW_ID]).astype("str").where(raw.notna())
    quarantine = apply_pii_policy(as_text.assign(**{ROW_ID: raw[ROW_ID]}), usecase.pii, pii_key)
    quarantine = quarantine[quarantine[ROW_ID].isin(by_row.index)]
    quarantine = quarantine.assign(**{QUARANTINE_REASONS: quarantine[ROW_ID].map(by_row).astype("str")})
    return PreparedLabels(labels, quarantine.reset_index(drop=True), len(raw))


def attach_labels(curated: pd.DataFrame, labels: pd.DataFrame, id_column: str, label: str) -> pd.DataFrame:
    """Curated rows with arrived labels put in (an arrived label is the outcome; it replaces what ingestion had)."""
    arrived = labels.drop_duplicates(id_column).set_index(id_column)[label]
    filled = curated[id_column].map(arrived).astype("Int8")
    return curated.assign(**{label: filled.where(filled.notna(), curated[label]).astype("Int8")})
