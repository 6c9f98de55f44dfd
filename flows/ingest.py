"""Ingest a raw batch: clean, apply the PII policy, validate with Great Expectations, quarantine, version."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
from prefect import flow, runtime

from adapters.gx_validator import validate_frame
from adapters.raw_files import decode_table
from adapters.storage import join_uri, read_json, write_json, write_parquet
from flows.context import Context, build_context
from flows.ingest_report import publish_summary, summarize_failures
from flows.land import BATCH_MANIFEST
from flows.steps import compute_step, io_step
from tasks import batch as batch_logic
from tasks.errors import InputDataError, StorageError
from tasks.expectations import ValidationReport, build_ingest_suite
from tasks.periods import check_period


@io_step("read-raw-batch")
def read_raw_batch(ctx: Context, input_uri: str, period: str | None) -> tuple[dict, dict[str, pd.DataFrame]]:
    """The batch manifest (or one inferred from the files) and every table of the batch as text."""
    storage = ctx.storage(input_uri)
    manifest_uri = join_uri(input_uri, BATCH_MANIFEST)
    source = ctx.usecase.source
    names = [source.primary, *(lk.name for lk in source.lookups)]
    if storage.exists(manifest_uri):
        meta = read_json(storage, manifest_uri)
    else:
        if period is None:
            raise InputDataError(f"{input_uri}: no {BATCH_MANIFEST} in the batch folder; pass the period")
        fmt = source.raw_format
        meta = {
            "batch_id": None,
            "period": period,
            "format": fmt,
            "tables": {n: {"file": f"{n}.{fmt}"} for n in names},
        }
    meta["period"] = period or meta["period"]
    tables = {}
    for name in names:
        if name not in meta["tables"]:
            raise InputDataError(f"{input_uri}: the batch has no '{name}' table")
        uri = join_uri(input_uri, meta["tables"][name]["file"])
        try:
            data = storage.read_bytes(uri)
            tables[name] = decode_table(data, meta["format"], uri, missing_values=source.missing_values)
        except StorageError as exc:
            raise StorageError(f"input not found: {uri} ({exc})") from None
    return meta, tables


@compute_step("clean-batch")
def clean_batch(ctx: Context, tables: dict[str, pd.DataFrame], period: str) -> batch_logic.PreparedBatch:
    return batch_logic.prepare_batch(tables, ctx.usecase, period, ctx.pii_key())


@compute_step("validate-batch")
def validate_batch(ctx: Context, frame: pd.DataFrame) -> tuple[ValidationReport, dict[str, bytes]]:
    return validate_frame(frame, build_ingest_suite(ctx.usecase), suite_name=f"{ctx.usecase.name}_ingest")


@io_step("write-rejection")
def write_rejection(ctx: Context, summary: dict, docs: dict[str, bytes]) -> str:
    """Keep the evidence of a rejected batch (counts, reasons, Data Docs); the raw batch stays untouched."""
    where = join_uri(ctx.lake_root, "rejected", f"period={summary['period']}", summary["run_key"])
    storage = ctx.storage(where)
    for path, data in docs.items():
        storage.write_bytes(join_uri(where, "validation", path), data)
    write_json(storage, join_uri(where, "report.json"), summary)
    return where


@io_step("write-snapshot")
def write_snapshot(ctx: Context, split: batch_logic.SplitBatch, docs: dict[str, bytes], summary: dict) -> dict:
    """Write data, quarantine, Data Docs and manifest under the content version; nothing if it exists."""
    snapshot_uri = summary["snapshot_uri"]
    storage = ctx.storage(snapshot_uri)
    manifest_uri = join_uri(snapshot_uri, "manifest.json")
    if storage.exists(manifest_uri):
        return {**read_json(storage, manifest_uri), "created": False}
    write_parquet(storage, summary["data_uri"], split.curated)
    write_parquet(storage, summary["quarantine_uri"], split.quarantine)
    for path, data in docs.items():
        storage.write_bytes(join_uri(snapshot_uri, "validation", path), data)
    # the manifest is written last: a version folder without it is incomplete and is never read
    write_json(storage, manifest_uri, summary)
    write_json(storage, join_uri(summary["period_uri"], "latest.json"), {"version": summary["version"]})
    return {**summary, "created": True}


@flow(name="ingest", log_prints=False)
def ingest(input_uri: str, period: str | None = None, profile: str | None = None, usecase: str | None = None) -> dict:
    """Validate a raw batch and publish a versioned curated snapshot and its quarantine."""
    ctx = build_context(profile, usecase)
    if period is not None:
        period = check_period(period, ctx.usecase.period.unit)
    meta, tables = read_raw_batch(ctx, input_uri, period)
    check_period(meta["period"], ctx.usecase.period.unit)
    prepared = clean_batch(ctx, tables, meta["period"])
    report, docs = validate_batch(ctx, batch_logic.validation_frame(prepared))
    split = batch_logic.split_batch(prepared, report, ctx.usecase)
    summary = _summary(ctx, input_uri, meta, prepared, report, split)
    problem = _rejection_reason(ctx, report, split)
    if problem:
        summary.update(status="rejected", problem=problem)
        rejection_uri = write_rejection(ctx, summary, docs)
        summary.update(
            rejection_uri=rejection_uri,
            data_docs_uri=join_uri(rejection_uri, "validation", "index.html"),
            snapshot_uri=None,
            data_uri=None,
            quarantine_uri=None,
        )
        publish_summary(summary)
        raise InputDataError(f"batch {meta['period']} rejected: {problem}")
    result = write_snapshot(ctx, split, docs, summary)
    publish_summary(result)
    return result


def _rejection_reason(ctx: Context, report: ValidationReport, split: batch_logic.SplitBatch) -> str | None:
    if report.table_failures:
        return "; ".join(f"{r.spec.label} failed ({r.observed})" for r in report.table_failures)
    limit = ctx.usecase.validation.max_quarantine_fraction
    if split.quarantine_fraction > limit:
        top = summarize_failures(split.quarantine)[:3]
        reasons = ", ".join(f"{r['reason']}: {r['rows']} rows" for r in top)
        return (
            f"{split.quarantine_fraction:.1%} of rows failed row-level checks, above the {limit:.1%} limit ({reasons})"
        )
    return None


def _summary(ctx, input_uri, meta, prepared, report, split) -> dict:
    version = batch_logic.content_version(split.curated) + batch_logic.content_version(split.quarantine)[:8]
    period_uri = join_uri(ctx.lake_root, "curated", f"period={meta['period']}")
    snapshot_uri = join_uri(period_uri, f"v={version}")
    label = ctx.usecase.target.name
    return {
        "status": "ok",
        "usecase": ctx.usecase.name,
        "period": meta["period"],
        "version": version,
        "run_key": f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{version[:8]}",
        "period_uri": period_uri,
        "snapshot_uri": snapshot_uri,
        "data_uri": join_uri(snapshot_uri, "data.parquet"),
        "quarantine_uri": join_uri(snapshot_uri, "quarantine.parquet"),
        "data_docs_uri": join_uri(snapshot_uri, "validation", "index.html"),
        "source_batch": {
            "uri": input_uri,
            "batch_id": meta.get("batch_id"),
            "tables": meta.get("tables", {}),
        },
        "rows_in": split.rows_in,
        "rows_curated": len(split.curated),
        "rows_quarantined": len(split.quarantine),
        "rows_unlabelled": int(split.curated[label].isna().sum()) if label in split.curated else 0,
        "quarantine_reasons": summarize_failures(split.quarantine),
        "failed_expectations": [
            {"expectation": r.spec.label, "rows": r.unexpected_count, "observed": r.observed}
            for r in report.results
            if not r.success
        ],
        "expectations_evaluated": len(report.results),
        "validation_engine": {"engine": report.engine, **report.extras},
        "extra_columns": list(prepared.extra_columns),
        "schema": batch_logic.schema_of(split.curated),
        "flow_run_id": str(runtime.flow_run.id or ""),
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
