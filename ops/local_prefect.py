"""A real local Prefect server (SQLite) and a runner serving prefect.yaml, for the demo, the replay and tests.

Both run as separate processes on 127.0.0.1 (a free port), each in its own session, tracked by PID and stopped
by PID. While the context is open, this process talks to that server (PREFECT_API_URL), so flows called here
are recorded there and the events they emit reach its triggers.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
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
REPORT_SECONDS = 30.0
FINAL_STATES = ("COMPLETED", "FAILED", "CRASHED", "CANCELLED")
PIDS_FILE = "pids.json"


@dataclass
class LocalPrefect:
    """What runs: the API URL, the PIDs, where the logs are, and how long each start took."""

    api_url: str
    folder: Path
    pids: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    leftovers: list[str] = field(default_factory=list)  # unfinished runs of an earlier caller, cancelled at start
    cancelled: list[str] = field(default_factory=list)  # unfinished runs cancelled on exit

    @property
    def ui_url(self) -> str:
        return self.api_url.removesuffix("/api")

    def logs(self) -> list[str]:
        return [str(self.folder / f"{name}.log") for name in ("server", "runner") if name in self.pids]


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

    The server is private to its caller (its own database in ``folder``), so what is open on it is the caller's:
    on start, processes an earlier, killed caller left behind are stopped and its unfinished runs cancelled; on
    exit (normal, failure, Ctrl-C) every unfinished run is cancelled and the deployments' concurrency slots are
    freed before the runner and the server stop, so the next caller never waits behind them.

    Args:
        folder: Where the server's database, home and the logs go.
        serve: Deployment names to serve; None starts no runner (the caller may deploy by itself).
        env: Extra environment for both processes (e.g. MLOPS_HOME of the lifecycle's state).
        with_schedules: Register the deployments' cron schedules too (off for demos: no surprise runs).
    """
    folder.mkdir(parents=True, exist_ok=True)
    stop_leftover_processes(folder)
    port = processes.free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    child_env = _env(folder, api_url, env or {})
    bin_dir = Path(sys.executable).parent
    state = LocalPrefect(api_url, folder)
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: api_url}):
        try:
            started = time.perf_counter()
            server = [str(bin_dir / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)]
            log = folder / "server.log"
            state.pids["server"] = processes.start(server, env=child_env, log_file=log, cwd=REPO_ROOT)
            _record_pids(folder, state.pids)
            processes.wait_until_healthy(
                "prefect server", f"{api_url}/health", state.pids["server"], SERVER_START_TIMEOUT_SECONDS, log
            )
            state.seconds["server"] = round(time.perf_counter() - started, 2)
            state.leftovers = cancel_open_runs("left over by an earlier run of this tool")
            if serve:
                started = time.perf_counter()
                runner = [str(bin_dir / "mlops"), "serve", *[a for n in serve for a in ("--deployment", n)]]
                if not with_schedules:
                    runner.append("--no-schedules")
                log = folder / "runner.log"
                state.pids["runner"] = processes.start(runner, env=child_env, log_file=log, cwd=REPO_ROOT)
                _record_pids(folder, state.pids)
                wait_for_deployments(api_url, serve, state.pids["runner"], log)
                state.seconds["runner"] = round(time.perf_counter() - started, 2)
            yield state
        finally:
            with _no_interrupts():
                if processes.alive(state.pids.get("server")):
                    with contextlib.suppress(Exception):  # cleaning up must never hide why the caller failed
                        state.cancelled = cancel_open_runs("the process that started it stopped")
                for name in ("runner", "server"):
                    processes.stop(state.pids.get(name))
                (folder / PIDS_FILE).unlink(missing_ok=True)


def cancel_open_runs(reason: str) -> list[str]:
    """Cancel every unfinished flow run on the current API and free the deployments' concurrency slots.

    Only for a server private to this process (the demo's, the replay's): on a shared one this would cancel
    other people's runs. Returns the names of the runs cancelled.
    """
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitUpdate
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterState, FlowRunFilterStateType
    from prefect.client.schemas.objects import StateType
    from prefect.states import Cancelled

    open_types = [t for t in StateType if t.value not in FINAL_STATES]  # scheduled, pending, running, paused, ...
    cancelled = []
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(any_=open_types)))
        )
        for run in runs:
            client.set_flow_run_state(run.id, Cancelled(message=f"cancelled: {reason}"), force=True)
            cancelled.append(run.name)
        for deployment in client.read_deployments():
            limit = deployment.global_concurrency_limit
            if limit is not None and limit.active_slots:
                client.update_global_concurrency_limit(limit.name, GlobalConcurrencyLimitUpdate(active_slots=0))
    return cancelled


def stop_leftover_processes(folder: Path) -> list[int]:
    """Stop the server and runner an earlier process recorded in ``folder`` and did not stop (it was killed)."""
    path = folder / PIDS_FILE
    try:
        recorded = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    stopped = []
    for pid in recorded.values():
        if processes.alive(pid) and _is_ours(pid):
            processes.stop(pid)
            stopped.append(pid)
    path.unlink(missing_ok=True)
    return stopped


def _is_ours(pid: int) -> bool:
    """A recorded PID may have been reused by another program: only stop a Prefect server or an mlops runner."""
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return False
    return "prefect server start" in command or "mlops serve" in command


