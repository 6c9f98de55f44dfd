"""Curated snapshots by reference: resolve months to snapshot URIs, read them with their manifests."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from adapters.storage import join_uri, read_json, read_parquet
from flows.context import Context
from flows.steps import io_step
from tasks.errors import MlopsError
from tasks.periods import expand_periods


@dataclass(frozen=True)
class SnapshotRef:
    """One curated snapshot: where it is, its content version, the month it holds and its row count."""

    uri: str
    version: str
    period: str
    rows: int


def latest_snapshot_uri(ctx: Context, period: str) -> str:
    """The snapshot URI that ``latest.json`` of a month points at.

    Raises:
        MlopsError: the month was never ingested.
    """
    period_uri = join_uri(ctx.lake_root, "curated", f"period={period}")
    storage = ctx.storage(period_uri)
    pointer = join_uri(period_uri, "latest.json")
    if not storage.exists(pointer):
        raise MlopsError(f"no curated snapshot for {period}: run `mlops land --month {period}` then `mlops ingest`")
    return join_uri(period_uri, f"v={read_json(storage, pointer)['version']}")


def curated_periods(ctx: Context) -> list[str]:
    """Every period with a curated snapshot (a ``latest.json`` pointer), in order."""
    root = join_uri(ctx.lake_root, "curated")
    storage = ctx.storage(root)
    try:
        uris = storage.list(root)
    except MlopsError:
        return []
    marker = "/period="
    return sorted({u.split(marker, 1)[1].split("/", 1)[0] for u in uris if u.endswith("/latest.json") and marker in u})


@io_step("resolve-snapshots")
def resolve_snapshots(ctx: Context, snapshots: list[str] | None, months: str | None) -> list[str]:
    """Snapshot URIs given directly, or the latest snapshot of each month of a range."""
    if snapshots:
        return list(snapshots)
    if not months:
        raise MlopsError("give snapshot URIs or a period range (e.g. 2013-01..2013-03, 2010-W14..2010-W20)")
    return [latest_snapshot_uri(ctx, p) for p in expand_periods(months, ctx.usecase.period.unit)]


@io_step("read-snapshots")
def read_snapshots(ctx: Context, uris: list[str]) -> tuple[pd.DataFrame, list[SnapshotRef]]:
    """All rows of the snapshots, concatenated in order, and what each one is."""
    frames, refs = [], []
    for uri in uris:
        storage = ctx.storage(uri)
        manifest_uri = join_uri(uri, "manifest.json")
        if not storage.exists(manifest_uri):
            raise MlopsError(f"not a curated snapshot (no manifest.json): {uri}")
        manifest = read_json(storage, manifest_uri)
        frames.append(read_parquet(storage, join_uri(uri, "data.parquet")))
        refs.append(SnapshotRef(uri, manifest["version"], manifest["period"], manifest["rows_curated"]))
    return pd.concat(frames, ignore_index=True), refs
