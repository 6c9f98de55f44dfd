"""Closed-loop replay: months of data through the real flows, compared with never and always retraining.

In a fresh MLOPS_HOME (default ``<MLOPS_HOME>/replay``) a real local Prefect server starts with a runner serving
the ``retrain`` deployment and its event triggers from prefect.yaml. The base months are landed, ingested,
trained on and registered (the first champion). Then each month M is landed, ingested, scored by the current
@champion, checked for performance (its labels arrive the same day) and for drift. When a check emitted an
event, the replay waits for the retrain runs the triggers created to finish (retrain on the trailing months up
to M, the gate decides) before month M+1, and records what they did. A batch the champion's contract refuses
is recorded as refused: nothing was scored, so no check ran and nothing asked for retraining.

The baselines come afterwards from the same curated snapshots, with the pure training code and no registry:
*static* is the model of the base months, *oracle* for month M the model of the months just before M. The
metric of *ours* on M is the performance check's realized value for the champion that scored M. Every promotion
made after month M is checked on M+1: new against replaced champion, both loaded from the registry.

Written under the replay home: ``replay.json`` (everything returned) and ``replay.png`` (the plot).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from unittest import mock

import pandas as pd

from adapters.storage import storage_for, write_json
from flows.context import Context, build_context
from flows.drift import drift_check
from flows.ingest import ingest
from flows.land import land
from flows.performance import performance_check
from flows.register import register
from flows.score import score
from flows.settings import mlops_home
from flows.snapshots import latest_snapshot_uri, read_snapshots
from flows.train import train
from ops.local_prefect import deployment_ids, local_prefect, wait_for_retrains
from tasks import plots
from tasks import replay as rules
from tasks.errors import InputDataError, MlopsError
from tasks.landing import expand_months

RETRAIN_DEPLOYMENT = "retrain"
PROFILE = "local"  # the replay owns a fresh local home: no other profile's stores are touched
HOME_MARKER = ".mlops-replay"
_PASSED_ENV = ("MLOPS_PII_KEY", "MLOPS_CONFIG_DIR", "MLOPS_USECASE")
CHAMPION = "champion"


def default_home() -> Path:
    return mlops_home() / "replay"


def run_replay(
    first: str = "2013-04",
    last: str = "2013-12",
    base: str = "2013-01..2013-03",
    home: Path | str | None = None,
    usecase: str | None = None,
    trailing_months: int = 3,
    no_progress_seconds: float | None = None,
    on_month: Callable[[dict], None] | None = None,
    on_progress: Callable[[str], None] | None = None,
) -> dict:
    """Replay ``first``..``last`` month by month through the real loop, then compare with static and oracle.

    Args:
        first: First replayed month (YYYY-MM).
        last: Last replayed month.
        base: Months of the first champion (a range or list), all before ``first``.
        home: The replay's MLOPS_HOME; emptied first when a replay made it, refused when it holds anything else.
        usecase: Use case name (default: the settings').
        trailing_months: Months the oracle trains on before each month (as the retrain deployment does).
        no_progress_seconds: How long a retrain run may show no progress (default: config waits).
        on_month: Called with each month's record as soon as it is done (progress).
        on_progress: Called with the phase and elapsed time while a month waits for its retrain runs.

    Raises:
        MlopsError: bad months, a home the replay does not own, the first model refused by the gate, a retrain
            run that failed, never appeared or stopped progressing.
    """
    months, base_months = expand_months(f"{first}..{last}"), expand_months(base)
    if max(base_months) >= months[0]:
        raise MlopsError(f"base months ({base}) must all come before the first replayed month {first}")
    home = prepare_home(Path(home) if home else default_home())
    started = time.perf_counter()
    timings: dict[str, Any] = {}
    env = {"MLOPS_HOME": str(home), "MLOPS_PROFILE": PROFILE, "TMPDIR": str(home / "tmp")}
    env |= {k: os.environ[k] for k in _PASSED_ENV if os.environ.get(k)}
    if usecase:
        env["MLOPS_USECASE"] = usecase
    (home / "tmp").mkdir(parents=True, exist_ok=True)
    in_process = {k: v for k, v in env.items() if k != "TMPDIR"}
    # settings are read from the environment by every flow: point this process at the replay home meanwhile
    with (
        mock.patch.dict(os.environ, in_process),
        local_prefect(home / "prefect-server", serve=[RETRAIN_DEPLOYMENT], env=env) as prefect,
    ):
        timings["prefect_start"] = prefect.seconds
        ctx = build_context(PROFILE, usecase)
        waits = no_progress_seconds or ctx.settings.waits.no_progress_seconds
        where = f" | logs: {', '.join(prefect.logs())}"
        tick = time.perf_counter()
        first_champion = _first_champion(base_months, usecase)
        timings["base_seconds"] = round(time.perf_counter() - tick, 1)
        deployment_id = deployment_ids(prefect.api_url)[RETRAIN_DEPLOYMENT]
        records = []
        for month in months:
            records.append(replay_month(ctx, month, deployment_id, usecase, waits, on_progress, where))
            if on_month:
                on_month(records[-1])
        timings["loop_seconds"] = round(time.perf_counter() - tick - timings["base_seconds"], 1)
        tick = time.perf_counter()
        frames = _month_frames(ctx, sorted({*base_months, *months}))
        with ctx.model_threads():  # the baselines fit, the checks predict: same thread policy as the flows
            baselines = policy_baselines(ctx, frames, base_months, months, trailing_months)
            timings["baselines_seconds"] = round(time.perf_counter() - tick, 1)
            tick = time.perf_counter()
            offline = champion_aucs(ctx, frames, records)
            checks = promotion_checks(ctx, frames, records, months)
        timings["registry_checks_seconds"] = round(time.perf_counter() - tick, 1)
    timings["total_seconds"] = round(time.perf_counter() - started, 1)
    timings["month_seconds"] = {r["month"]: r["seconds"]["total"] for r in records}
    return _report(home, months, base_months, first_champion, records, baselines, offline, checks, timings)


def prepare_home(home: Path) -> Path:
    """An empty home for this replay: a folder a replay made is emptied, any other non-empty one refused."""
    home = home.expanduser().resolve()
    if home.exists() and any(home.iterdir()):
        if not (home / HOME_MARKER).exists():
            raise MlopsError(f"{home} is not empty and was not made by a replay: choose another --home")
        shutil.rmtree(home)
    home.mkdir(parents=True, exist_ok=True)
    (home / HOME_MARKER).write_text("made by `mlops replay`: emptied by the next replay into this folder\n")
    return home


def _first_champion(base_months: list[str], usecase: str | None) -> dict:
    for month in base_months:
        batch = land(period=month, profile=PROFILE, usecase=usecase)
        ingest(input_uri=batch["batch_uri"], profile=PROFILE, usecase=usecase)
    trained = train(months=",".join(base_months), profile=PROFILE, usecase=usecase)
    reason = f"replay: first model, {base_months[0]}..{base_months[-1]}"
    decision = register(run_id=trained["run_id"], reason=reason, profile=PROFILE, usecase=usecase)
    if not decision["promoted"]:
        raise MlopsError(f"the gate refused the first model: {'; '.join(decision['reasons'])}")
    return {"version": decision["version"], "run_id": trained["run_id"], "holdout": trained["metrics"]["holdout"]}


def replay_month(
    ctx: Context,
    month: str,
    deployment_id: str,
    usecase: str | None,
    no_progress_seconds: float,
    on_progress: Callable[[str], None] | None = None,
    where: str = "",
) -> dict:
    """One month of the loop: land, ingest, score, performance and drift checks, then the retrains they started.

    When scoring refuses the batch (it fails a table-level check of the champion's contract), nothing is scored, so
    neither check can run and no retrain is asked for: the month is recorded as refused, with the reason, and the
    loop goes on with the same champion.
    """
    seconds: dict[str, float] = {}

    def timed(name: str, work: Callable[[], Any]) -> Any:
        tick = time.perf_counter()
        try:
            return work()
        finally:
            seconds[name] = round(time.perf_counter() - tick, 1)

    registry, name = ctx.registry(), ctx.usecase.registered_model
    champion = registry.get_alias(name, CHAMPION)
    batch = timed("land", lambda: land(period=month, profile=PROFILE, usecase=usecase))
    snapshot = timed("ingest", lambda: ingest(input_uri=batch["batch_uri"], profile=PROFILE, usecase=usecase))
    record: dict[str, Any] = {"month": month, "scored_by": champion.version if champion else None, "refused": None}
    try:
        scored = timed("score", lambda: score(input_uri=snapshot["snapshot_uri"], profile=PROFILE, usecase=usecase))
    except InputDataError as exc:  # the batch fails a table-level check of the champion's contract
        scored, record["refused"] = None, str(exc)
    perf = drift = None
    events, outcomes = [], []
    if scored is not None:
        record |= {"scored_by": scored["model"]["version"], "rows_scored": scored["rows_scored"]}
        record["rows_quarantined"] = scored["rows_quarantined"]
        emitted = time.time()
        perf = timed("performance", lambda: performance_check(window=month, profile=PROFILE, usecase=usecase))
        drift = timed("drift", lambda: drift_check(window=month, profile=PROFILE, usecase=usecase))
        events = [c["event"] for c in (perf, drift) if c.get("event")]
    if events:
        runs = timed(
            "retrain",
            lambda: wait_for_retrains(
                deployment_id, month, len(events), emitted, no_progress_seconds, on_progress, where
            ),
        )
        outcomes = [retrain_outcome(ctx, run) for run in runs]
    after = registry.get_alias(name, CHAMPION)
    seconds["total"] = round(sum(seconds.values()), 1)
    return {
        **record,
        "performance": None if perf is None else _performance(perf),
        "drift": None if drift is None else _drift(drift),
        "events": [e["name"] for e in events],
        "retrain_runs": outcomes,
        "retrained": sum(1 for o in outcomes if o["trained"]),
        "promoted": [o["version"] for o in outcomes if o["promoted"]],
        "champion_after": after.version if after else None,
        "seconds": seconds,
    }


def _performance(result: dict) -> dict:
    return {
        "auc": result["metrics"].get("roc_auc"),
        "degraded": result["degraded"],
        "reason": result["reason"],
        "rows_labelled": result["counts"]["rows_labelled"],
    }


def _drift(result: dict) -> dict:
    keys = ("drifted", "score", "reason", "history", "retrain_requested", "decision")
    return {k: result[k] for k in keys}


def retrain_outcome(ctx: Context, run: Any) -> dict:
    """What a finished retrain run did: whether it trained (its subflows), the version and the gate's decision."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentFlowRunId

    with get_client(sync_client=True) as client:
        children = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[run.id]))
        )
        subflows = {client.read_flow(c.flow_id).name: c for c in children}
    params = run.parameters
    outcome: dict[str, Any] = {
        "flow_run": run.name,
        "flow_run_id": str(run.id),
        "state": run.state_name,
        "seconds": round(run.total_run_time.total_seconds(), 1),
        "parameters": {k: params.get(k) for k in ("window_end", "reason", "evidence", "usecase", "trailing_months")},
        "trained": "train" in subflows,
        "status": "retrained"
        if "train" in subflows
        else "registered_earlier_run"
        if "register" in subflows
        else "already_retrained",
        "version": None,
        "gate": None,
        "promoted": False,
    }
    if "register" not in subflows:
        return outcome
    registry, name = ctx.registry(), ctx.usecase.registered_model
    version = registry.version_of_run(name, subflows["register"].parameters["run_id"])
    if version is None:
        raise MlopsError(
            f"retrain run {run.name} registered run {subflows['register'].parameters['run_id']} "
            "but the registry has no version of it"
        )
    decision = _gate_decision(ctx, version)
    outcome.update(version=version.version, gate=decision, promoted=version.tags.get("gate.outcome") == "promoted")
    return outcome


