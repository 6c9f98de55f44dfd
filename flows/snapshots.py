"""Curated snapshots by reference: resolve months to snapshot URIs, read them with their manifests."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from adapters.storage import join_uri, read_json, read_parquet
from flows.context import Context
from flows.steps import io_step
from tasks.errors import MlopsError
from tasks.labels import attach_labels
from tasks.periods import expand_periods


@dataclass(frozen=True)
class SnapshotRef:
    """One curated snapshot: where it is, its content version, the month it holds and its row count."""

    uri: str
    version: str
    period: str
    rows: int
    labels_uri: str | None = None
    labels_version: str | None = None


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


def labels_period_uri(ctx: Context, period: str) -> str:
    return join_uri(ctx.lake_root, "labels", f"period={period}")


def latest_labels_uri(ctx: Context, period: str) -> str | None:
    """The stored labels version of a period, or None when no label of it has arrived."""
    pointer = join_uri(labels_period_uri(ctx, period), "latest.json")
    storage = ctx.storage(pointer)
    if not storage.exists(pointer):
        return None
    return join_uri(labels_period_uri(ctx, period), f"v={read_json(storage, pointer)['version']}")


def read_stored_labels(ctx: Context, uri: str) -> pd.DataFrame:
    """The (id, label) pairs of one stored labels version."""
    return read_parquet(ctx.storage(uri), join_uri(uri, "labels.parquet"))


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
def read_snapshots(
    ctx: Context, uris: list[str], labels: dict[str, str] | None = None
) -> tuple[pd.DataFrame, list[SnapshotRef]]:
    """All rows of the snapshots, concatenated in order, with the labels that arrived later put in.

    ``labels`` maps a period to the stored labels version to use (what a training run recorded); without it,
    the latest labels of each period are used.
    """
    uc = ctx.usecase
    frames, refs = [], []
    for uri in uris:
        storage = ctx.storage(uri)
        manifest_uri = join_uri(uri, "manifest.json")
        if not storage.exists(manifest_uri):
            raise MlopsError(f"not a curated snapshot (no manifest.json): {uri}")
        manifest = read_json(storage, manifest_uri)
        frame = read_parquet(storage, join_uri(uri, "data.parquet"))
        period = manifest["period"]
        labels_uri = (labels or {}).get(period) if labels is not None else latest_labels_uri(ctx, period)
        labels_version = None
        if labels_uri:
            frame = attach_labels(frame, read_stored_labels(ctx, labels_uri), uc.id_column, uc.target.name)
            labels_version = labels_uri.rstrip("/").rsplit("/v=", 1)[-1]
        frames.append(frame)
        refs.append(SnapshotRef(uri, manifest["version"], period, manifest["rows_curated"], labels_uri, labels_version))
    return pd.concat(frames, ignore_index=True), refs
