"""Drift and performance checks through the real flows, on real months scored by a real champion.

Session set-up: January, February, June and July 2013 ingested; a model trained on January promoted to
@champion; January (the training month: no drift), June and July (summer weather: drift) scored. Each test gets
its own MLOPS_HOME sharing the session's registry, snapshots and scores (symlinks) with a monitoring folder of
its own, so debounce histories never mix between tests.
"""

from __future__ import annotations

import json
import shutil
import time
import uuid
from pathlib import Path

import pandas as pd
import pytest
import yaml

from adapters.events import emit
from adapters.registry import MlflowRegistry
from flows.drift import drift_check
from flows.ingest import ingest
from flows.land import land
from flows.performance import performance_check
from flows.register import register
from flows.retrain import retrain
from flows.score import score
from flows.train import train
from ops.local_prefect import local_prefect
from ops.runner import deployment_specs, runner_deployment
from tasks.errors import InputDataError
from tasks.monitoring import DRIFT_EVENT, PERFORMANCE_EVENT, event_id, model_resource

REPO = Path(__file__).resolve().parents[2]
USECASE = "flight_delay"
MODEL = "flight-delay-classifier"
PII_KEY = "test-only-pii-key-0123456789abcdef"
MONTHS = ("2013-01", "2013-02", "2013-06", "2013-07")


@pytest.fixture(scope="session")
def monitored(tmp_path_factory) -> dict:
    home = tmp_path_factory.mktemp("monitor-home")
    config = home.parent / "monitor-config"
    shutil.copytree(REPO / "config", config)
    usecase_file = config / "usecases" / f"{USECASE}.yaml"
    data = yaml.safe_load(usecase_file.read_text())
    # one training month misses the production floors: relaxed for this set-up only
    data["gate"] = {**data["gate"], "floors": {}, "max_brier": None, "max_calibration_error": None}
    # the tests exercise the debounce itself: 2 drifted of the last 3 windows (whatever production uses)
    data["drift"]["debounce"] = {"k": 2, "n": 3, "cooldown_windows": 2}
    usecase_file.write_text(yaml.safe_dump(data))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLOPS_HOME", str(home))
        mp.setenv("MLOPS_PII_KEY", PII_KEY)
        mp.setenv("MLOPS_CONFIG_DIR", str(config))
        mp.delenv("MLOPS_PROFILE", raising=False)
        snapshots = {m: ingest(input_uri=land(period=m)["batch_uri"]) for m in MONTHS}
        run = train(months="2013-01")
        assert register(run_id=run["run_id"])["promoted"]
        scored = {m: score(input_uri=snapshots[m]["snapshot_uri"]) for m in ("2013-01", "2013-06", "2013-07")}
    return {"home": home, "config": config, "snapshots": snapshots, "scored": scored, "run_id": run["run_id"]}


@pytest.fixture
def mon(monitored, tmp_path, monkeypatch) -> Path:
    """A fresh MLOPS_HOME on the session's registry, snapshots, landing and scores; its monitoring is its own."""
    home = tmp_path / "home"
    lake = home / "lake" / USECASE
    lake.mkdir(parents=True)
    for part in ("curated", "scores"):
        (lake / part).symlink_to(monitored["home"] / "lake" / USECASE / part)
    (home / "mlflow").symlink_to(monitored["home"] / "mlflow")
    (home / "landing").symlink_to(monitored["home"] / "landing")
    monkeypatch.setenv("MLOPS_HOME", str(home))
    monkeypatch.setenv("MLOPS_PII_KEY", PII_KEY)
    monkeypatch.setenv("MLOPS_CONFIG_DIR", str(monitored["config"]))
    monkeypatch.delenv("MLOPS_PROFILE", raising=False)
    return home


def events_named(name: str, since: float, wait_for: int = 0, timeout: float = 30.0) -> list[dict]:
    """Events of ``name`` the test server stored after ``since`` (polling: the server persists in batches)."""
    from datetime import UTC, datetime

    from prefect.client.orchestration import get_client

    start = datetime.fromtimestamp(since, UTC).isoformat()
    deadline = time.monotonic() + timeout
    while True:
        with get_client(sync_client=True) as client:
            body = {"filter": {"event": {"name": [name]}, "occurred": {"since": start}}, "limit": 50}
            found = client.request("POST", "/events/filter", json=body).json()["events"]
        if len(found) >= wait_for or time.monotonic() > deadline:
            return found
        time.sleep(0.5)


