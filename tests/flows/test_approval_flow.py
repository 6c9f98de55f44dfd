"""Gate mode ``approval`` on a real Prefect server: register runs as a deployment, suspends, and is answered.

Set-up: a champion trained on January (enforce mode), a challenger trained on January-February. Then, with the
use case in approval mode and a runner serving ``register`` and ``approval-timeout``, the challenger is registered
three times: left unanswered until the timeout, rejected through `mlops reject`'s code path, approved with
`mlops approve` itself. Each answer goes through the API with input, as the Prefect UI's form sends it.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from uuid import UUID

import pytest
import yaml
from mlflow import MlflowClient
from typer.testing import CliRunner

from adapters.registry import MlflowRegistry
from flows.ingest import ingest
from flows.land import land
from flows.register import register
from flows.train import train
from ops import approvals
from ops.commands import app
from ops.local_prefect import local_prefect
from tasks.errors import MlopsError

REPO = Path(__file__).resolve().parents[2]
MODEL = "flight-delay-classifier"
PII_KEY = "test-only-pii-key-0123456789abcdef"
WAIT_SECONDS = 300
LONG_TIMEOUT = 3600
SHORT_TIMEOUT = 8


def _set_gate(config: Path, **gate: object) -> None:
    path = config / "usecases" / "flight_delay.yaml"
    data = yaml.safe_load(path.read_text())
    data["gate"] = {**data["gate"], **gate}
    path.write_text(yaml.safe_dump(data))


def _state(flow_run_id: UUID):
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return client.read_flow_run(flow_run_id).state


def _wait_for(flow_run_id: UUID, state_types: set[str]):
    started = time.monotonic()
    state = _state(flow_run_id)
    while state.type.value not in state_types and time.monotonic() - started < WAIT_SECONDS:
        time.sleep(1)
        state = _state(flow_run_id)
    return state


def _start_register(run_id: str) -> UUID:
    from prefect.deployments import run_deployment

    run = run_deployment("register/register", parameters={"run_id": run_id, "reason": "retrain: drift"}, timeout=0)
    return run.id


@pytest.fixture(scope="module")
def staged(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("approval")
    home, config = root / "home", root / "config"
    shutil.copytree(REPO / "config", config)
    # one training month misses the production floors; a wide margin lets the challenger pass the gate
    _set_gate(config, floors={}, max_brier=None, max_calibration_error=None, non_inferiority_margin=1.0)
    env = {"MLOPS_HOME": str(home), "MLOPS_PII_KEY": PII_KEY, "MLOPS_CONFIG_DIR": str(config)}
    with pytest.MonkeyPatch.context() as mp:
        for name, value in env.items():
            mp.setenv(name, value)
        mp.delenv("MLOPS_PROFILE", raising=False)
        for month in ("2013-01", "2013-02"):
            ingest(input_uri=land(period=month)["batch_uri"])
        assert register(run_id=train(months="2013-01")["run_id"])["outcome"] == "promoted"
        challenger = train(months="2013-01..2013-02")["run_id"]
        _set_gate(config, mode="approval", approval_timeout_seconds=SHORT_TIMEOUT)
        registry = MlflowRegistry(f"sqlite:///{home}/mlflow/mlflow.db", str(home / "mlflow" / "artifacts"))
        with local_prefect(root / "prefect", serve=["register", "approval-timeout"], env=env) as prefect:
            api = prefect.api_url
            unanswered = _start_register(challenger)
            expired = _wait_for(unanswered, {"FAILED", "COMPLETED", "CRASHED"})
            timed_out = _wait_for_tag(registry, "approval.flow_run_id", str(unanswered), "not_promoted")

            _set_gate(config, approval_timeout_seconds=LONG_TIMEOUT)
            rejected_run = _start_register(challenger)
            paused = _wait_for(rejected_run, {"PAUSED"})
            listed = CliRunner().invoke(app, ["approvals", "--json"])
            waiting = json.loads(listed.stdout)["result"] if listed.exit_code == 0 else listed.output
            with pytest.raises(MlopsError, match="needs a comment"):
                approvals.answer(api, None, False, "  ", "bob")
            approvals.answer(api, None, False, "calibration drifts in February", "bob")
            rejected = _wait_for(rejected_run, {"COMPLETED", "FAILED", "CRASHED"})
            after_reject = registry.get_alias(MODEL, "champion").version

            approved_run = _start_register(challenger)
            _wait_for(approved_run, {"PAUSED"})
            with pytest.raises(MlopsError, match="not a flow run id"):
                approvals.answer(api, "nope", True, "ok", "alice")
            comment = "lift holds on the February holdout"
            cli = ["approve", str(approved_run), "--comment", comment, "--as", "alice", "--json"]
            answered = CliRunner().invoke(app, cli)
            assert answered.exit_code == 0, answered.output
            approved = _wait_for(approved_run, {"COMPLETED", "FAILED", "CRASHED"})
            with pytest.raises(MlopsError, match="not waiting for an approval"):
                approvals.answer(api, str(approved_run), True, "again", "alice")
            left = approvals.pending(api)
        version = registry.version_of_run(MODEL, challenger)
        return {
            "expired": expired,
            "timed_out": timed_out,
            "paused": paused,
            "waiting": waiting,
            "rejected": rejected,
            "after_reject": after_reject,
            "approved": approved,
            "left": left,
            "answered": json.loads(answered.stdout)["result"],
            "registry": registry,
            "version": version,
            "champion": registry.get_alias(MODEL, "champion"),
            "history": registry.alias_history(MODEL),
            "decisions": _decisions(registry, version.run_id),
        }


def _wait_for_tag(registry: MlflowRegistry, tag: str, value: str, outcome: str) -> dict:
    """The challenger's tags once the recorded outcome of the run that set ``tag`` is ``outcome`` (or time is up)."""
    started = time.monotonic()
    while True:
        versions = MlflowClient(registry.tracking_uri).search_model_versions(f"name='{MODEL}'")
        tags = next((dict(v.tags) for v in versions if v.tags.get(tag) == value), {})
        if tags.get("gate.outcome") == outcome or time.monotonic() - started > WAIT_SECONDS:
            return tags
        time.sleep(1)


