"""`mlops infra apply` against a real Prefect server on a free 127.0.0.1 port: creates, then changes nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from adapters import processes
from flows.settings import REPO_ROOT
from ops import infra
from tasks.errors import MlopsError

pytestmark = pytest.mark.slow

DECLARED = {d["name"] for d in yaml.safe_load((REPO_ROOT / "prefect.yaml").read_text())["deployments"]}


@pytest.fixture(scope="module")
def prefect_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment of every Prefect process here: its own PREFECT_HOME, no analytics, no API of the caller."""
    home = tmp_path_factory.mktemp("prefect-home")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_") and k != "MLOPS_PROFILE"}
    return env | {
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
        "TMPDIR": str(tmp_path_factory.mktemp("tmp")),
    }


@pytest.fixture(scope="module")
def api_url(prefect_env: dict[str, str]) -> Iterator[str]:
    """A real `prefect server start`, stopped by its PID afterwards."""
    port = processes.free_port()
    log = Path(prefect_env["PREFECT_HOME"]) / "server.log"
    command = [str(Path(sys.executable).parent / "prefect"), "server", "start", "--host", "127.0.0.1"]
    pid = processes.start([*command, "--port", str(port)], env=prefect_env, log_file=log, cwd=REPO_ROOT)
    try:
        processes.wait_until_healthy("prefect", f"http://127.0.0.1:{port}/api/health", pid, 120, log)
        yield f"http://127.0.0.1:{port}/api"
    finally:
        assert processes.stop(pid), "the server was not running any more at the end of the module"


def _stored_pools(api_url: str) -> dict[str, tuple[str, dict]]:
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: api_url}), get_client(sync_client=True) as client:
        return {p.name: (p.type, p.base_job_template) for p in client.read_work_pools()}


def _cli(args: list[str], env: dict[str, str]) -> dict:
    mlops = str(Path(sys.executable).parent / "mlops")
    done = subprocess.run([mlops, *args], env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1, f"--json must print one line, got:\n{done.stdout}\n{done.stderr[-3000:]}"
    return json.loads(lines[0]) | {"exit": done.returncode}


def test_apply_creates_then_changes_nothing(api_url: str, prefect_env: dict[str, str]) -> None:
    first = infra.apply(api_url, env=prefect_env)
    assert first["pools"] == {infra.pool_name(t): "created" for t in infra.POOL_TYPES}
    assert {key.split("/")[1] for key in first["deployments"]} == DECLARED
    assert set(first["deployments"].values()) == {"created"}

    # the second time through the command line, as a platform engineer runs it
    second = _cli(["infra", "apply", "--json"], prefect_env | {"PREFECT_API_URL": api_url})
    assert second["ok"] and second["exit"] == 0, second
    assert second["result"]["pools"] == {infra.pool_name(t): "unchanged" for t in infra.POOL_TYPES}
    assert second["result"]["deployments"] == dict.fromkeys(first["deployments"], "unchanged")

    stored = _stored_pools(api_url)
    for pool_type in infra.POOL_TYPES:
        expected = json.loads((infra.POOLS_DIR / f"{pool_type}.json").read_text())
        assert stored[infra.pool_name(pool_type)] == (pool_type, expected), f"{pool_type}.json differs on the server"


def test_deploy_pool_moves_every_deployment_to_that_pool(api_url: str, prefect_env: dict[str, str]) -> None:
    """`--deploy-pool kubernetes`: the same deployments, on the Kubernetes pool (prefect.yaml itself unchanged)."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    moved = infra.apply(api_url, ("kubernetes",), deploy_pool="kubernetes", env=prefect_env)
    assert {key.split("/")[1] for key in moved["deployments"]} == DECLARED
    assert set(moved["deployments"].values()) <= {"created", "updated"}
    with temporary_settings({PREFECT_API_URL: api_url}), get_client(sync_client=True) as client:
        pools = {d.name: d.work_pool_name for d in client.read_deployments() if d.name in DECLARED}
    assert pools == dict.fromkeys(DECLARED, "mlops-kubernetes")
    assert "mlops-process" in (REPO_ROOT / "prefect.yaml").read_text()
    with pytest.raises(MlopsError, match="unknown pool type"):
        infra.apply(api_url, (), deploy_pool="nomad", env=prefect_env)


def test_a_changed_default_updates_and_reapplying_the_file_restores(api_url: str) -> None:
    image = "ghcr.io/acme/mlops-worker:3f2c1a9b7d4e"
    assert infra.apply(api_url, ("kubernetes",), deploy=False)["pools"]["mlops-kubernetes"] in {"created", "unchanged"}
    changed = infra.apply(api_url, ("kubernetes",), defaults={"image": image}, deploy=False)
    assert changed["pools"] == {"mlops-kubernetes": "updated"}
    assert changed["deployments"] == {}
    template = _stored_pools(api_url)["mlops-kubernetes"][1]
    assert template["variables"]["properties"]["image"]["default"] == image

    again = infra.apply(api_url, ("kubernetes",), defaults={"image": image}, deploy=False)
    assert again["pools"] == {"mlops-kubernetes": "unchanged"}

    restored = infra.apply(api_url, ("kubernetes",), deploy=False)
    assert restored["pools"] == {"mlops-kubernetes": "updated"}
    assert _stored_pools(api_url)["mlops-kubernetes"][1] == infra.load_template("kubernetes")


def test_server_refuses_a_moving_tag_the_file_check_would_also_refuse(api_url: str) -> None:
    """The image pattern lives in the pool: Prefect itself rejects `latest` as a default, not only our command."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import PrefectHTTPStatusError
    from prefect.settings import PREFECT_API_URL, temporary_settings

    template = infra.load_template("kubernetes")
    template["variables"]["properties"]["image"]["default"] = "ghcr.io/acme/mlops-worker:latest"
    pool = WorkPoolCreate(name="mlops-moving-tag", type="kubernetes", base_job_template=template)
    with (
        temporary_settings({PREFECT_API_URL: api_url}),
        get_client(sync_client=True) as client,
        pytest.raises(PrefectHTTPStatusError, match="422"),
    ):
        client.create_work_pool(pool)
    with pytest.raises(MlopsError, match="image"):
        infra.load_template("kubernetes", {"image": "ghcr.io/acme/mlops-worker:latest"})
