"""The embedded demo: the whole loop on local defaults, with a real Prefect server and event-triggered retraining.

It starts a Prefect server (SQLite, 127.0.0.1, a free port) and a runner serving the ``retrain`` deployment of
prefect.yaml with its triggers, then, phase by phase: lands and ingests the base months, trains and registers
(the gate promotes the first model), lands, ingests and scores later months, runs the drift check on each of
them and, when the debounced check emits ``mlops.drift.detected``, waits until the retrain run that the
deployment trigger started has finished and reads the gate's decision. Nothing here calls retrain directly.
Both processes are stopped by PID at the end, also on failure (normal exit, error, Ctrl-C); before that, every
run still open on the demo's server is cancelled and the deployment's concurrency slot freed, and a demo that
was killed outright is cleaned up by the next one (``local_prefect``). A failure names its phase, the logs to
read, how to open the demo's runs in the Prefect UI, and how to reset.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flows.context import build_context
from flows.drift import drift_check
from flows.ingest import ingest
from flows.land import land
from flows.register import register
from flows.score import score
from flows.settings import load_settings, mlops_home
from flows.train import train
from ops.local_prefect import LocalPrefect, deployment_ids, local_prefect, wait_for_retrains
from tasks.errors import MlopsError

DEMO_MONTHS = ("2013-01", "2013-02", "2013-03")
SCORE_MONTHS = ("2013-04", "2013-05", "2013-06")


def run_demo(
    months: tuple[str, ...] = DEMO_MONTHS,
    later: tuple[str, ...] = SCORE_MONTHS,
    profile: str | None = None,
    on_phase: Callable[[str, float, Any], None] | None = None,
    on_progress: Callable[[str], None] | None = None,
) -> dict:
    """The loop on the embedded defaults; what each phase did and took.

    Raises:
        MlopsError: a phase failed; the one-line message names the phase, the logs and how to reset.
    """
    phases: list[dict] = []
    folder = Path(mlops_home()) / "demo-prefect"

    def phase(name: str, work: Callable[[], Any]) -> Any:
        started = time.perf_counter()
        try:
            result = work()
        except Exception as exc:
            message = str(exc).splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise MlopsError(f"demo phase '{name}' failed: {message}{where_to_look(folder)}") from exc
        seconds = round(time.perf_counter() - started, 2)
        phases.append({"phase": name, "seconds": seconds})
        if on_phase:
            on_phase(name, seconds, result)
        return result

    stack = local_prefect(folder, serve=["retrain"])
    server: LocalPrefect = phase("start prefect server + runner", stack.__enter__)
    failure: BaseException | None = None
    try:
        snapshots = [_ingested(phase, m, profile) for m in months]
        trained = phase("train", lambda: train(snapshots=[s["snapshot_uri"] for s in snapshots], profile=profile))
        decision = phase("register + gate", lambda: register(run_id=trained["run_id"], reason="demo", profile=profile))
        scored, checks, retrain = [], [], None
        for month in later:
            snapshot = _ingested(phase, month, profile)
            scored.append(
                phase(f"score {month}", lambda s=snapshot: score(input_uri=s["snapshot_uri"], profile=profile))
            )
            check = phase(f"drift check {month}", lambda m=month: drift_check(window=m, profile=profile))
            checks.append(check)
            if check.get("event"):
                retrain = phase(
                    f"event → retrain run ({month})",
                    lambda c=check: _await_retrain(server.api_url, c, profile, on_progress),
                )
                break
    except BaseException as exc:  # Ctrl-C included: the runs are cancelled and the processes stopped below
        failure = exc
        raise
    finally:
        started = time.perf_counter()
        if failure is None:
            stack.__exit__(None, None, None)
        else:
            stack.__exit__(type(failure), failure, failure.__traceback__)
        phases.append({"phase": "stop runner + server", "seconds": round(time.perf_counter() - started, 2)})
    return {
        "prefect": {
            "api_url": server.api_url,
            "start_seconds": server.seconds,
            "leftover_runs_cancelled": server.leftovers,
            "runs_cancelled_on_exit": server.cancelled,
        },
        "phases": phases,
        "snapshots": snapshots,
        "training": {k: trained[k] for k in ("run_id", "run_url", "rows", "metrics", "top_features")},
        "decision": {k: decision.get(k) for k in ("version", "outcome", "champion_version", "reasons")},
        "scoring": [{k: s[k] for k in ("batch_id", "rows_in", "rows_scored", "rows_quarantined")} for s in scored],
        "drift_checks": [
            {k: c.get(k) for k in ("window", "drifted", "reason", "retrain_requested", "decision", "report_uri")}
            for c in checks
        ],
        "retrain": retrain,
        "total_seconds": round(sum(p["seconds"] for p in phases), 2),
    }


def where_to_look(folder: Path) -> str:
    """One line's tail: the demo's logs, how to open its runs in the Prefect UI, how to reset."""
    db = folder / "prefect.db"
    return (
        f" | logs: {folder / 'runner.log'} (flow runs), {folder / 'server.log'}"
        f" | the runs in the UI: PREFECT_HOME={folder / 'home'} PREFECT_API_DATABASE_CONNECTION_URL="
        f"sqlite+aiosqlite:///{db} prefect server start, then http://127.0.0.1:4200"
        f" | reset: rerun `mlops demo` (it cancels what an earlier demo left open), or remove {folder}"
    )


def _ingested(phase: Callable[[str, Callable[[], Any]], Any], month: str, profile: str | None) -> dict:
    batch = phase(f"land {month}", lambda: land(period=month, profile=profile))
    summary = phase(f"ingest {month}", lambda: ingest(input_uri=batch["batch_uri"], profile=profile))
    keys = ("snapshot_uri", "rows_in", "rows_curated", "rows_quarantined", "data_docs_uri")
    return {"period": month, **{k: summary[k] for k in keys}}


def _await_retrain(api_url: str, check: dict, profile: str | None, on_progress: Callable[[str], None] | None) -> dict:
    """The retrain run the trigger created for this window, once final, and the gate's decision it recorded."""
    deployment = deployment_ids(api_url)["retrain"]
    stall = load_settings(profile).waits.no_progress_seconds
    run = wait_for_retrains(deployment, check["window"], 1, time.time(), stall, on_progress)[0]
    return {
        "flow_run": run.name,
        "flow_run_id": str(run.id),
        "state": run.state_name,
        "parameters": run.parameters,
        "seconds_in_run": run.total_run_time.total_seconds(),
        "created_at": run.created.timestamp() if run.created else None,
        "gate": _gate_decision(run.parameters, profile),
    }


def _gate_decision(parameters: dict, profile: str | None) -> dict:
    """What the gate decided for the version the retrain registered (read back from the registry's tags)."""
    ctx = build_context(profile)
    registry, name = ctx.registry(), ctx.usecase.registered_model
    versions = [m for m in registry.alias_history(name) if m.alias == "challenger"]
    if not versions:
        return {}
    version = registry.get_version(name, versions[-1].to_version)
    champion = registry.get_alias(name, "champion")
    gate = {k.removeprefix("gate."): v for k, v in version.tags.items() if k.startswith("gate.")}
    return {"version": version.version, "champion": champion.version if champion else None, **gate}