def _decisions(registry: MlflowRegistry, run_id: str) -> list[dict]:
    client = MlflowClient(registry.tracking_uri)
    paths = sorted(a.path for a in client.list_artifacts(run_id, "gate") if "decision-" in a.path)
    return [json.loads(registry.read_run_artifact(run_id, path)) for path in paths]


def test_an_unanswered_approval_times_out_as_not_promoted(staged):
    assert staged["expired"].type.value == "FAILED" and "never resumed" in staged["expired"].message
    assert staged["timed_out"]["gate.outcome"] == "not_promoted"
    timed_out = [d for d in staged["decisions"] if (d.get("approval") or {}).get("decision") == "timed_out"]
    assert len(timed_out) == 1 and f"within {SHORT_TIMEOUT:,} s" in timed_out[0]["reasons"][0]


def test_the_form_shows_metrics_interval_and_evidence(staged):
    assert staged["paused"].type.value == "PAUSED" and staged["paused"].name == "Suspended"
    (waiting,) = staged["waiting"]
    assert waiting["asks"].startswith(f"Promote version {staged['version'].version} of `{MODEL}`")
    description = waiting["description"]
    assert "| roc_auc |" in description and "Paired bootstrap" in description and "runs:/" in description
    assert waiting["until"] is not None, "the suspension carries the configured timeout"


def test_a_rejection_records_who_and_why_and_moves_nothing(staged):
    assert staged["rejected"].type.value == "COMPLETED" and staged["after_reject"] == "1"
    rejected = [d for d in staged["decisions"] if (d.get("approval") or {}).get("decision") == "rejected"]
    assert len(rejected) == 1 and rejected[0]["outcome"] == "not_promoted"
    assert rejected[0]["approval"]["by"] == "bob" and rejected[0]["reasons"][0].startswith("rejected by bob:")


def test_an_approval_promotes_and_the_history_records_the_approver(staged):
    assert staged["approved"].type.value == "COMPLETED"
    assert staged["champion"].version == staged["version"].version
    champion_moves = [m for m in staged["history"] if m.alias == "champion"]
    last = champion_moves[-1]
    assert last.to_version == staged["version"].version and last.from_version == "1"
    assert last.approval["by"] == "alice" and last.approval["comment"] == "lift holds on the February holdout"
    assert "approved by alice" in last.reason
    assert len(champion_moves) == 2, "only the first model and the approved one moved @champion"
    challenger_moves = [m for m in staged["history"] if m.alias == "challenger"]
    assert [m.to_version for m in challenger_moves] == ["1", staged["version"].version], "a resumed run moves once"
    assert staged["left"] == []
    assert staged["answered"]["decision"] == "approved" and staged["answered"]["approver"] == "alice"


@pytest.mark.parametrize("command", ["approvals", "approve", "reject"])
def test_the_answer_commands_have_help(command):
    result = CliRunner().invoke(app, [command, "--help"])
    assert result.exit_code == 0 and "--json" in result.output
    if command != "approvals":
        assert "--comment" in result.output and "--as" in result.output
