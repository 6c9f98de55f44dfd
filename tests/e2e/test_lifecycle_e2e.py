"""The lifecycle end to end on the local stack, through deployments, the worker, the event trigger and the UIs.

On a stack in a temporary MLOPS_HOME: land and ingest January-May 2013 through the ``land`` / ``ingest``
deployments, train on January-March and register (the gate promotes version 1), score April and May, then run
the ``drift-check`` deployment on both. With the configured debounce (2 drifted of the last 3 windows) April
waits and May emits ``mlops.drift.detected``; the deployment trigger of prefect.yaml starts ``retrain`` for
window 2013-05, which the worker runs: ingest (nothing new), train on March-May, register behind the gate.

Everything is asserted through the real clients: Prefect (flow runs by deployment, their states and persisted
results, the stored event), MLflow (version tags, the gate's decision artifact, aliases) and the stack's S3 API
(every scored row carries the version that scored it). Then the Prefect and MLflow UIs are loaded in headless
Chromium (Debian's package, driven by Playwright) and must show the runs, the model and its champion alias;
screenshots go to the artifacts folder. Without a browser that part skips, naming why.

Outputs travel between steps as flow-run results (the stack's worker persists flow results, never task results).
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from browser import headless_chromium
from e2e_support import artifacts_dir, record

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

BASE_MONTHS = ("2013-01", "2013-02", "2013-03")
LATER_MONTHS = ("2013-04", "2013-05")
DRIFT_EVENT = "mlops.drift.detected"
FINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}
RUN_TIMEOUT_SECONDS = 300
# Prefect 3 UI / MLflow UI render client-side: wait for text, never for a fixed time
UI_TIMEOUT_MS = 60_000


# --- running deployments on the stack's worker -----------------------------------------------------------------


def submit(name: str, **parameters: Any) -> UUID:
    """Create a run of deployment ``<flow>/<deployment>`` for the worker; return at once (timeout=0)."""
    from prefect.deployments import run_deployment

    return run_deployment(name=name, parameters=parameters, timeout=0).id


def finished(run_id: UUID, timeout: float = RUN_TIMEOUT_SECONDS) -> Any:
    """The flow run once final; a run that did not complete fails the test with its state and last log lines."""
    from prefect.client.orchestration import get_client

    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while True:
            run = client.read_flow_run(run_id)
            if run.state_type and run.state_type.value in FINAL:
                break
            if time.monotonic() > deadline:
                pytest.fail(f"flow run {run.name} ({run_id}) still {run.state_name} after {timeout:.0f} s")
            time.sleep(0.5)
        if run.state_type.value != "COMPLETED":
            why = f"{run.state_name}: {run.state.message}"
            pytest.fail(f"flow run {run.name} ({run_id}) ended {why}\n{_logs(client, run)}")
    return run


def _logs(client: Any, run: Any, lines: int = 30) -> str:
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    logs = client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run.id])))
    return "\n".join(f"  {log.level} {log.message}" for log in logs[-lines:])


def result(run_id: UUID, timeout: float = RUN_TIMEOUT_SECONDS) -> dict:
    """What the flow returned (persisted by the worker's flow run, read back from the result store)."""
    return finished(run_id, timeout).state.result()


def run(name: str, **parameters: Any) -> dict:
    return result(submit(name, **parameters))


def deployment_ids() -> dict[str, UUID]:
    """``<flow>/<deployment>`` → id, for every deployment on the server."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        flows = {f.id: f.name for f in client.read_flows()}
        return {f"{flows[d.flow_id]}/{d.name}": d.id for d in client.read_deployments()}


def runs_of(deployment: str) -> list[Any]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    flt = DeploymentFilter(id=DeploymentFilterId(any_=[deployment_ids()[deployment]]))
    with get_client(sync_client=True) as client:
        return client.read_flow_runs(deployment_filter=flt)


def pause_schedules() -> list[str]:
    """Pause every scheduled deployment: a daily cron (score 05:00, drift 05:30 UTC...) must not fire mid-test.

    Pausing deletes the runs the scheduler created so far; one it was inserting at that moment may survive, so
    what is still scheduled is deleted too (and the test checks that no run but its own ever started there).
    Runs created by hand or by a trigger run on a paused deployment as on any other.
    """
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        scheduled = [d for d in client.read_deployments() if d.schedules]
        for deployment in scheduled:
            client.pause_deployment(deployment.id)
    paused = [name for name, id_ in deployment_ids().items() if id_ in {d.id for d in scheduled}]
    with get_client(sync_client=True) as client:
        for name in paused:
            for leftover in runs_of(name):
                if leftover.state_type and leftover.state_type.value == "SCHEDULED":
                    client.delete_flow_run(leftover.id)
    return sorted(paused)


def stray_runs(deployments: list[str], ours: set[UUID]) -> list[tuple[str, str, str]]:
    """Runs of these deployments the test did not create that left the Scheduled state (a cron that fired)."""
    return [
        (name, r.name, r.state_name)
        for name in deployments
        for r in runs_of(name)
        if r.id not in ours and not (r.state_type and r.state_type.value == "SCHEDULED")
    ]


def events_named(name: str) -> list[dict]:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        body = {"filter": {"event": {"name": [name]}}, "limit": 50}
        return client.request("POST", "/events/filter", json=body).json()["events"]


def await_events(name: str, count: int, timeout: float = 30) -> list[dict]:
    """The server persists events in batches: poll until ``count`` arrived."""
    deadline = time.monotonic() + timeout
    while len(found := events_named(name)) < count and time.monotonic() < deadline:
        time.sleep(0.5)
    return found


def await_retrain_runs(timeout: float = RUN_TIMEOUT_SECONDS) -> list[Any]:
    """Retrain runs, once at least one exists and all are final."""
    deadline = time.monotonic() + timeout
    while True:
        found = runs_of("retrain/retrain")
        if found and all(r.state_type and r.state_type.value in FINAL for r in found):
            return found
        if time.monotonic() > deadline:
            states = [(r.name, r.state_name) for r in found]
            pytest.fail(f"no finished retrain run {timeout:.0f} s after the drift event (runs: {states})")
        time.sleep(0.5)


# --- the lifecycle ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lifecycle(e2e_stack: dict) -> Iterator[dict]:
    """The whole loop, run once for the module through deployments; what every step returned."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    started = time.perf_counter()
    with temporary_settings({PREFECT_API_URL: e2e_stack["urls"]["prefect_api"]}):
        paused = pause_schedules()

        # land every month at once, ingest each as soon as it landed (the worker runs them side by side)
        phase = time.perf_counter()
        landed = {m: submit("land/land", period=m) for m in (*BASE_MONTHS, *LATER_MONTHS)}
        ingests = {m: submit("ingest/ingest", input_uri=result(landed[m])["batch_uri"]) for m in landed}
        base = {m: result(ingests[m]) for m in BASE_MONTHS}
        record("land 2013-01..05, ingest 2013-01..03", time.perf_counter() - phase)

        phase = time.perf_counter()
        trained = run("train/train", snapshots=[base[m]["snapshot_uri"] for m in BASE_MONTHS])
        record("train on 2013-01..03", time.perf_counter() - phase)
        phase = time.perf_counter()
        first = run("register/register", run_id=trained["run_id"], reason="e2e: first model")
        record("register + gate", time.perf_counter() - phase)
        later = {m: result(ingests[m]) for m in LATER_MONTHS}

        # score April; then April's drift check beside May's scoring; then May's drift check. The debounce reads
        # the verdicts of earlier windows, so drift checks run in month order (and so do runs of one
        # deployment: a second run would wait 30 s for the concurrency slot of the first)
        phase = time.perf_counter()
        april, may = LATER_MONTHS
        scores = {april: {"run": submit("score/score", input_uri=later[april]["snapshot_uri"])}}
        scores[april]["result"] = result(scores[april]["run"])
        checks = {april: {"run": submit("drift-check/drift-check", window=april)}}
        scores[may] = {"run": submit("score/score", input_uri=later[may]["snapshot_uri"])}
        for step in (checks[april], scores[may]):
            step["result"] = result(step["run"])
        checks[may] = {"run": submit("drift-check/drift-check", window=may)}
        checks[may]["result"] = result(checks[may]["run"])
        for check in checks.values():
            check["name"] = finished(check["run"]).name
        record("score + drift-check 2013-04, 2013-05", time.perf_counter() - phase)

        phase = time.perf_counter()
        retrains = await_retrain_runs()
        record("May drift-check done -> retrain finished", time.perf_counter() - phase)
        events = await_events(DRIFT_EVENT, 1)
        retrain_result = retrains[0].state.result() if len(retrains) == 1 else None
        ours = {*landed.values(), *ingests.values(), *(x["run"] for x in (*scores.values(), *checks.values()))}
        strays = stray_runs(paused, ours)
        record("lifecycle (after stack up)", time.perf_counter() - started)
        yield {
            "stack": e2e_stack,
            "paused": paused,
            "landed": landed,
            "base": base,
            "later": later,
            "trained": trained,
            "first": first,
            "scores": scores,
            "checks": checks,
            "retrains": retrains,
            "retrain": retrain_result,
            "events": events,
            "strays": strays,
        }


@pytest.mark.timeout(1200)
def test_drift_event_starts_one_retrain_whose_gate_decision_is_recorded_and_applied(lifecycle):
    from mlflow import MlflowClient

    from flows.settings import load_settings, load_usecase

    model = load_usecase(load_settings("stack").usecase).registered_model
    assert {"score/score", "drift-check/drift-check", "performance-check/performance-check"} <= set(lifecycle["paused"])
    assert not lifecycle["strays"], "a scheduled run fired during the test"

    # the first model: version 1, promoted by the gate (no champion before)
    assert lifecycle["first"]["version"] == "1" and lifecycle["first"]["outcome"] == "promoted", lifecycle["first"]

    # April drifts and waits, May drifts and requests retraining: one event, for window 2013-05
    april, may = (lifecycle["checks"][m]["result"] for m in LATER_MONTHS)
    assert april["drifted"] is True and not april["retrain_requested"] and "event" not in april, april["decision"]
    assert may["drifted"] is True and may["retrain_requested"], may["decision"]
    assert [e["id"] for e in lifecycle["events"]] == [may["event"]["id"]]
    event = lifecycle["events"][0]
    assert event["resource"]["mlops.window"] == "2013-05"

    # exactly one retrain run, created by the trigger (an automation) for that window, and completed
    retrains = lifecycle["retrains"]
    assert len(retrains) == 1, [(r.name, r.parameters) for r in retrains]
    retrain = retrains[0]
    assert retrain.state_name == "Completed"
    assert retrain.parameters["window_end"] == "2013-05"
    assert retrain.parameters["evidence"] == may["report_uri"]
    assert retrain.created_by is not None and retrain.created_by.type == "AUTOMATION", retrain.created_by
    latency = (retrain.created - datetime.fromisoformat(event["occurred"])).total_seconds()
    record("event -> retrain run created (latency)", latency)  # measured, never asserted (shared machines)

    # the retrain trained on March-May and the gate decided on version 2
    outcome = lifecycle["retrain"]
    assert outcome["status"] == "retrained" and outcome["window"] == ["2013-03", "2013-04", "2013-05"], outcome
    decision = outcome["decision"]
    assert decision["version"] == "2" and decision["outcome"] in ("promoted", "rejected"), decision

    # recorded in MLflow: version tags and the decision artifact in the challenger's run
    client = MlflowClient(tracking_uri=lifecycle["stack"]["urls"]["mlflow"])
    version = client.get_model_version(model, "2")
    assert version.tags["gate.outcome"] == decision["outcome"]
    assert version.tags["gate.champion_version"] == "1"
    assert version.run_id == outcome["run_id"]
    artifacts = [a.path for a in client.list_artifacts(version.run_id, "gate")]
    assert len(artifacts) == 1 and artifacts[0].startswith("gate/decision-"), artifacts
    local = client.download_artifacts(version.run_id, artifacts[0], str(lifecycle["stack"]["home"] / "tmp"))
    recorded = json.loads(Path(local).read_text(encoding="utf-8"))
    assert recorded["outcome"] == decision["outcome"] and recorded["challenger_version"] == "2"
    assert recorded["flow_run_id"] != ""  # the register subflow of the retrain run
    assert client.get_model_version(model, "1").tags["gate.outcome"] == "promoted"

    # aliases as decided
    aliases = client.get_registered_model(model).aliases
    assert aliases["challenger"] == "2"
    assert aliases["champion"] == ("2" if decision["outcome"] == "promoted" else "1"), aliases

    # every scored row carries the version (and the flow run) that scored it; nothing else was scored
    scored = lifecycle["scores"]
    for month, s in scored.items():
        assert s["result"]["model"]["version"] == "1", (month, s["result"]["model"])
    rows = _scored_rows(lifecycle["stack"]["urls"]["s3"], [s["result"] for s in scored.values()])
    assert rows == sum(s["result"]["rows_scored"] for s in scored.values()) > 0


def _scored_rows(endpoint: str, summaries: list[dict]) -> int:
    """Read every Parquet part under the scores root over S3: its rows' lineage must match the run that wrote it."""
    import boto3
    import pyarrow.parquet as pq

    s3 = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="stack-local",  # the stack's local S3 emulator accepts any key
        aws_secret_access_key="stack-local",
    )
    by_folder = {s["scores_uri"].rstrip("/") + "/": s for s in summaries}
    bucket = summaries[0]["output_uri"].removeprefix("s3://").split("/", 1)[0]
    root = summaries[0]["output_uri"].removeprefix(f"s3://{bucket}/").rstrip("/") + "/"
    total = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=root):
        for item in page.get("Contents", []):
            key = item["Key"]
            if not key.endswith(".parquet") or "/_quarantine/" in f"/{key}":
                continue
            folder = f"s3://{bucket}/{key.rsplit('/', 1)[0]}/"
            assert folder in by_folder, f"scores no test run wrote: {key}"
            summary = by_folder[folder]
            table = pq.read_table(io.BytesIO(s3.get_object(Bucket=bucket, Key=key)["Body"].read()))
            versions = set(table.column("model_version").to_pylist())
            runs = set(table.column("flow_run_id").to_pylist())
            assert versions == {summary["model"]["version"]}, (key, versions)
            assert runs == {summary["flow_run_id"]}, (key, runs)
            assert f"/model={summary['model']['version']}/" in key
            total += table.num_rows
    return total


