"""Land one period of raw source data in the landing area, as an upstream system would deliver it."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Literal

import pandas as pd
from prefect import flow

from adapters.file_source import read_source_table, source_provenance
from adapters.raw_files import encode_csv, encode_parquet
from adapters.storage import join_uri, write_json
from flows.context import Context, build_context
from flows.steps import io_step
from tasks.batch import period_timezone
from tasks.landing import check_not_empty, select_by_time, select_lookup_rows, select_period, time_range
from tasks.periods import check_period

BATCH_MANIFEST = "_batch.json"


@io_step("read-source-tables")
def read_source_tables(ctx: Context, names: list[str]) -> tuple[dict[str, pd.DataFrame], dict[str, list[dict]]]:
    """The named source tables as text, and the files each was read from."""
    source, endpoint = ctx.usecase.source, ctx.settings.storage.s3_endpoint_url
    tables, files = {}, {}
    for name in names:
        tables[name], read = read_source_table(source, name, s3_endpoint_url=endpoint)
        files[name] = [f.to_dict() for f in read]
    return tables, files


@io_step("write-raw-batch")
def write_raw_batch(
    ctx: Context, batch_uri: str, tables: dict[str, pd.DataFrame], fmt: str, period: str, extra: dict
) -> dict:
    storage = ctx.storage(batch_uri)
    encode = encode_csv if fmt == "csv" else encode_parquet
    files = {}
    for name, frame in tables.items():
        data = encode(frame)
        storage.write_bytes(join_uri(batch_uri, f"{name}.{fmt}"), data)
        files[name] = {
            "file": f"{name}.{fmt}",
            "rows": len(frame),
            "sha256": hashlib.sha256(data).hexdigest(),
        }
    source = ctx.usecase.source
    first = next(iter(files))
    manifest = {
        "batch_id": f"{ctx.usecase.name}-{period}-{files[first]['sha256'][:8]}",
        "usecase": ctx.usecase.name,
        "period": period,
        "format": fmt,
        "primary": first,
        "tables": files,
        "source": source_provenance(source),
        **extra,
        "landed_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    # the manifest is written last: a batch folder without it is still being delivered
    write_json(storage, join_uri(batch_uri, BATCH_MANIFEST), manifest)
    return manifest


def cut_period(ctx: Context, primary: pd.DataFrame, table: str, period: str) -> tuple[pd.DataFrame, int]:
    """The rows of ``period`` (by integer period columns or by the time column) and rows without a time.

    Raises:
        MlopsError: no row falls in the period (an empty landed batch is never a success).
    """
    uc = ctx.usecase
    if uc.source.period_columns is not None:
        rows = select_period(primary, uc.source.period_columns, period)
        check_not_empty(len(rows), table, period, f"{len(primary):,} rows, none of that period")
        return rows, 0
    spec = uc.columns[uc.time_column]
    rows, timeless = select_by_time(primary, uc.time_column, spec, period, period_timezone(uc))
    check_not_empty(len(rows), table, period, time_range(primary, uc.time_column, spec))
    return rows, timeless


@flow(name="land", log_prints=False)
def land(
    period: str,
    to_uri: str | None = None,
    raw_format: Literal["csv", "parquet"] | None = None,
    profile: str | None = None,
    usecase: str | None = None,
) -> dict:
    """Land one period of raw source data as one batch folder in the landing area."""
    ctx = build_context(profile, usecase)
    period = check_period(period, ctx.usecase.period.unit)
    source = ctx.usecase.source
    tables, read = read_source_tables(ctx, [source.primary, *(lk.name for lk in source.lookups)])
    primary, timeless = cut_period(ctx, tables[source.primary], source.primary, period)
    if source.labels is not None:
        # outcomes arrive later, with the labels table: a batch never carries them, even when its file has them
        primary = primary.drop(columns=[c for c in source.labels.columns if c not in ctx.usecase.columns])
    batch = {source.primary: primary}
    for lookup in source.lookups:
        batch[lookup.name] = select_lookup_rows(tables[lookup.name], primary, lookup)
    batch_uri = join_uri(to_uri or ctx.landing_root, period)
    extra = {"source_files": read, "source_rows_without_time": timeless}
    manifest = write_raw_batch(ctx, batch_uri, batch, raw_format or source.raw_format, period, extra)
    return {"batch_uri": batch_uri, **manifest}
