"""The local stack for end-to-end tests: real servers on free 127.0.0.1 ports in a temporary MLOPS_HOME.

The stack (moto S3, Prefect server, MLflow server on SQLite, a process worker, every deployment of prefect.yaml)
is started once per module and stopped by the PIDs in its state file, also when the start-up failed half-way.
``MLOPS_E2E_KEEP_STACK=1`` leaves it running to look at a failure.
Timings the tests record are printed in the terminal summary and written to the artifacts folder.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from e2e_support import TIMINGS, artifacts_dir, record

from adapters import processes
from flows.settings import REPO_ROOT
from ops import stack

PII_KEY = "test-only-pii-key-0123456789abcdef"
# Imported once while the stack starts, so the byte code is compiled before the first flow runs: otherwise the
# first five flow runs (the landings, at once) all compile the same modules on the same 2 cores (113 s vs 40 s).
WARM_UP = "import " + ", ".join(
    ("prefect.engine", *(f"flows.{m}" for m in ("land", "ingest", "train", "register", "score", "drift", "retrain")))
)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not TIMINGS:
        return
    terminalreporter.section("e2e timings (s)")
    for name, seconds in TIMINGS.items():
        terminalreporter.write_line(f"{name:<44} {seconds:8.2f}")
    path = artifacts_dir() / "timings.json"
    path.write_text(json.dumps(TIMINGS, indent=2))
    terminalreporter.write_line(f"artifacts (screenshots, timings): {path.parent}")


@pytest.fixture(scope="module")
def e2e_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """A running stack; yields what ``stack.up`` reports plus the home folder."""
    home = tmp_path_factory.mktemp("e2e-home")
    (home / "tmp").mkdir()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLOPS_HOME", str(home))
        # the worker hands its environment to every flow run: the PII key as a real worker gets it, and a
        # TMPDIR inside the test's home for the runner storage Prefect leaves behind
        mp.setenv("MLOPS_PII_KEY", PII_KEY)
        mp.setenv("TMPDIR", str(home / "tmp"))
        # One OpenMP thread per flow run. On 2 shared cores, scikit-learn's OpenMP threads spin-wait for a core
        # another process holds: measured here, a HistGradientBoosting fit took 156 s instead of 2.6 s and 80
        # predictions (the permutation importances, the gate) 184 s instead of 5 s while one other process ran.
        mp.setenv("OMP_NUM_THREADS", "1")
        # Every flow run is a new Python process importing prefect, pandas, mlflow, scikit-learn. With
        # PYTHONDONTWRITEBYTECODE set (as on these machines) and no .pyc in .venv, each one compiled them all from
        # source again: 15 s per import of a flow module under load instead of 6.5 s. The compiled files go to a
        # git-ignored folder of their own, never into .venv or the repository.
        mp.delenv("PYTHONDONTWRITEBYTECODE", raising=False)
        mp.setenv("PYTHONPYCACHEPREFIX", str(REPO_ROOT / "var" / "cache" / "pycache"))
        for name in ("MLOPS_PROFILE", "MLOPS_CONFIG_DIR", "MLOPS_USECASE", "PREFECT_API_URL", "MLFLOW_TRACKING_URI"):
            mp.delenv(name, raising=False)
        # two drifted months (April, May) request retraining here: the debounce of the test's config copy is
        # 2 of the last 3 windows (production paces retraining with 3 of 3), so the loop closes in fewer runs
        mp.setenv("MLOPS_CONFIG_DIR", str(_config_copy(home)))
        for name, value in {
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "GX_ANALYTICS_ENABLED": "false",
            "DO_NOT_TRACK": "true",
            "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
        }.items():
            mp.setenv(name, value)
        ports = stack.Ports(processes.free_port(), processes.free_port(), processes.free_port())
        started = time.perf_counter()
        warm_up = subprocess.Popen([sys.executable, "-c", WARM_UP], cwd=REPO_ROOT)
        try:
            report = stack.up(ports)
            warm_up.wait(timeout=300)
            # this process reads what the flows wrote: MLflow artifacts go straight to the stack's S3 API
            for name, value in {**report["env"], "MLFLOW_S3_ENDPOINT_URL": report["urls"]["s3"]}.items():
                mp.setenv(name, value)
            record("stack up (servers + deploy + worker)", time.perf_counter() - started)
            for name, seconds in report["seconds"].items():
                record(f"  stack up: {name}", seconds)
            yield {**report, "home": home}
        finally:
            if warm_up.poll() is None:
                warm_up.kill()
                warm_up.wait()
            if os.environ.get("MLOPS_E2E_KEEP_STACK") == "1":  # to look around after a failure
                print(f"\nstack kept: {stack.read_state()}; stop it: MLOPS_HOME={home} mlops stack down")
            else:
                _stop_by_pid()


def _stop_by_pid() -> None:
    """Stop what the state file names, worker first (its flow runs are in its process group), by PID.

    Not ``stack.down()``: copying the buckets to disk for a next ``up`` is of no use to a throw-away stack.
    """
    components = stack.read_state()["components"]
    pids = {name: components.get(name, {}).get("pid") for name in reversed(stack.ORDER)}
    for pid in pids.values():
        processes.stop(pid)
    still = {name: pid for name, pid in pids.items() if processes.alive(pid)}
    assert not still, f"stack processes still running after stop: {still}"


def _config_copy(home: Path) -> Path:
    target = home / "config"
    shutil.copytree(REPO_ROOT / "config", target)
    usecase = target / "usecases" / "flight_delay.yaml"
    data = yaml.safe_load(usecase.read_text())
    data["drift"]["debounce"] = {"k": 2, "n": 3, "cooldown_windows": 2}
    usecase.write_text(yaml.safe_dump(data))
    return target