@pytest.mark.integration
@pytest.mark.slow
def test_stable_window_then_two_drifted_windows_request_one_retrain_with_evidence(mon):
    since = time.time()
    january = drift_check(window="2013-01")
    assert january["drifted"] is False and not january["retrain_requested"], january["reason"]
    assert "event" not in january

    june = drift_check(window="2013-06")
    assert june["drifted"] is True and not june["retrain_requested"]
    assert june["history"] == [False, True]
    assert june["decision"].startswith("wait: 1 of the last 3")

    july = drift_check(window="2013-07")
    assert july["drifted"] is True and july["retrain_requested"], july["decision"]
    assert july["history"] == [False, True, True]
    stored = events_named(DRIFT_EVENT, since, wait_for=1)
    assert [e["id"] for e in stored] == [july["event"]["id"]]
    event = stored[0]
    assert event["resource"]["prefect.resource.id"] == f"mlops.model.{MODEL}"
    assert event["resource"]["mlops.window"] == "2013-07"
    assert event["resource"]["mlops.usecase"] == USECASE
    assert event["payload"]["evidence_uri"] == july["report_uri"]
    assert event["payload"]["drifted_inputs"], "the evidence names what drifted"
    assert any(r["prefect.resource.id"].startswith("prefect.flow-run.") for r in event["related"])

    # the report, the stored result and the MLflow monitoring run agree with the flow's answer
    report = Path(july["report_uri"]).read_text()
    stored_result = json.loads(Path(july["result_uri"]).read_text())
    assert stored_result["retrain_requested"] is True
    assert "DRIFTED" in report
    assert report.count('<img alt="') == len(stored_result["verdict"]["features"]) + 1  # every input + the scores
    registry = MlflowRegistry(f"sqlite:///{mon / 'mlflow' / 'mlflow.db'}", str(mon / "mlflow" / "artifacts"))
    run = registry.run_summary(july["mlflow_run"]["run_id"])
    assert run["tags"]["mlops.model_version"] == "1" and run["tags"]["mlops.window"] == "2013-07"
    assert run["metrics"]["drifted"] == 1.0 and "prediction.psi" in run["metrics"]

    # a rerun of the same window keeps one verdict per window and sends the same event id again
    again = drift_check(window="2013-07")
    assert again["history"] == [False, True, True]
    assert again["event"]["id"] == july["event"]["id"]


@pytest.mark.integration
def test_drift_check_on_a_window_the_model_never_scored_names_what_was_scored(mon):
    with pytest.raises(InputDataError, match=r"has not scored window '2013-02'.*2013-01 \(model 1\)"):
        drift_check(window="2013-02")


@pytest.mark.integration
def test_default_window_is_the_latest_scored(mon):
    assert drift_check()["window"] == "2013-07"


@pytest.mark.integration
def test_performance_check_joins_labels_by_id_and_accounts_for_every_row(mon, monitored):
    since = time.time()
    result = performance_check(window="2013-06")
    counts = result["counts"]
    assert counts["rows_scored"] == monitored["scored"]["2013-06"]["rows_scored"]
    assert counts["rows_scored"] == counts["rows_labelled"] + counts["rows_unlabelled"] + counts["rows_missing_label"]
    assert counts["rows_unlabelled"] > 0  # cancelled flights: scored, never labelled
    frame = pd.read_parquet(monitored["snapshots"]["2013-06"]["data_uri"])
    assert counts["rows_labelled"] == int(frame["is_late"].notna().sum())
    assert 0.5 < result["metrics"]["roc_auc"] < 0.8
    verdict = result["verdict"]
    assert verdict["reference"] == pytest.approx(
        MlflowRegistry(f"sqlite:///{mon / 'mlflow' / 'mlflow.db'}", str(mon / "mlflow" / "artifacts")).run_summary(
            monitored["run_id"]
        )["metrics"]["holdout_roc_auc"]
    )
    if result["degraded"]:
        stored = events_named(PERFORMANCE_EVENT, since, wait_for=1)
        assert result["event"]["id"] in [e["id"] for e in stored]
    else:
        assert "event" not in result


@pytest.mark.integration
def test_performance_check_refuses_labels_with_repeated_ids_or_without_the_target(mon, monitored, tmp_path):
    frame = pd.read_parquet(monitored["snapshots"]["2013-06"]["data_uri"], columns=["flight_id", "is_late"])
    repeated = tmp_path / "repeated.parquet"
    pd.concat([frame, frame.head(3)]).to_parquet(repeated)
    with pytest.raises(InputDataError, match="labels repeat 3 id"):
        performance_check(window="2013-06", labels_uri=str(repeated))
    no_target = tmp_path / "no_target.parquet"
    frame[["flight_id"]].to_parquet(no_target)
    with pytest.raises(InputDataError, match=r"no column.*is_late"):
        performance_check(window="2013-06", labels_uri=str(no_target))


