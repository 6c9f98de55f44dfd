"""Backups of this machine's product state: create (through the backup flow), verify, restore.

Restore goes into an empty home (nothing but a backups folder) with no server running on it, or, for a backup
of the PostgreSQL stack, into a fresh stack (`mlops stack up --postgres`: empty databases) whose home holds no
state yet. The PII key is not in backups (secrets live in the secret store): a restored home needs the same
key, or new hashes of the same people will not match old ones.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from adapters import backup as store
from adapters import postgres, processes
from flows.backup import backup as backup_flow
from flows.context import build_context
from flows.settings import mlops_home
from ops import stack
from tasks import backup as logic
from tasks.errors import MlopsError


def running_postgres() -> store.PostgresSource | None:
    """The local stack's PostgreSQL, when the stack runs on it."""
    state = stack.read_state()
    pid = state.get("components", {}).get("postgres", {}).get("pid")
    if state.get("backend") != "postgres" or not processes.alive(pid):
        return None
    port = stack.Ports(**state.get("ports", {})).postgres
    base = postgres.url(port).rsplit("/", 1)[0]
    return store.PostgresSource(base, ("prefect", "mlflow"), str(postgres.require_binaries()))


def create(to: str | None, profile: str | None) -> dict:
    pg = running_postgres()
    return backup_flow(
        to=to, postgres_url=pg.url if pg else None, postgres_bin_dir=pg.bin_dir if pg else None, profile=profile
    )


def verify(uri: str, profile: str | None) -> dict:
    """Check every file against the manifest and every database copy for damage; MlopsError listing problems."""
    endpoint = build_context(profile).settings.storage.s3_endpoint_url
    started = time.perf_counter()
    with store.fetched(uri, endpoint) as folder:
        manifest = json.loads((folder / "manifest.json").read_text())
        entries = logic.entries_of(manifest)
        bin_dir = postgres.find_binaries()
        lines = store.check(folder, entries, str(bin_dir) if bin_dir else None)
    if lines:
        shown = "; ".join(lines[:5]) + (f"; and {len(lines) - 5} more" if len(lines) > 5 else "")
        raise MlopsError(f"backup {uri} is damaged: {shown}")
    return {
        "uri": uri,
        "id": manifest["id"],
        "created_at": manifest["created_at"],
        "files": len(entries),
        "total_bytes": manifest["total_bytes"],
        "seconds": round(time.perf_counter() - started, 2),
    }


def restore(uri: str, profile: str | None) -> dict:
    """Verify, then put the backup back into an empty home (and a fresh PostgreSQL stack for its dumps)."""
    settings = build_context(profile).settings
    home = mlops_home()
    occupied = _state_in(home, settings.backup.root)
    if occupied:
        raise MlopsError(f"home {home} is not empty ({occupied} exists): restore into an empty home or a fresh stack")
    checked = verify(uri, profile)
    started = time.perf_counter()
    restarted = _stop_stack_servers()  # nothing may write to a database while it is being replaced
    with store.fetched(uri, settings.storage.s3_endpoint_url) as folder:
        entries = logic.entries_of(json.loads((folder / "manifest.json").read_text()))
        store.put_back(folder, entries, home, running_postgres(), settings.storage.s3_endpoint_url)
    seconds = round(time.perf_counter() - started, 2)
    if restarted:
        stack.up(deploy=False)  # the servers again, on the restored data
    return {
        **checked,
        "restored_into": str(home),
        "stack_servers_restarted": restarted,
        "seconds": seconds,
        "restart_seconds": round(time.perf_counter() - started - seconds, 2),
    }


def _stop_stack_servers() -> list[str]:
    """Stop the running stack's worker, MLflow and Prefect servers (S3 and PostgreSQL stay up to be restored)."""
    components = stack.read_state().get("components", {})
    stopped = []
    for name in ("worker", "mlflow", "prefect"):
        if processes.stop(components.get(name, {}).get("pid")):
            stopped.append(name)
    return stopped


def _state_in(home: Path, backup_root: str | None) -> str | None:
    """The first file of product state in ``home``; backups, the stack's own folder (a fresh stack's servers
    create their empty databases there, and restoring replaces them), the commands' log files (the restore
    command itself writes one) and the processes' TMPDIR do not count."""
    if not home.exists():
        return None
    ignored = [home / "backups", home / "stack", home / "logs", home / "tmp"]
    if backup_root and not backup_root.startswith("s3://"):
        ignored.append(Path(backup_root))
    for path in sorted(home.rglob("*")):
        if path.is_file() and not any(path.is_relative_to(i) for i in ignored):
            return path.relative_to(home).as_posix()
    return None
