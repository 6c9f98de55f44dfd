"""MLflow's tracking server killed during a registration: no alias moves, and a rerun promotes.

A real `mlflow server` (SQLite store, local artifacts, 127.0.0.1, a free port) serves the register flow; it is
killed (SIGKILL to its process group) while the gate runs, between the challenger's move and the promotion.
"""

# ruff: noqa: F401, F811  (fixtures shared with another test module are imported, then requested by name)
from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import pytest
import yaml
from mlflow import MlflowClient
from test_train_register_flow import MODEL, MONTHS, REPO, curated_lake, mlhome

import flows.register as register_module
from adapters import processes
from flows.register import register
from flows.train import train
from tasks.errors import RegistryUnavailable

# a whole lifecycle on a busy machine: beyond the suite's default 600 s per test
pytestmark = pytest.mark.timeout(1800)


def start_mlflow(home: Path, port: int) -> int:
    command = [
        str(Path(sys.executable).parent / "mlflow"),
        "server",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--backend-store-uri",
        f"sqlite:///{home}/mlflow-server/mlflow.db",
        "--artifacts-destination",
        str(home / "mlflow-server" / "artifacts"),
    ]
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "MLFLOW_DISABLE_TELEMETRY": "true"}
    log = home / "mlflow-server.log"
    pid = processes.start(command, env=env, log_file=log, cwd=home)
    processes.wait_until_healthy("mlflow", f"http://127.0.0.1:{port}/health", pid, 180, log)
    return pid


def champion(home: Path) -> str | None:
    uri = f"sqlite:///{home}/mlflow-server/mlflow.db"
    value = MlflowClient(tracking_uri=uri, registry_uri=uri).get_registered_model(MODEL).aliases.get("champion")
    return None if value is None else str(value)


@pytest.fixture
def server(mlhome, tmp_path, monkeypatch):
    """The local profile pointed at a tracking server; yields (port, pid holder)."""
    port = processes.free_port()
    config = tmp_path / "config"
    import shutil

    shutil.copytree(REPO / "config", config)
    profile = config / "profiles" / "local.yaml"
    data = yaml.safe_load(profile.read_text())
    data["mlflow"] = {"tracking_uri": f"http://127.0.0.1:{port}", "artifact_uri": None, "http_retries": 0}
    profile.write_text(yaml.safe_dump(data))
    monkeypatch.setenv("MLOPS_CONFIG_DIR", str(config))
    pids = {"mlflow": start_mlflow(mlhome, port)}
    yield port, pids
    processes.stop(pids["mlflow"])


def test_mlflow_killed_during_registration_moves_no_alias_and_a_rerun_promotes(mlhome, server, monkeypatch):
    port, pids = server
    first, second = train(months=MONTHS)["run_id"], train(months=MONTHS)["run_id"]
    assert register(run_id=first)["outcome"] == "promoted"
    real_gate = register_module.run_gate.fn

    def gate_then_server_dies(*args, **kwargs):
        decision = real_gate(*args, **kwargs)
        os.killpg(pids["mlflow"], signal.SIGKILL)  # the whole server, its workers too
        processes.stop(pids["mlflow"], timeout_seconds=5)
        return decision

    monkeypatch.setattr(register_module.run_gate, "fn", gate_then_server_dies)
    for step in (register_module.record_decision, register_module.move_alias):
        monkeypatch.setattr(step, "retry_delay_seconds", [0, 0])
    with pytest.raises(RegistryUnavailable, match=f"MLflow at http://127.0.0.1:{port} is unreachable"):
        register(run_id=second)
    assert champion(mlhome) == "1"

    monkeypatch.setattr(register_module.run_gate, "fn", real_gate)
    pids["mlflow"] = start_mlflow(mlhome, port)  # the same store, restarted
    again = register(run_id=second)
    assert again["outcome"] == "promoted" and again["champion_version"] == "1"
    assert champion(mlhome) == "2"
