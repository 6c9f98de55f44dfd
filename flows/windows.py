"""Steps shared by the drift and performance checks: which model, which scored window, where results go.

Checks read the scoring outputs (``<lake>/<usecase>/scores/batch=.../model=.../``), never a separate copy of
the data. Their own results live beside them::

    <lake>/<usecase>/monitoring/<check>/model=<version>/window=<window>/result.json   (+ report.html for drift)

The drift debounce state is read back from those files; nothing else keeps state.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd
from prefect import runtime

from adapters import events
from adapters.storage import join_uri, read_json, read_parquet, write_json
from flows.context import Context
from flows.score import MANIFEST, QUARANTINE_DIR, ModelRef, model_ref
from flows.steps import io_step
from tasks import monitoring
from tasks.errors import StorageError
from tasks.monitoring import ScoredWindow
from tasks.scoring import safe_value
from tasks.serialization import json_safe


@io_step("resolve-model-version")
def resolve_version(ctx: Context, alias: str) -> ModelRef:
    return model_ref(ctx, alias)


def checked_window(
    ctx: Context, ref: ModelRef, window: str | None, scores_uri: str | None
) -> tuple[ScoredWindow, dict]:
    """The window to check (default: the latest ``ref`` scored) and its scoring manifest."""
    root = scores_uri or join_uri(ctx.lake_root, "scores")
    target = monitoring.pick_window(scored_windows(ctx, root), ref.version, window)
    return target, read_json(ctx.storage(target.manifest_uri), target.manifest_uri)


@io_step("list-scored-windows")
def scored_windows(ctx: Context, root: str) -> list[ScoredWindow]:
    """Every committed scoring output (one with its manifest) under the scores root."""
    storage = ctx.storage(root)
    found = []
    for uri in storage.list(root):
        if not uri.endswith("/" + MANIFEST) or f"/{QUARANTINE_DIR}/" in uri:
            continue
        manifest = read_json(storage, uri)
        found.append(
            ScoredWindow(
                window=monitoring.window_name(manifest),
                batch_id=manifest["batch_id"],
                model_version=str(manifest["model"]["version"]),
                scored_at=manifest["scored_at"],
                manifest_uri=uri,
            )
        )
    return found


def read_scores(ctx: Context, manifest: Mapping, columns: list[str]) -> pd.DataFrame:
    """The scored rows of a window: the parts its manifest lists (a rerun half-way cannot be seen)."""
    storage = ctx.storage(manifest["scores_uri"])
    parts = [f for f in manifest["files"] if not f.startswith(QUARANTINE_DIR + "/")]
    frames = [read_parquet(storage, join_uri(manifest["scores_uri"], f), columns) for f in parts]
    if not frames:
        return pd.DataFrame({c: pd.Series(dtype="float64") for c in columns})
    return pd.concat(frames, ignore_index=True)


def result_uri(ctx: Context, check: str, ref: ModelRef, window: str, name: str = "result.json") -> str:
    return join_uri(
        ctx.lake_root, "monitoring", check, f"model={safe_value(ref.version)}", f"window={safe_value(window)}", name
    )


@io_step("read-earlier-results")
def earlier_results(ctx: Context, check: str, ref: ModelRef) -> list[dict]:
    """Stored results of a check for one model version (the debounce's memory)."""
    folder = join_uri(ctx.lake_root, "monitoring", check, f"model={safe_value(ref.version)}")
    storage = ctx.storage(folder)
    try:
        uris = [u for u in storage.list(folder) if u.endswith("/result.json")]
    except StorageError:
        return []
    return [read_json(storage, u) for u in uris]


@io_step("write-result")
def write_result(ctx: Context, uri: str, result: dict, files: Mapping[str, bytes] | None = None) -> dict[str, str]:
    """The result JSON and its side files (a report) next to it; the JSON last, so it marks a complete write."""
    storage = ctx.storage(uri)
    folder = uri.rsplit("/", 1)[0]
    written = {}
    for name, data in (files or {}).items():
        written[name] = join_uri(folder, name)
        storage.write_bytes(written[name], data)
    write_json(storage, uri, result)
    return {**written, "result.json": uri}


@io_step("log-monitoring-run")
def log_monitoring_run(
    ctx: Context, check: str, ref: ModelRef, window: str, values: Mapping[str, float], files: Mapping[str, bytes]
) -> dict[str, str | None]:
    """A run in the use case's monitoring experiment, tagged with the model version it watched."""
    registry = ctx.registry()
    experiment = f"{ctx.usecase.name}-monitoring"
    tags = {
        "mlops.check": check,
        "mlops.window": window,
        "mlops.model_name": ref.name,
        "mlops.model_version": ref.version,
        "mlops.model_run_id": ref.run_id,
        "prefect.flow_run_id": str(runtime.flow_run.id or ""),
        "prefect.flow_run_url": str(runtime.flow_run.ui_url or ""),
    }
    clean = {k: float(v) for k, v in values.items() if v is not None and v == v}  # NaN has no place in MLflow
    run_id = registry.log_metrics_run(
        experiment=experiment, run_name=f"{check}-{window}-v{ref.version}", metrics=clean, tags=tags, artifacts=files
    )
    summary = registry.run_summary(run_id)
    return {"run_id": run_id, "experiment": experiment, "url": registry.run_url(summary["experiment_id"], run_id)}


@io_step("emit-event")
def emit_event(ctx: Context, event: str, ref: ModelRef, window: str, payload: dict) -> str:
    uc = ctx.usecase
    return events.emit(
        event,
        monitoring.model_resource(ref.name, uc.name, ref.version, window),
        json_safe(payload),
        monitoring.event_id(event, ref.name, ref.version, window),
        related=events.flow_run_resource(str(runtime.flow_run.id or "")),
    )