@pytest.mark.integration
@pytest.mark.slow
def test_retrain_is_idempotent_per_data_window(mon, monitored):
    # this test registers versions: its registry is a copy, the other tests keep version 1 as champion
    (mon / "mlflow").unlink()
    shutil.copytree(monitored["home"] / "mlflow", mon / "mlflow")
    first = retrain(window_end="2013-02", trailing_months=1, reason="test", evidence="s3://x/report.html")
    assert first["status"] == "retrained" and first["window"] == ["2013-02"]
    assert "evidence: s3://x/report.html" in first["decision"]["reason"]
    second = retrain(window_end="2013-02", trailing_months=1, reason="test", usecase="None")
    assert second["status"] == "already_retrained"
    assert second["run_id"] == first["run_id"] and second["version"] == first["decision"]["version"]
    assert second["outcome"] == first["decision"]["outcome"]
    registry = MlflowRegistry(f"sqlite:///{mon / 'mlflow' / 'mlflow.db'}", str(mon / "mlflow" / "artifacts"))
    assert registry.find_training_runs(USECASE, {"periods": "2013-02"}) == [first["run_id"]]


# ---- the retrain deployment's triggers on a real Prefect server started here (free port, stopped by PID);
# the retrain deployment is registered from prefect.yaml with its triggers, and nobody executes its runs: the
# tests count the runs the triggers create. From this fixture on, the module's flows run against that server.


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("prefect-server")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
        with local_prefect(folder) as prefect:
            deployment_id = runner_deployment(deployment_specs(names=["retrain"])[0], with_schedules=False).apply()
            time.sleep(2)  # the server loads new automations every second or so
            yield {"prefect": prefect, "deployment_id": str(deployment_id)}


def retrain_runs(deployment_id: str) -> list:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    with get_client(sync_client=True) as client:
        flt = DeploymentFilter(id=DeploymentFilterId(any_=[uuid.UUID(deployment_id)]))
        return client.read_flow_runs(deployment_filter=flt)


