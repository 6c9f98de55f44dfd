"""Labels that arrive later: land them per period, store them by id, and hand them to the checks and to training.

Stored labels of a period live beside the curated snapshots::

    <lake>/<usecase>/labels/period=<period>/v=<version>/{labels.parquet, quarantine.parquet, manifest.json}
    <lake>/<usecase>/labels/period=<period>/latest.json

A later delivery for the same period is merged over the earlier one (a newer label of an id replaces it) into a
new version; the performance check and every training run read the latest version.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
from prefect import flow, runtime

from adapters.file_source import read_source_table
from adapters.storage import join_uri, read_parquet, write_json, write_parquet
from flows.context import Context, build_context
from flows.ingest_report import summarize_failures
from flows.snapshots import labels_period_uri, latest_labels_uri, latest_snapshot_uri, read_stored_labels
from flows.steps import compute_step, io_step
from tasks import labels as label_logic
from tasks.batch import content_version, period_timezone
from tasks.errors import InputDataError, MlopsError
from tasks.landing import check_not_empty, select_by_time, time_range
from tasks.periods import check_period


@io_step("read-label-source")
def read_label_rows(ctx: Context, period: str) -> tuple[pd.DataFrame, list[dict]]:
    """The labels table's rows of one period, and the files they were read from."""
    uc = ctx.usecase
    spec = label_logic.label_columns(uc)[uc.time_column]
    table, files = read_source_table(
        uc.source, uc.source.labels.table, s3_endpoint_url=ctx.settings.storage.s3_endpoint_url
    )
    rows, _ = select_by_time(table, uc.time_column, spec, period, period_timezone(uc))
    check_not_empty(len(rows), uc.source.labels.table, period, time_range(table, uc.time_column, spec))
    return rows, [f.to_dict() for f in files]


@io_step("read-ingested-ids")
def ingested_ids(ctx: Context, period: str) -> tuple[pd.Series, str]:
    """Ids of the period's curated rows: only those were scored, so only those can get a label."""
    try:
        snapshot = latest_snapshot_uri(ctx, period)
    except MlopsError:
        raise InputDataError(f"labels for {period} arrived before the period was ingested: ingest it first") from None
    data_uri = join_uri(snapshot, "data.parquet")
    return read_parquet(ctx.storage(data_uri), data_uri, [ctx.usecase.id_column])[ctx.usecase.id_column], snapshot


@compute_step("prepare-labels")
def prepare(ctx: Context, rows: pd.DataFrame, period: str, known: pd.Series) -> label_logic.PreparedLabels:
    return label_logic.prepare_labels(rows, ctx.usecase, period, ctx.pii_key(), known)


@io_step("write-labels")
def write_labels(ctx: Context, period: str, prepared: label_logic.PreparedLabels, summary: dict) -> dict:
    """Merge over the period's earlier labels and write a new version (nothing when it exists already)."""
    uc = ctx.usecase
    earlier_uri = latest_labels_uri(ctx, period)
    merged = prepared.labels
    if earlier_uri is not None:
        earlier = read_stored_labels(ctx, earlier_uri)
        merged = pd.concat([prepared.labels, earlier], ignore_index=True).drop_duplicates(uc.id_column, keep="first")
    merged = merged.sort_values(uc.id_column, kind="stable").reset_index(drop=True)
    version = content_version(merged)
    uri = join_uri(labels_period_uri(ctx, period), f"v={version}")
    storage = ctx.storage(uri)
    manifest = {**summary, "version": version, "uri": uri, "rows_stored": len(merged), "merged_over": earlier_uri}
    if not storage.exists(join_uri(uri, "manifest.json")):
        write_parquet(storage, join_uri(uri, "labels.parquet"), merged)
        write_parquet(storage, join_uri(uri, "quarantine.parquet"), prepared.quarantine)
        write_json(storage, join_uri(uri, "manifest.json"), manifest)
    write_json(storage, join_uri(labels_period_uri(ctx, period), "latest.json"), {"version": version})
    return manifest


@flow(name="land-labels", log_prints=False)
def land_labels(period: str, profile: str | None = None, usecase: str | None = None) -> dict:
    """Store the labels of one period that arrived after scoring, joinable by id, with a quarantine of the rest."""
    ctx = build_context(profile, usecase)
    period = check_period(period, ctx.usecase.period.unit)
    rows, files = read_label_rows(ctx, period)
    known, snapshot = ingested_ids(ctx, period)
    prepared = prepare(ctx, rows, period, known)
    summary = {
        "usecase": ctx.usecase.name,
        "period": period,
        "snapshot_uri": snapshot,
        "source_files": files,
        "rows_in": prepared.rows_in,
        "rows_labelled": len(prepared.labels),
        "rows_quarantined": len(prepared.quarantine),
        "positives": int(prepared.labels[ctx.usecase.target.name].sum()),
        "quarantine_reasons": summarize_failures(prepared.quarantine),
        "flow_run_id": str(runtime.flow_run.id or ""),
        "landed_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    return write_labels(ctx, period, prepared, summary)
