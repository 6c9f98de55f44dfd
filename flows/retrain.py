"""Retrain: ingest what has landed, train on a trailing window of months, register behind the gate."""

from __future__ import annotations

from prefect import flow

from adapters.registry import VersionRef
from flows.context import Context, build_context
from flows.ingest import ingest
from flows.land import BATCH_MANIFEST
from flows.register import register
from flows.snapshots import curated_periods, latest_labels_uri, latest_snapshot_uri
from flows.steps import io_step
from flows.train import train
from tasks.errors import MlopsError
from tasks.periods import check_period, expand_periods


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


def _given(value: str | None) -> str | None:
    """Parameters rendered from an event template read "None" when the event lacked the label."""
    return None if value is None or value.strip() in ("", "None") else value.strip()


def training_window(
    available: list[str], months: str | None, window_end: str | None, trailing: int, unit: str = "month"
) -> list[str]:
    """The periods to train on: given outright, else the ``trailing`` available periods up to ``window_end``."""
    if months:
        return expand_periods(months, unit)
    if window_end is not None:
        window_end = check_period(window_end, unit)
        if window_end not in available:
            raise MlopsError(f"window end {window_end} is neither landed nor curated (have: {', '.join(available)})")
        available = [m for m in available if m <= window_end]
    return available[-trailing:]


@io_step("find-earlier-retraining")
def earlier_retraining(ctx: Context, window: list[str]) -> tuple[str, VersionRef | None] | None:
    """A finished training run on exactly these snapshots (same periods, same content versions), and its version."""
    versions = [latest_snapshot_uri(ctx, m).rstrip("/").rsplit("/v=", 1)[-1] for m in window]
    tags = {"periods": ",".join(window), "snapshot_versions": ",".join(versions)}
    labels = [latest_labels_uri(ctx, m) for m in window]
    if any(labels):
        tags["label_versions"] = ",".join(u.rstrip("/").rsplit("/v=", 1)[-1] if u else "-" for u in labels)
    runs = ctx.registry().find_training_runs(ctx.usecase.name, tags)
    if not runs:
        return None
    return runs[0], ctx.registry().version_of_run(ctx.usecase.registered_model, runs[0])


@flow(name="retrain", log_prints=False)
def retrain(
    months: str | None = None,
    trailing_months: int = 3,
    reason: str = "scheduled retraining",
    window_end: str | None = None,
    evidence: str | None = None,
    profile: str | None = None,
    usecase: str | None = None,
) -> dict:
    """Ingest landed batches, train on the trailing months, and let the gate decide on promotion.

    Idempotent per data window: when these exact snapshots were already trained on and the gate decided, the
    run returns that decision instead of training again (a burst of trigger events, a queued duplicate).
    """
    usecase, window_end, evidence = _given(usecase), _given(window_end), _given(evidence)
    ctx = build_context(profile, usecase)
    landed = landed_periods(ctx)
    curated = set(curated_periods(ctx))
    available = sorted(set(landed) | curated)
    window = training_window(available, months, window_end, trailing_months, ctx.usecase.period.unit)
    if not window:
        raise MlopsError(f"nothing to train on: no landed batch under {ctx.landing_root}")
    ingested = []
    for month in window:
        if month not in curated:
            if month not in landed:
                raise MlopsError(f"{month} is neither curated nor landed: run `mlops land --month {month}`")
            ingest(input_uri=landed[month], profile=profile, usecase=usecase)
            ingested.append(month)
    why = f"{reason} (evidence: {evidence})" if evidence else reason
    base = {"window": window, "ingested": ingested, "reason": why}
    earlier = earlier_retraining(ctx, window)
    if earlier is not None:
        run_id, version = earlier
        if version is not None and version.tags.get("gate.outcome"):
            outcome = {k.removeprefix("gate."): v for k, v in version.tags.items() if k.startswith("gate.")}
            return {**base, "status": "already_retrained", "run_id": run_id, "version": version.version, **outcome}
        decision = register(run_id=run_id, reason=why, profile=profile, usecase=usecase)
        return {**base, "status": "registered_earlier_run", "run_id": run_id, "decision": decision}
    trained = train(months=",".join(window), profile=profile, usecase=usecase)
    decision = register(run_id=trained["run_id"], reason=why, profile=profile, usecase=usecase)
    return {
        **base,
        "status": "retrained",
        "run_id": trained["run_id"],
        "metrics": trained["metrics"],
        "decision": decision,
    }
