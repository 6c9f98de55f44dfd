"""Long-running local processes (servers, workers): start detached, track by PID, stop by PID, probe health.

Every process starts in its own session (``start_new_session``), so SIGTERM reaches it and its children
even when started from a script; it is stopped by its own PID, never by name.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from tasks.errors import MlopsError


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def port_in_use(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def start(command: list[str], *, env: dict[str, str], log_file: Path, cwd: Path, user: str | None = None) -> int:
    """Start ``command`` detached, output appended to ``log_file``; returns its PID.

    ``user``: run as this OS user (its primary group, no supplementary groups); needs root.
    """
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab") as log:
        process = subprocess.Popen(
            command,
            env=env,
            cwd=cwd,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            **as_user(user),
        )
    return process.pid


def as_user(user: str | None) -> dict:
    """``subprocess`` keyword arguments that run a child as ``user`` (nothing when ``user`` is None)."""
    if user is None:
        return {}
    return {"user": user, "group": pwd.getpwnam(user).pw_gid, "extra_groups": []}


def alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return _not_zombie(pid)


def _not_zombie(pid: int) -> bool:
    status = Path(f"/proc/{pid}/status")
    if not status.exists():
        return True
    return "\nState:\tZ" not in status.read_text()


def stop(
    pid: int | None, timeout_seconds: float = 20.0, *, group: bool = True, sig: signal.Signals = signal.SIGTERM
) -> bool:
    """Send ``sig`` to the process group of ``pid`` (to ``pid`` alone when not ``group``: a server that stops its
    own children, like PostgreSQL), then SIGKILL the group after the timeout; True if anything was running.

    The group is the one ``start`` made (``pid`` leads its own session): it is stopped even when ``pid`` itself
    died alone and left children behind (an MLflow server's uvicorn worker keeps serving without it).
    """
    if not pid:
        return False
    running = _group_alive(pid) if group else alive(pid)
    if not running:
        return False
    if group:
        _signal_group(pid, sig)
    else:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        _reap(pid)
        if not (_group_alive(pid) if group else alive(pid)):
            return True
        time.sleep(0.2)
    _signal_group(pid, signal.SIGKILL)
    _reap(pid)
    return True


def _group_of(pid: int) -> int:
    """The process group of a live ``pid``; for a dead one, the group it led (``start`` makes each a leader)."""
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return pid


def _group_alive(pid: int) -> bool:
    """Whether any process of the group of ``pid`` still runs (zombies of ours are reaped first)."""
    _reap(pid)
    if alive(pid):
        return True
    try:
        os.killpg(_group_of(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(_group_of(pid), sig)
    except (ProcessLookupError, PermissionError):
        return


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return


def http_ok(url: str, timeout_seconds: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout_seconds) as response:  # noqa: S310 - loopback URLs only
            return 200 <= response.status < 300
    except (urllib.error.URLError, OSError, ValueError):
        return False


def wait_until_healthy(name: str, url: str, pid: int, timeout_seconds: float, log_file: Path) -> float:
    """Seconds until ``url`` answers 2xx.

    Raises:
        MlopsError: the process died or did not become healthy in time (the log's last lines are quoted).
    """
    return wait_until(name, lambda: http_ok(url), pid, timeout_seconds, log_file, where=url)


def wait_until(
    name: str, probe: Callable[[], bool], pid: int, timeout_seconds: float, log_file: Path, *, where: str = ""
) -> float:
    """Seconds until ``probe()`` is true while process ``pid`` runs.

    Raises:
        MlopsError: the process died or ``probe`` stayed false past the timeout (the log's last lines are quoted).
    """
    started = time.monotonic()
    while time.monotonic() - started < timeout_seconds:
        if probe():
            return time.monotonic() - started
        if not alive(pid):
            raise MlopsError(f"{name} exited during start-up: {_tail(log_file)}")
        time.sleep(0.2)
    raise MlopsError(f"{name} not healthy at {where} after {timeout_seconds:.0f} s: {_tail(log_file)}")


def _tail(log_file: Path, lines: int = 3) -> str:
    if not log_file.exists():
        return "(no log)"
    text = log_file.read_text(errors="replace").strip().splitlines()[-lines:]
    return " | ".join(line.strip() for line in text) or "(empty log)"
