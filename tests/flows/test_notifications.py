"""Notifications end to end: a real Prefect server with infra/automations applied, a webhook receiver on 127.0.0.1.

One module set-up drives the real lifecycle against the server: a first model promoted, a second one rejected by
the gate and then promoted, a rollback, a score deployment run that fails and one whose batch the contract refuses;
drift (a burst of three identical events) and degraded performance are sent as the checks send them. Each
situation must give exactly one message, saying what, why and where to look.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pandas as pd
import pytest
import yaml

from adapters.events import emit
from flows.ingest import ingest
from flows.land import land
from flows.register import register, rollback
from flows.train import train
from ops.local_prefect import local_prefect
from ops.notifications import NOTIFICATIONS_FILE, apply_notifications, load_spec
from tasks.monitoring import DRIFT_EVENT, PERFORMANCE_EVENT, model_resource

REPO = Path(__file__).resolve().parents[2]
MODEL = "flight-delay-classifier"
PII_KEY = "test-only-pii-key-0123456789abcdef"
EXPECTED_MESSAGES = 8
WAIT_SECONDS = 240


class Receiver:
    """A webhook endpoint on 127.0.0.1 (free port) that keeps every JSON body it is sent."""

    def __init__(self) -> None:
        received: list[dict] = []
        self.received = received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                received.append(json.loads(self.rfile.read(length) or b"{}"))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def wait_for(self, count: int, timeout: float) -> list[dict]:
        started = time.monotonic()
        while len(self.received) < count and time.monotonic() - started < timeout:
            time.sleep(0.5)
        return list(self.received)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _config(target: Path, **gate: object) -> Path:
    if not target.exists():
        shutil.copytree(REPO / "config", target)
    path = target / "usecases" / "flight_delay.yaml"
    data = yaml.safe_load(path.read_text())
    data["gate"] = {**data["gate"], **gate}
    path.write_text(yaml.safe_dump(data))
    return target


@pytest.fixture(scope="module")
def notified(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("notify")
    home = root / "home"
    # one training month misses the production floors: relaxed here; "strict" makes the gate refuse anything
    relaxed = _config(root / "relaxed", floors={}, max_brier=None, max_calibration_error=None)
    strict = _config(root / "strict", floors={"roc_auc": 0.99})
    env = {"MLOPS_HOME": str(home), "MLOPS_PII_KEY": PII_KEY, "MLOPS_CONFIG_DIR": str(relaxed)}
    receiver = Receiver()
    try:
        with pytest.MonkeyPatch.context() as mp:
            for name, value in env.items():
                mp.setenv(name, value)
            mp.delenv("MLOPS_PROFILE", raising=False)
            mp.setenv("MLOPS_NOTIFY_URL", receiver.url)
            with local_prefect(root / "prefect", serve=["score"], env=env) as prefect:
                applied = [apply_notifications(prefect.api_url, required=True) for _ in range(2)]
                time.sleep(2)  # the server loads new automations every second or so
                result = _lifecycle(mp, home, relaxed, strict)
                messages = receiver.wait_for(EXPECTED_MESSAGES, WAIT_SECONDS)
                time.sleep(3)  # a message beyond the expected ones would show up here
                messages = list(receiver.received)
    finally:
        receiver.close()
    return {"applied": applied, "messages": messages, **result}


def _lifecycle(mp: pytest.MonkeyPatch, home: Path, relaxed: Path, strict: Path) -> dict:
    from prefect.deployments import run_deployment

    snapshots = {m: ingest(input_uri=land(period=m)["batch_uri"]) for m in ("2013-01", "2013-02")}
    first = register(run_id=train(months="2013-01")["run_id"])
    second_run = train(months="2013-01..2013-02")["run_id"]
    mp.setenv("MLOPS_CONFIG_DIR", str(strict))
    rejected = register(run_id=second_run, reason="retrain: drift in window 2013-02")
    mp.setenv("MLOPS_CONFIG_DIR", str(relaxed))
    promoted = register(run_id=second_run, reason="retrain: drift in window 2013-02")
    rolled = rollback(reason="late labels show version 2 over-predicts delays")
    failed = run_deployment("score/score", parameters={"input_uri": str(home / "no-such-batch.parquet")}, timeout=300)
    bad = home / "bad-batch" / "part-0.parquet"
    bad.parent.mkdir(parents=True)
    part = next(p for p in sorted(Path(snapshots["2013-02"]["snapshot_uri"]).rglob("*.parquet")))
    frame = pd.read_parquet(part)
    frame.drop(columns=["distance"]).rename(columns={"carrier": "airline"}).to_parquet(bad)
    refused = run_deployment("score/score", parameters={"input_uri": str(bad)}, timeout=300)
    for _ in range(3):  # a burst: three identical drift decisions (e.g. reruns of the check), distinct ids
        emit(DRIFT_EVENT, model_resource(MODEL, "flight_delay", "1", "2013-02"), _drift_payload(), str(uuid.uuid4()))
    emit(
        PERFORMANCE_EVENT,
        model_resource(MODEL, "flight_delay", "1", "2013-02"),
        {
            "reason": "performance degraded in window 2013-02: roc_auc 0.601 is below the floor 0.65",
            "metrics": {"roc_auc": 0.601, "rows": 20412},
            "evidence_uri": "file:///lake/monitoring/performance/2013-02/result.json",
            "mlflow_run_id": "abc123",
            "mlflow_run_url": None,
        },
        str(uuid.uuid4()),
    )
    return {
        "first": first,
        "rejected": rejected,
        "promoted": promoted,
        "rolled": rolled,
        "failed": failed,
        "refused": refused,
    }


def _drift_payload() -> dict:
    return {
        "reason": "drift in window 2013-02: 3 of 12 inputs drifted (debounce 2 of 3 windows)",
        "batch_id": "2013-02",
        "drift_score": 0.31,
        "drifted_inputs": {"temp": {"statistic": "psi", "value": 0.42, "threshold": 0.2}},
        "evidence_uri": "file:///lake/monitoring/drift/2013-02/report.html",
        "mlflow_run_id": "def456",
        "mlflow_run_url": None,
    }


def _about(messages: list[dict], words: str) -> list[dict]:
    return [m for m in messages if words in m["subject"]]


def test_applying_twice_creates_then_changes_nothing(notified):
    first, second = notified["applied"]
    declared = {f"automation {a.name}" for a in load_spec(NOTIFICATIONS_FILE).automations}
    assert first == {"block mlops-notify": "created", **dict.fromkeys(declared, "created")}
    assert set(second.values()) == {"unchanged"} and set(second) == set(first)


def test_the_lifecycle_ran_as_staged(notified):
    assert notified["first"]["outcome"] == "promoted" and notified["rejected"]["outcome"] == "rejected"
    assert notified["promoted"]["outcome"] == "promoted" and notified["rolled"]["to_version"] == "1"
    assert notified["failed"].state.name == "Failed" and notified["refused"].state.name == "Refused"


def test_every_situation_gives_exactly_one_message(notified):
    messages = notified["messages"]
    subjects = sorted(m["subject"] for m in messages)
    assert len(messages) == EXPECTED_MESSAGES, "\n".join(subjects)
    assert len(_about(messages, "version 1 is the new champion")) == 1
    assert len(_about(messages, "version 2 is the new champion")) == 1
    assert len(_about(messages, "version 2 not promoted")) == 1
    assert len(_about(messages, "champion rolled back from version 2 to 1")) == 1
    assert len(_about(messages, "drift detected")) == 1, "a burst of 3 identical events must send one message"
    assert len(_about(messages, "performance degraded")) == 1
    assert len(_about(messages, "refused by the contract")) == 1
    assert len(_about(messages, "Failed")) == 1, "the refused batch must not also be reported as a failed run"
    assert {m["source"] for m in messages} == {"mlops-notify"}


def test_messages_say_what_why_and_where(notified):
    messages = notified["messages"]
    (rejected,) = _about(messages, "version 2 not promoted")
    assert "rejected by the gate" in rejected["body"] and "roc_auc" in rejected["body"] and "0.99" in rejected["body"]
    assert "retrain: drift in window 2013-02" in rejected["body"]
    assert "Prefect run: http://127.0.0.1:" in rejected["body"] and "runs:/" in rejected["body"]
    (promoted,) = _about(messages, "version 2 is the new champion")
    assert "Paired bootstrap difference" in promoted["body"] and "MLflow run: " in promoted["body"]
    (rolled,) = _about(messages, "rolled back")
    assert "late labels show version 2 over-predicts delays" in rolled["body"]
    (refused,) = _about(messages, "refused by the contract")
    assert "column 'distance' is missing" in refused["body"] and "column 'carrier' is missing" in refused["body"]
    assert "bad-batch" in refused["body"] and "/runs/flow-run/" in refused["body"]
    (failed,) = _about(messages, "Failed")
    assert "score" in failed["subject"] and "no-such-batch" in failed["body"] and "/runs/flow-run/" in failed["body"]
    (drift,) = _about(messages, "drift detected")
    assert "window 2013-02" in drift["subject"] and "temp (psi 0.42 > 0.2)" in drift["body"]
    assert "report.html" in drift["body"] and "def456" in drift["body"]
    (performance,) = _about(messages, "performance degraded")
    assert "below the floor 0.65" in performance["body"] and "result.json" in performance["body"]