def _gate_decision(ctx: Context, version: Any) -> dict:
    """The gate's record logged in the challenger's run: outcome, reasons, metrics of both, bootstrap CI."""
    stamp = version.tags.get("gate.decided_at", "").replace(":", "").replace("-", "")
    try:
        record = json.loads(ctx.registry().read_run_artifact(version.run_id, f"gate/decision-{stamp}.json"))
    except MlopsError:
        return {"outcome": version.tags.get("gate.outcome"), "reasons": version.tags.get("gate.reasons", "")}
    metric = ctx.usecase.gate.metric
    return {
        "outcome": record["outcome"],
        "champion_version": record["champion_version"],
        "reasons": record["reasons"],
        "window": record["window"],
        "challenger": (record.get("challenger") or {}).get(metric),
        "champion": (record.get("champion") or {}).get(metric),
        "bootstrap": record.get("bootstrap"),
    }


def _month_frames(ctx: Context, months: list[str]) -> dict[str, pd.DataFrame]:
    """The curated snapshot of each month (the one the loop ingested), read once."""
    return {m: read_snapshots.fn(ctx, [latest_snapshot_uri(ctx, m)])[0] for m in months}


def policy_baselines(
    ctx: Context, frames: dict[str, pd.DataFrame], base_months: list[str], months: list[str], trailing: int
) -> dict:
    """Static and oracle metric per month, fitted with the pure training code on the same snapshots."""
    uc = ctx.usecase
    tick = time.perf_counter()
    static = rules.fit_window_model(pd.concat([frames[m] for m in base_months], ignore_index=True), uc)
    fit_seconds = [time.perf_counter() - tick]
    by_month = {}
    for month in months:
        window = rules.months_before(month, trailing)
        missing = [m for m in window if m not in frames]
        if missing:
            raise MlopsError(f"the oracle of {month} needs {', '.join(missing)}: not in the replay")
        tick = time.perf_counter()
        oracle = rules.fit_window_model(pd.concat([frames[m] for m in window], ignore_index=True), uc)
        fit_seconds.append(time.perf_counter() - tick)
        by_month[month] = {
            "static": rules.labelled_auc(static, frames[month], uc),
            "oracle": rules.labelled_auc(oracle, frames[month], uc),
            "oracle_window": window,
        }
    return {
        "by_month": by_month,
        "fits": len(fit_seconds),
        "mean_fit_seconds": round(sum(fit_seconds) / len(fit_seconds), 1),
    }