def runs_for(deployment_id: str, window: str, settle: float = 4.0) -> list:
    """Retrain runs for ``window``: waits for the first, then ``settle`` seconds for any (wrong) extra run."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not _for(retrain_runs(deployment_id), window):
        time.sleep(0.2)
    time.sleep(settle)
    return _for(retrain_runs(deployment_id), window)


def _for(runs: list, window: str) -> list:
    return [r for r in runs if r.parameters.get("window_end") == window]


@pytest.mark.slow
def test_a_burst_of_identical_events_starts_one_retrain_with_the_evidence_as_parameters(server):
    resource = model_resource(MODEL, USECASE, "7", "2099-01")
    same_id = event_id(DRIFT_EVENT, MODEL, "7", "2099-01")
    payload = {"reason": "drift in window 2099-01", "evidence_uri": "s3://lake/report.html"}
    emit(DRIFT_EVENT, resource, payload, same_id)
    sent = time.monotonic()
    while not _for(retrain_runs(server["deployment_id"]), "2099-01") and time.monotonic() - sent < 20:
        time.sleep(0.05)
    print(f"retrain run created {time.monotonic() - sent:.2f} s after the event")
    for _ in range(9):
        emit(DRIFT_EVENT, resource, payload, same_id)
    for _ in range(10):  # the same news under fresh ids: the trigger's bucket per model and window absorbs them
        emit(DRIFT_EVENT, resource, payload, str(uuid.uuid4()))
    runs = runs_for(server["deployment_id"], "2099-01")
    assert len(runs) == 1, [r.parameters for r in runs]
    assert runs[0].parameters == {
        "trailing_months": 3,
        "reason": "drift in window 2099-01",
        "usecase": USECASE,
        "window_end": "2099-01",
        "evidence": "s3://lake/report.html",
    }


@pytest.mark.slow
def test_each_window_and_each_event_kind_gets_its_own_run(server):
    for window, event in (("2099-02", DRIFT_EVENT), ("2099-03", PERFORMANCE_EVENT)):
        resource = model_resource(MODEL, USECASE, "7", window)
        emit(event, resource, {"reason": f"{event} {window}", "evidence_uri": "x"}, str(uuid.uuid4()))
    assert len(runs_for(server["deployment_id"], "2099-02", settle=0)) == 1
    assert len(runs_for(server["deployment_id"], "2099-03")) == 1


@pytest.mark.slow
def test_events_on_other_resources_start_nothing(server):
    before = len(retrain_runs(server["deployment_id"]))
    emit(DRIFT_EVENT, {"prefect.resource.id": "other.thing.x", "mlops.window": "2099-04"}, {}, str(uuid.uuid4()))
    emit("mlops.something.else", model_resource(MODEL, USECASE, "7", "2099-04"), {}, str(uuid.uuid4()))
    time.sleep(5)
    assert len(retrain_runs(server["deployment_id"])) == before


@pytest.mark.integration
@pytest.mark.slow
def test_drifted_window_yields_exactly_one_retrain_run_and_a_stable_one_none(server, mon):
    assert drift_check(window="2013-01")["drifted"] is False
    june = drift_check(window="2013-06")
    assert june["drifted"] and not june["retrain_requested"]
    july = drift_check(window="2013-07")
    assert july["retrain_requested"]
    runs = runs_for(server["deployment_id"], "2013-07")
    assert len(runs) == 1
    assert runs[0].parameters["evidence"] == july["report_uri"]
    assert runs[0].parameters["reason"].startswith("drift in window 2013-07")
    assert runs_for(server["deployment_id"], "2013-01", settle=0) == []
    assert runs_for(server["deployment_id"], "2013-06", settle=0) == []


@pytest.mark.integration
def test_estimate_is_stored_beside_the_drift_verdict_and_compared_with_the_realized_metrics(mon, monitored):
    drifted = drift_check(window="2013-06")
    stored = json.loads(Path(drifted["result_uri"]).read_text())
    estimate = stored["estimate"]
    assert estimate["available"] is True, estimate
    assert estimate["rows"] == monitored["scored"]["2013-06"]["rows_scored"]
    low, high = estimate["intervals"]["roc_auc"]
    assert low <= estimate["metrics"]["roc_auc"] <= high
    assert estimate["value"]["total"] == pytest.approx(
        sum(estimate["confusion"][c] * p for c, p in {"tp": 400, "fp": -60, "fn": -150, "tn": 0}.items())
    )
    assert stored["mlflow_run"]["run_id"] == drifted["mlflow_run"]["run_id"]  # the stored result names its run
    registry = MlflowRegistry(f"sqlite:///{mon / 'mlflow' / 'mlflow.db'}", str(mon / "mlflow" / "artifacts"))
    logged = registry.run_summary(drifted["mlflow_run"]["run_id"])["metrics"]
    assert logged["estimated_roc_auc"] == pytest.approx(estimate["metrics"]["roc_auc"])
    assert logged["estimated_value"] == pytest.approx(estimate["value"]["total"])

    realized = performance_check(window="2013-06")
    side = realized["estimated_vs_realized"]
    assert side["roc_auc"]["estimated"] == pytest.approx(estimate["metrics"]["roc_auc"])
    assert side["roc_auc"]["realized"] == pytest.approx(realized["metrics"]["roc_auc"])
    assert side["roc_auc"]["error"] == pytest.approx(realized["metrics"]["roc_auc"] - estimate["metrics"]["roc_auc"])
    assert abs(side["roc_auc"]["error"]) < 0.1
    cells = realized["confusion"]
    assert sum(cells.values()) == realized["counts"]["rows_labelled"]
    assert realized["value"]["total"] == pytest.approx(400 * cells["tp"] - 60 * cells["fp"] - 150 * cells["fn"])
    assert side["value"]["realized"] == pytest.approx(realized["value"]["total"])
    perf_logged = registry.run_summary(realized["mlflow_run"]["run_id"])["metrics"]
    assert perf_logged["estimate_error_roc_auc"] == pytest.approx(side["roc_auc"]["error"])


@pytest.mark.integration
def test_the_trained_model_logs_its_calibration_map(mon, monitored):
    registry = MlflowRegistry(f"sqlite:///{mon / 'mlflow' / 'mlflow.db'}", str(mon / "mlflow" / "artifacts"))
    mapping = json.loads(registry.read_run_artifact(monitored["run_id"], "calibration/calibration_map.json"))
    assert mapping["method"] == "isotonic" and len(mapping["knots_x"]) == len(mapping["knots_y"]) >= 2
    assert mapping["knots_y"] == sorted(mapping["knots_y"])
    metrics = registry.run_summary(monitored["run_id"])["metrics"]
    # logged beside the realized value of the labelled part the map was not fitted on
    assert 0.5 < metrics["validation_estimated_roc_auc"] < 1.0 and "validation_estimated_precision" in metrics