def _record_pids(folder: Path, pids: dict[str, int]) -> None:
    (folder / PIDS_FILE).write_text(json.dumps(pids))


@contextmanager
def _no_interrupts() -> Iterator[None]:
    """A second Ctrl-C while cleaning up would leave runs open and processes running: let the cleanup finish."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


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


@dataclass
class Progress:
    """What a wait saw last: a fingerprint of the runs' states, and when it last changed."""

    fingerprint: tuple = ()
    changed_at: float = field(default_factory=time.monotonic)
    reported_at: float = 0.0
    phase: str = ""


def wait_for_retrains(
    deployment_id: str,
    window: str,
    expected: int,
    since: float,
    no_progress_seconds: float,
    on_progress: Callable[[str], None] | None = None,
    where: str = "",
) -> list:
    """The ``expected`` retrain runs the triggers created for ``window``, once all reached a final state.

    A run that is Running and progressing (its state, its task runs' or its subflows' states change) is waited
    for however long it takes: only a Failed / Crashed / Cancelled run, or nothing moving for
    ``no_progress_seconds``, is a failure. ``on_progress`` gets a line (phase and elapsed time) when the phase
    changes and every ``REPORT_SECONDS`` meanwhile.

    Raises:
        MlopsError: fewer runs appeared than events were sent, nothing progressed in time, or a run failed;
            the message names the run, its state and ``where`` to look.
    """
    started, progress = time.monotonic(), Progress()
    while True:
        runs = _retrain_runs(deployment_id, window)
        waited = time.monotonic() - started
        final = [r for r in runs if r.state_type and r.state_type.value in FINAL_STATES]
        if len(runs) >= expected and len(final) == len(runs):
            break
        if len(runs) < expected and waited > RUN_APPEAR_TIMEOUT_SECONDS:
            raise MlopsError(
                f"{expected} event(s) for window {window} sent {time.time() - since:.0f} s ago but the "
                f"retrain deployment has {len(runs)} run(s) for it: are its triggers in prefect.yaml?{where}"
            )
        _observe(progress, deployment_id, runs)
        stalled = time.monotonic() - progress.changed_at
        if runs and stalled > no_progress_seconds:
            states = ", ".join(f"{r.name} ({r.id}): {r.state_name}" for r in runs)
            raise MlopsError(
                f"retrain of window {window}: no progress for {stalled:.0f} s (limit {no_progress_seconds:.0f} s, "
                f"waited {waited:.0f} s in all; {states}; last phase: {progress.phase or 'none'}){where}"
            )
        if on_progress and progress.phase and time.monotonic() - progress.reported_at >= REPORT_SECONDS:
            progress.reported_at = time.monotonic()
            on_progress(f"{progress.phase} · {waited:.0f} s")
        time.sleep(POLL_SECONDS)
    failed = [r for r in runs if r.state_type.value != "COMPLETED"]
    if failed:
        run = failed[0]
        message = (run.state.message if run.state else "") or ""
        raise MlopsError(
            f"retrain run {run.name} ({run.id}) for window {window} ended {run.state_name}: "
            f"{message.splitlines()[0] if message else 'no message'}{where}"
        )
    return sorted(runs, key=lambda r: r.created)


def _observe(progress: Progress, deployment_id: str, runs: list) -> None:
    """Update ``progress`` from the runs, their subflows and their task runs (all of the deployment: a run
    waiting for the concurrency slot moves when the one holding it does)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        DeploymentFilter,
        DeploymentFilterId,
        FlowRunFilter,
        FlowRunFilterParentFlowRunId,
        TaskRunFilter,
        TaskRunFilterFlowRunId,
    )

    with get_client(sync_client=True) as client:
        every = client.read_flow_runs(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[UUID(deployment_id)]))
        )
        parents = [r.id for r in every if r.state_type and r.state_type.value not in FINAL_STATES]
        children = []
        if parents:
            children = client.read_flow_runs(
                flow_run_filter=FlowRunFilter(parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=parents))
            )
        ids = [*parents, *(c.id for c in children)]
        tasks = (
            client.read_task_runs(task_run_filter=TaskRunFilter(flow_run_id=TaskRunFilterFlowRunId(any_=ids)))
            if ids
            else []
        )
    fingerprint = tuple(
        sorted(
            (str(x.id), x.state_name or "", str(x.state.timestamp) if x.state else "")
            for x in (*every, *children, *tasks)
        )
    )
    if fingerprint != progress.fingerprint:
        progress.fingerprint, progress.changed_at = fingerprint, time.monotonic()
    progress.phase = _phase(runs, tasks)


def _phase(runs: list, tasks: list) -> str:
    """``retrain run <name>: Running › train-… › fit-pipeline-…``: the run, then the steps (subflows) running now."""
    if not runs:
        return ""
    run = next((r for r in runs if r.state_type and r.state_type.value == "RUNNING"), runs[0])
    running = [t for t in tasks if t.state_type and t.state_type.value == "RUNNING"]
    running.sort(key=lambda t: str(t.start_time or t.created or ""))
    return " › ".join([f"retrain run {run.name}: {run.state_name}", *(t.name for t in running)])


def _retrain_runs(deployment_id: str, window: str) -> list:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    deployments = DeploymentFilter(id=DeploymentFilterId(any_=[UUID(deployment_id)]))
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(deployment_filter=deployments)
    return [r for r in runs if str(r.parameters.get("window_end")) == window]
