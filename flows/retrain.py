"""Retrain: ingest what has landed, train on a trailing window of months, register behind the gate."""

from __future__ import annotations

from prefect import flow

from flows.context import Context, build_context
from flows.ingest import ingest
from flows.land import BATCH_MANIFEST
from flows.register import register
from flows.snapshots import latest_snapshot_uri
from flows.steps import io_step
from flows.train import train
from tasks.errors import MlopsError
from tasks.landing import expand_months


@io_step("list-landed-batches")
def landed_periods(ctx: Context) -> dict[str, str]:
    """Month → batch URI of every complete batch (one with its ``_batch.json``) in the landing area."""
    root = ctx.landing_root
    found = {}
    for uri in ctx.storage(root).list(root):
        if uri.endswith("/" + BATCH_MANIFEST):
            batch_uri = uri[: -len(BATCH_MANIFEST) - 1]
            found[batch_uri.rsplit("/", 1)[-1]] = batch_uri
    return dict(sorted(found.items()))


def _curated(ctx: Context, month: str) -> bool:
    try:
        latest_snapshot_uri(ctx, month)
    except MlopsError:
        return False
    return True


@flow(name="retrain", log_prints=False)
def retrain(
    months: str | None = None,
    trailing_months: int = 3,
    reason: str = "scheduled retraining",
    profile: str | None = None,
    usecase: str | None = None,
) -> dict:
    """Ingest landed batches, train on the trailing months, and let the gate decide on promotion."""
    ctx = build_context(profile, usecase)
    landed = landed_periods(ctx)
    window = expand_months(months) if months else list(landed)[-trailing_months:]
    if not window:
        raise MlopsError(f"nothing to train on: no landed batch under {ctx.landing_root}")
    ingested = []
    for month in window:
        if not _curated(ctx, month):
            if month not in landed:
                raise MlopsError(f"{month} is neither curated nor landed: run `mlops land --month {month}`")
            ingest(input_uri=landed[month], profile=profile, usecase=usecase)
            ingested.append(month)
    trained = train(months=",".join(window), profile=profile, usecase=usecase)
    decision = register(run_id=trained["run_id"], reason=reason, profile=profile, usecase=usecase)
    return {
        "window": window,
        "ingested": ingested,
        "run_id": trained["run_id"],
        "metrics": trained["metrics"],
        "decision": decision,
    }
