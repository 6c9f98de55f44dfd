"""Waits follow progress, and a private local server is left clean: runs cancelled, slots freed, leftovers cleared.

A real Prefect server on 127.0.0.1 (ops.local_prefect); the retrain runs are created through its API and moved
by hand, so each test controls exactly whether a run progresses, stalls or fails.
"""

from __future__ import annotations

import contextvars
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.states import Completed, Failed, Running

from ops import local_prefect as lp
from tasks.errors import MlopsError

WINDOW = "2013-06"


@flow(name="retrain")
def _retrain_stand_in(window_end: str) -> None:
    """Only its name and parameters matter: its runs are created through the API, never executed."""


def _deployment() -> str:
    with get_client(sync_client=True) as client:
        flow_id = client.create_flow(_retrain_stand_in)
        return str(client.create_deployment(flow_id=flow_id, name="retrain", concurrency_limit=1))


def _run(deployment_id: str, state=None) -> str:
    with get_client(sync_client=True) as client:
        run = client.create_flow_run_from_deployment(deployment_id, parameters={"window_end": WINDOW})
        if state is not None:
            client.set_flow_run_state(run.id, state, force=True)
        return str(run.id)


def _set(run_id: str, state) -> None:
    with get_client(sync_client=True) as client:
        client.set_flow_run_state(run_id, state, force=True)


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[lp.LocalPrefect]:
    with lp.local_prefect(tmp_path_factory.mktemp("prefect")) as state:
        yield state


@pytest.fixture
def deployment(server) -> Iterator[str]:
    deployment_id = _deployment()
    yield deployment_id
    lp.cancel_open_runs("test over")
    with get_client(sync_client=True) as client:
        client.delete_deployment(deployment_id)


def test_a_run_that_keeps_progressing_is_waited_for_longer_than_the_no_progress_limit(deployment):
    run_id = _run(deployment, Running())
    lines: list[str] = []

    def work() -> None:  # a step changes state every second for 8 s, then the run completes
        for _ in range(8):
            time.sleep(1)
            _set(run_id, Running(message="next step"))
        _set(run_id, Completed())

    worker = threading.Thread(target=contextvars.copy_context().run, args=(work,))  # the same API URL
    worker.start()
    started = time.monotonic()
    runs = lp.wait_for_retrains(deployment, WINDOW, 1, time.time(), no_progress_seconds=4, on_progress=lines.append)
    worker.join()
    assert time.monotonic() - started > 4, "the wait outlived its no-progress limit because the run moved"
    assert [str(r.id) for r in runs] == [run_id] and runs[0].state_name == "Completed"
    assert lines and lines[0].startswith("retrain run ") and "Running" in lines[0]


def test_a_run_without_progress_fails_the_wait_naming_the_run_and_where_to_look(deployment):
    run_id = _run(deployment, Running())
    with pytest.raises(MlopsError, match=r"no progress for \d+ s \(limit 3 s") as raised:
        lp.wait_for_retrains(deployment, WINDOW, 1, time.time(), no_progress_seconds=3, where=" | logs: runner.log")
    assert run_id in str(raised.value) and "Running" in str(raised.value)
    assert str(raised.value).endswith(" | logs: runner.log")


def test_a_failed_run_fails_the_wait_at_once_with_its_message(deployment):
    _run(deployment, Failed(message="train: holdout has a single class"))
    started = time.monotonic()
    with pytest.raises(MlopsError, match="ended Failed: train: holdout has a single class"):
        lp.wait_for_retrains(deployment, WINDOW, 1, time.time(), no_progress_seconds=600)
    assert time.monotonic() - started < 600


def test_exit_cancels_open_runs_and_the_next_start_clears_what_a_killed_caller_left(tmp_path):
    folder = tmp_path / "demo-prefect"
    with lp.local_prefect(folder) as first:
        deployment_id = _deployment()
        closed = _run(deployment_id, Running())
    assert first.cancelled, "exit cancelled the open run"
    with lp.local_prefect(folder) as second:
        with get_client(sync_client=True) as client:
            assert client.read_flow_run(closed).state_name == "Cancelled"
        held = _run(deployment_id, Running())
        with get_client(sync_client=True) as client:  # the slot the run holds, as the deployment's limit counts it
            limit = client.read_deployment(deployment_id).global_concurrency_limit
            from prefect.client.schemas.actions import GlobalConcurrencyLimitUpdate

            client.update_global_concurrency_limit(limit.name, GlobalConcurrencyLimitUpdate(active_slots=1))
        lp.processes.stop(second.pids["server"])  # killed outright: its own exit can clean nothing
    with lp.local_prefect(folder) as third:
        assert third.leftovers, "the start cancelled the run a killed caller left open"
        with get_client(sync_client=True) as client:
            assert client.read_flow_run(held).state_name == "Cancelled"
            assert client.read_deployment(deployment_id).global_concurrency_limit.active_slots == 0


def test_recorded_pids_of_other_programs_are_never_stopped(tmp_path):
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / lp.PIDS_FILE).write_text(f'{{"server": {other.pid}}}')
        assert lp.stop_leftover_processes(tmp_path) == []
        assert other.poll() is None, "a reused PID is left alone"
        assert not (tmp_path / lp.PIDS_FILE).exists()
    finally:
        other.kill()
        other.wait()


def test_stale_pid_file_of_a_folder_is_harmless(tmp_path: Path):
    (tmp_path / lp.PIDS_FILE).write_text("not json")
    assert lp.stop_leftover_processes(tmp_path) == []