def _registry_model(ctx: Context, version: str, cache: dict[str, Any]) -> Any:
    if version not in cache:
        folder = Path(ctx.settings.home) / "models" / "replay" / version
        cache[version] = ctx.registry().load_model(ctx.usecase.registered_model, version, str(folder))
    return cache[version]


def champion_aucs(ctx: Context, frames: dict[str, pd.DataFrame], records: list[dict]) -> dict[str, float | None]:
    """The metric of the champion that scored each month on all its labelled rows (the baselines' rows)."""
    cache: dict[str, Any] = {}
    return {
        r["month"]: rules.labelled_auc(_registry_model(ctx, r["scored_by"], cache), frames[r["month"]], ctx.usecase)
        for r in records
    }


def promotion_checks(
    ctx: Context, frames: dict[str, pd.DataFrame], records: list[dict], months: list[str]
) -> list[rules.PromotionCheck]:
    """Each promotion made after month M: the new and the replaced champion on M+1, both from the registry."""
    cache: dict[str, Any] = {}
    by_month = {r["month"]: r for r in records}
    checks = []
    for record in records:
        previous = record["scored_by"]
        for version in record["promoted"]:
            following = rules.next_month(record["month"])
            known = following in months
            aucs = [
                rules.labelled_auc(_registry_model(ctx, v, cache), frames[following], ctx.usecase) if known else None
                for v in (version, previous)
            ]
            refused = known and bool(by_month[following]["refused"]) and by_month[following]["scored_by"] == version
            where = following if known else None
            checks.append(rules.PromotionCheck(record["month"], where, version, previous, *aucs, next_refused=refused))
            previous = version
    return checks


