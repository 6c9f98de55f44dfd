"""Land one month of raw source data in the landing area, as an upstream system would deliver it."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Literal

import pandas as pd
from prefect import flow

from adapters import package_source
from adapters.raw_files import encode_csv, encode_parquet
from adapters.storage import join_uri, write_json
from flows.context import Context, build_context
from flows.steps import io_step
from tasks.landing import parse_period, select_lookup_rows, select_period

BATCH_MANIFEST = "_batch.json"


@io_step("read-source-tables")
def read_source_tables(ctx: Context) -> dict[str, pd.DataFrame]:
    source = ctx.usecase.source
    return {name: package_source.read_table(source.package, path) for name, path in source.tables.items()}


@io_step("write-raw-batch")
def write_raw_batch(ctx: Context, batch_uri: str, tables: dict[str, pd.DataFrame], fmt: str, period: str) -> dict:
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
    manifest = {
        "batch_id": f"{ctx.usecase.name}-{period}-{files[source.primary]['sha256'][:8]}",
        "usecase": ctx.usecase.name,
        "period": period,
        "format": fmt,
        "primary": source.primary,
        "tables": files,
        "source": {"package": source.package, "version": package_source.package_version(source.package)},
        "landed_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    # the manifest is written last: a batch folder without it is still being delivered
    write_json(storage, join_uri(batch_uri, BATCH_MANIFEST), manifest)
    return manifest


@flow(name="land", log_prints=False)
def land(
    period: str,
    to_uri: str | None = None,
    raw_format: Literal["csv", "parquet"] | None = None,
    profile: str | None = None,
    usecase: str | None = None,
) -> dict:
    """Land one month of raw source data as one batch folder in the landing area."""
    parse_period(period)
    ctx = build_context(profile, usecase)
    source = ctx.usecase.source
    tables = read_source_tables(ctx)
    primary = select_period(tables[source.primary], source.period_columns, period)
    batch = {source.primary: primary}
    for lookup in source.lookups:
        batch[lookup.name] = select_lookup_rows(tables[lookup.name], primary, lookup)
    batch_uri = join_uri(to_uri or ctx.landing_root, period)
    manifest = write_raw_batch(ctx, batch_uri, batch, raw_format or source.raw_format, period)
    return {"batch_uri": batch_uri, **manifest}
