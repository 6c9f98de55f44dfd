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
from pathlib import Path

import pandas as pd
import pytest
import yaml

from adapters.registry import MlflowRegistry
from flows.drift import drift_check
from flows.ingest import ingest
from flows.land import land
from flows.performance import performance_check
from flows.register import register
from flows.retrain import retrain
from flows.score import score
from flows.train import train
from tasks.errors import InputDataError
from tasks.monitoring import DRIFT_EVENT, PERFORMANCE_EVENT

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