def _report(
    home: Path,
    months: list[str],
    base_months: list[str],
    first_champion: dict,
    records: list[dict],
    baselines: dict,
    offline: dict[str, float | None],
    checks: list[rules.PromotionCheck],
    timings: dict,
) -> dict:
    table = []
    for record in records:
        month = record["month"]
        aucs = baselines["by_month"][month]
        table.append(
            {
                **record,
                "auc": {
                    rules.STATIC: aucs["static"],
                    rules.ORACLE: aucs["oracle"],
                    rules.OURS: None if record["performance"] is None else record["performance"]["auc"],
                    "ours_all_rows": offline[month],
                },
                "oracle_window": aucs["oracle_window"],
            }
        )
    rows = [{"month": r["month"], **{p: r["auc"][p] for p in rules.POLICIES}} for r in table]
    retrains = {rules.ORACLE: len(months), rules.OURS: sum(r["retrained"] for r in table)}
    summary = rules.summarize(rows, retrains, checks)
    # ours as the champion of the month on every labelled row: rows scoring quarantined, and refused months too
    same_rows = [{**row, rules.OURS: r["auc"]["ours_all_rows"]} for row, r in zip(rows, table, strict=True)]
    summary["recovered_share_all_rows"] = rules.summarize(same_rows, retrains, checks)["recovered_share"]
    result = {
        "home": str(home),
        "months": months,
        "base": base_months,
        "first_champion": first_champion,
        "table": table,
        "promotion_checks": [c.to_dict() for c in checks],
        "summary": summary,
        "baselines": {k: v for k, v in baselines.items() if k != "by_month"},
        "timings": timings,
    }
    png = plots.replay_png(
        months,
        {p: [r["auc"][p] for r in table] for p in rules.POLICIES},
        [r["month"] for r in table if r["retrained"]],
        [r["month"] for r in table if r["promoted"]],
        [r["month"] for r in table if r["refused"]],
    )
    files = {"json": str(home / "replay.json"), "plot": str(home / "replay.png")}
    result["files"] = files
    storage = storage_for(str(home))
    storage.write_bytes(files["plot"], png)
    write_json(storage, files["json"], json.loads(json.dumps(result, default=str)))
    return result
