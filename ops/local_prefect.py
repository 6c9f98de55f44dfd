"""A real local Prefect server (SQLite) and a runner serving prefect.yaml, for the demo, the replay and tests.

Both run as separate processes on 127.0.0.1 (a free port), each in its own session, tracked by PID and stopped
by PID. While the context is open, this process talks to that server (PREFECT_API_URL), so flows called here
are recorded there and the events they emit reach its triggers.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from uuid import UUID

from adapters import processes
from ops.runner import REPO_ROOT
from tasks.errors import MlopsError

SERVER_START_TIMEOUT_SECONDS = 180
RUNNER_POLL_SECONDS = 1
RUN_APPEAR_TIMEOUT_SECONDS = 120.0
POLL_SECONDS = 1.0
FINAL_STATES = ("COMPLETED", "FAILED", "CRASHED", "CANCELLED")


@dataclass
class LocalPrefect:
    """What runs: the API URL, the PIDs, where the logs are, and how long each start took."""

    api_url: str
    folder: Path
    pids: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


def _env(folder: Path, api_url: str, extra: dict[str, str]) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        PREFECT_HOME=str(folder / "home"),
        PREFECT_API_URL=api_url,
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_API_DATABASE_CONNECTION_URL=f"sqlite+aiosqlite:///{folder / 'prefect.db'}",
        PREFECT_RUNNER_POLL_FREQUENCY=str(RUNNER_POLL_SECONDS),
        PREFECT_UI_ENABLED="true",
        PYTHONPATH=str(REPO_ROOT),
        **extra,
    )
    return env


@contextmanager
def local_prefect(
    folder: Path,
    *,
    serve: list[str] | None = None,
    env: dict[str, str] | None = None,
    with_schedules: bool = False,
) -> Iterator[LocalPrefect]:
    """Start a server (and a runner serving the ``serve`` deployments of prefect.yaml), stop both on exit.

    Args:
        folder: Where the server's database, home and the logs go.
        serve: Deployment names to serve; None starts no runner (the caller may deploy by itself).
        env: Extra environment for both processes (e.g. MLOPS_HOME of the lifecycle's state).
        with_schedules: Register the deployments' cron schedules too (off for demos: no surprise runs).
    """
    folder.mkdir(parents=True, exist_ok=True)
    port = processes.free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    child_env = _env(folder, api_url, env or {})
    bin_dir = Path(sys.executable).parent
    state = LocalPrefect(api_url, folder)
    try:
        started = time.perf_counter()
        server = [str(bin_dir / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)]
        log = folder / "server.log"
        state.pids["server"] = processes.start(server, env=child_env, log_file=log, cwd=REPO_ROOT)
        processes.wait_until_healthy(
            "prefect server", f"{api_url}/health", state.pids["server"], SERVER_START_TIMEOUT_SECONDS, log
        )
        state.seconds["server"] = round(time.perf_counter() - started, 2)
        if serve:
            started = time.perf_counter()
            runner = [str(bin_dir / "mlops"), "serve", *[a for n in serve for a in ("--deployment", n)]]
            if not with_schedules:
                runner.append("--no-schedules")
            log = folder / "runner.log"
            state.pids["runner"] = processes.start(runner, env=child_env, log_file=log, cwd=REPO_ROOT)
            wait_for_deployments(api_url, serve, state.pids["runner"], log)
            state.seconds["runner"] = round(time.perf_counter() - started, 2)
        from prefect.settings import PREFECT_API_URL, temporary_settings

        with temporary_settings(updates={PREFECT_API_URL: api_url}):
            yield state
    finally:
        for name in ("runner", "server"):
            processes.stop(state.pids.get(name))


def wait_for_deployments(api_url: str, names: list[str], pid: int, log: Path, timeout_seconds: float = 120) -> None:
    """Until the runner has registered every deployment in ``names`` (it polls for their runs from then on)."""

    def registered() -> bool:
        try:
            return set(names) <= set(deployment_ids(api_url))
        except MlopsError:
            return False

    processes.wait_until("prefect runner", registered, pid, timeout_seconds, log, where=api_url)


def deployment_ids(api_url: str) -> dict[str, str]:
    """Deployment name → id on the server at ``api_url``."""
    import json
    import urllib.request

    request = urllib.request.Request(  # noqa: S310 - loopback API
        f"{api_url}/deployments/filter", data=b"{}", headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
            return {d["name"]: d["id"] for d in json.load(response)}
    except OSError as exc:
        raise MlopsError(f"cannot list deployments at {api_url}: {exc}") from exc


def wait_for_retrains(deployment_id: str, window: str, expected: int, since: float, timeout_seconds: float) -> list:
    """The ``expected`` retrain runs the triggers created for ``window``, once all reached a final state.

    Raises:
        MlopsError: fewer runs appeared than events were sent, a run did not finish in time, or one failed.
    """
    started = time.monotonic()
    while True:
        runs = _retrain_runs(deployment_id, window)
        waited = time.monotonic() - started
        final = [r for r in runs if r.state_type and r.state_type.value in FINAL_STATES]
        if len(runs) >= expected and len(final) == len(runs):
            break
        if len(runs) < expected and waited > RUN_APPEAR_TIMEOUT_SECONDS:
            raise MlopsError(
                f"{expected} event(s) for window {window} sent {time.time() - since:.0f} s ago but the "
                f"retrain deployment has {len(runs)} run(s) for it: are its triggers in prefect.yaml?"
            )
        if waited > timeout_seconds:
            states = ", ".join(f"{r.name}: {r.state_name}" for r in runs)
            raise MlopsError(f"retrain of window {window} not finished after {timeout_seconds:.0f} s ({states})")
        time.sleep(POLL_SECONDS)
    failed = [r for r in runs if r.state_type.value != "COMPLETED"]
    if failed:
        run = failed[0]
        message = run.state.message if run.state else ""
        raise MlopsError(f"retrain run {run.name} ({run.id}) for window {window} ended {run.state_name}: {message}")
    return sorted(runs, key=lambda r: r.created)


def _retrain_runs(deployment_id: str, window: str) -> list:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    deployments = DeploymentFilter(id=DeploymentFilterId(any_=[UUID(deployment_id)]))
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(deployment_filter=deployments)
    return [r for r in runs if str(r.parameters.get("window_end")) == window]