# --- the UIs in headless Chromium ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with headless_chromium(
        "no chromium on PATH: the UI checks need Debian's chromium package "
        "(`apt-get install -y --no-install-recommends chromium`; .ci/run installs it)"
    ) as launched:
        yield launched


@pytest.mark.timeout(1200)
def test_prefect_and_mlflow_uis_show_the_runs_the_model_and_its_champion(lifecycle, browser):
    from flows.settings import load_settings, load_usecase

    model = load_usecase(load_settings("stack").usecase).registered_model
    urls, folder = lifecycle["stack"]["urls"], artifacts_dir()
    retrain = lifecycle["retrains"][0]
    champion = "2" if lifecycle["retrain"]["decision"]["outcome"] == "promoted" else "1"
    started = time.perf_counter()
    # tall enough for the whole runs list in one screenshot (the UI scrolls inside its own panel)
    page = browser.new_page(viewport={"width": 1600, "height": 2900})
    page.set_default_timeout(UI_TIMEOUT_MS)
    with _screenshot_on_failure(page, folder / "failed.png"):
        # Prefect: the runs list links the retrain run and both drift-check runs, each under its flow's name
        page.goto(f"{urls['prefect']}/runs")
        for flow_name, run_id in (
            ("retrain", retrain.id),
            *(("drift-check", lifecycle["checks"][m]["run"]) for m in LATER_MONTHS),
        ):
            link = page.locator(f'a[href="/runs/flow-run/{run_id}"]')
            link.wait_for()
            link.locator("xpath=..").get_by_role("link", name=flow_name, exact=True).wait_for()
        page.screenshot(path=str(folder / "prefect-runs.png"))

        # the retrain run's page: completed, started by an automation, for window 2013-05
        page.goto(f"{urls['prefect']}/runs/flow-run/{retrain.id}")
        page.get_by_text(retrain.name, exact=True).first.wait_for()
        page.get_by_text("Completed", exact=True).first.wait_for()
        page.get_by_text("Automation", exact=True).first.wait_for()
        page.get_by_text("Parameters", exact=True).first.click()
        page.get_by_text("2013-05").first.wait_for()
        page.screenshot(path=str(folder / "prefect-retrain-run.png"))

        # MLflow: the registered model's page names it, and the champion's version row carries the alias
        page.set_viewport_size({"width": 1600, "height": 1400})
        page.goto(f"{urls['mlflow']}/#/models/{model}")
        page.get_by_text(model, exact=True).first.wait_for()
        # (the alias chips read "@ champion"; plain "champion" also matches tag names like gate.champion_version)
        rows = {v: page.get_by_role("row").filter(has_text=f"Version {v}") for v in ("1", "2")}
        rows[champion].get_by_text("@ champion", exact=True).wait_for()
        rows["2"].get_by_text("@ challenger", exact=True).wait_for()
        other = "1" if champion == "2" else "2"
        assert rows[other].get_by_text("@ champion", exact=True).count() == 0
        page.screenshot(path=str(folder / "mlflow-model.png"), full_page=True)
    page.close()
    record("UI checks (2 apps, 3 pages)", time.perf_counter() - started)
    print(f"screenshots in {folder}")


@contextmanager
def _screenshot_on_failure(page: Any, path: Path) -> Iterator[None]:
    """What the page showed when an expectation timed out, beside the other screenshots."""
    try:
        yield
    except Exception:
        page.screenshot(path=str(path), full_page=True)
        raise
