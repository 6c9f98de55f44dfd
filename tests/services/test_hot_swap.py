"""Hot swap against a real registry and a real server: `mlops api` (2 uvicorn workers) on a free port, under
continuous concurrent requests, while the alias moves back and forth. No request fails; every response names
one of the two versions; after each move every worker serves the new version."""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from conftest import MODEL, request_rows

from adapters import processes
from adapters.alias_events import emit_alias_moved
from flows.context import build_context

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def server(service_env, tmp_path):
    from prefect.settings import PREFECT_API_URL

    port = processes.free_port()
    env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value())}
    command = [sys.executable, "-m", "ops.main", "api", "--port", str(port), "--workers", "2"]
    log = tmp_path / "api.log"
    pid = processes.start(command, env=env, log_file=log, cwd=REPO)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, pid, log)
        yield url
    finally:
        processes.stop(pid)


def _wait_ready(url: str, pid: int, log: Path) -> None:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        assert processes.alive(pid), log.read_text()[-3000:]
        try:
            if httpx.get(f"{url}/ready", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"the API never became ready: {log.read_text()[-3000:]}")


def test_alias_moves_under_load_fail_no_request(server, served, service_env):
    first, second = served["versions"]
    ctx = build_context()
    registry = ctx.registry()
    body = request_rows(served["feb_frame"], 3)
    outcomes: list[tuple[int, str | None]] = []
    stop = threading.Event()

    def load() -> None:
        with httpx.Client(base_url=server, timeout=30) as client:
            while not stop.is_set():
                try:
                    response = client.post("/v1/predict", json=body)
                    version = response.json().get("model", {}).get("version")
                    outcomes.append((response.status_code, version))
                except httpx.HTTPError as exc:
                    outcomes.append((0, repr(exc)))

    def served_everywhere(version: str) -> bool:
        deadline = time.monotonic() + 90
        streak = 0
        with httpx.Client(base_url=server, timeout=30) as client:
            while time.monotonic() < deadline:
                response = client.post("/v1/predict", json=body)
                got = response.json()["model"]["version"] if response.status_code == 200 else None
                streak = streak + 1 if got == version else 0
                if streak >= 20:  # both workers answer it, many times in a row
                    return True
        return False

    # each worker loads its model at start: /ready answered by one does not say the other is ready yet
    assert served_everywhere(second)
    threads = [threading.Thread(target=load) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        for target in (first, second, first):
            move = registry.set_alias(MODEL, "champion", target, reason="hot-swap test", flow_run_id=None)
            emit_alias_moved(MODEL, ctx.usecase.name, move.__dict__)
            assert served_everywhere(target), f"version {target} never served everywhere"
    finally:
        stop.set()
        for t in threads:
            t.join()
        registry.set_alias(MODEL, "champion", second, reason="test cleanup", flow_run_id=None)
    failures = [o for o in outcomes if o[0] != 200]
    assert not failures, failures[:5]
    assert {v for _, v in outcomes} <= {first, second}
    assert len(outcomes) > 50
    metrics = httpx.get(f"{server}/metrics").text
    assert 'mlops_api_model_swaps_total{outcome="ok"}' in metrics
