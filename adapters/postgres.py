"""A private PostgreSQL cluster for the local stack, run from the server binaries on the machine.

The cluster is owned and run by an unprivileged OS user (``initdb`` and ``postgres`` refuse root): when we
are root it is ``mlops-pg``, created on first use; otherwise the current user. It listens on 127.0.0.1
only, has no Unix socket, and trusts connections from 127.0.0.1 only (``pg_hba.conf``): a local
development database, never a shared one. Stop it with SIGINT to its PID: fast shutdown (SIGTERM is
"smart" shutdown, which waits for every client to leave).
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import stat
import subprocess
from pathlib import Path

from adapters import processes
from tasks.errors import MlopsError

SUPERUSER = "mlops"
OS_USER = "mlops-pg"
BIN_ENV = "MLOPS_POSTGRES_BIN"
_SEARCH = (
    "/usr/lib/postgresql/*/bin",
    "/usr/pgsql-*/bin",
    "/usr/local/pgsql/bin",
    "/opt/homebrew/opt/postgresql@*/bin",
)
_HBA = """\
# Written by `mlops stack up --postgres`: only TCP connections from 127.0.0.1, trusted (local development).
# TYPE  DATABASE  USER  ADDRESS       METHOD
host    all       all   127.0.0.1/32  trust
"""
_CONF = """
# --- added by `mlops stack up --postgres`: loopback only, no Unix socket (the port is given on start)
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
"""


def find_binaries() -> Path | None:
    """The folder holding ``initdb`` and ``postgres``: $MLOPS_POSTGRES_BIN, then PATH, then the usual places."""
    candidates: list[Path] = []
    if os.environ.get(BIN_ENV):  # asked for explicitly: that folder or nothing
        given = Path(os.environ[BIN_ENV])
        return given if (given / "initdb").is_file() and (given / "postgres").is_file() else None
    if found := shutil.which("postgres"):
        candidates.append(Path(found).resolve().parent)
    for pattern in _SEARCH:
        candidates.extend(sorted(Path("/").glob(pattern.lstrip("/")), key=_version_key, reverse=True))
    return next((c for c in candidates if (c / "initdb").is_file() and (c / "postgres").is_file()), None)


def _version_key(path: Path) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", str(path))) or (0,)


def require_binaries() -> Path:
    found = find_binaries()
    if found is None:
        raise MlopsError(
            f"PostgreSQL server binaries (initdb, postgres) not found in ${BIN_ENV}, on PATH or in "
            "/usr/lib/postgresql/*/bin: install the server (apt-get install postgresql) or leave out --postgres"
        )
    return found


def run_as() -> str | None:
    """The OS user that owns and runs the cluster: ``mlops-pg`` (created if missing) when root, else None (us)."""
    if os.geteuid() != 0:
        return None
    if not _user_exists(OS_USER):
        useradd = shutil.which("useradd") or "/usr/sbin/useradd"
        options = ["--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent"]
        done = subprocess.run(
            [useradd, *options, "--shell", "/usr/sbin/nologin", OS_USER],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0 and not _user_exists(OS_USER):  # it may have been created meanwhile
            raise MlopsError(f"could not create the OS user {OS_USER} for PostgreSQL: {done.stderr.strip()}")
    return OS_USER


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def url(port: int, database: str = "postgres", driver: str = "postgresql") -> str:
    """A connection URL to the cluster (no password: trusted on 127.0.0.1)."""
    return f"{driver}://{SUPERUSER}@127.0.0.1:{port}/{database}"


def init_cluster(data_dir: Path, bin_dir: Path, user: str | None) -> bool:
    """``initdb`` a cluster in ``data_dir`` unless one is there; True if it was created.

    It is built in a sibling folder and renamed when complete, so a failed ``initdb`` leaves nothing behind.
    """
    if (data_dir / "PG_VERSION").exists():
        return False
    if data_dir.exists() and any(data_dir.iterdir()):
        raise MlopsError(f"{data_dir} exists but holds no PostgreSQL cluster: move it away")
    owner = pwd.getpwnam(user) if user else None
    if owner:
        _check_reachable(data_dir.parent, owner)
    building = data_dir.with_name(f".{data_dir.name}.initdb")
    shutil.rmtree(building, ignore_errors=True)
    building.mkdir(parents=True, mode=0o700)
    if owner:
        os.chown(building, owner.pw_uid, owner.pw_gid)
    command = [str(bin_dir / "initdb"), "-D", str(building), "-U", SUPERUSER, "-E", "UTF8", "--locale=C"]
    done = subprocess.run(
        [*command, "--auth=trust", "--no-instructions"],
        env={"PATH": os.environ.get("PATH", ""), "LC_ALL": "C", "TZ": "UTC"},
        cwd=building,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        **processes.as_user(user),
    )
    if done.returncode != 0:
        shutil.rmtree(building, ignore_errors=True)
        tail = " | ".join((done.stdout + done.stderr).strip().splitlines()[-3:])
        raise MlopsError(f"initdb failed in {data_dir}: {tail}")
    (building / "pg_hba.conf").write_text(_HBA)  # files initdb made keep their owner when rewritten
    with (building / "postgresql.conf").open("a") as conf:
        conf.write(_CONF)
    if data_dir.exists():
        data_dir.rmdir()
    building.rename(data_dir)
    return True


def _check_reachable(folder: Path, owner: pwd.struct_passwd) -> None:
    """Every folder above the cluster must let ``owner`` through, or the server cannot reach its data."""
    folder.mkdir(parents=True, exist_ok=True)
    for parent in [folder, *folder.parents]:
        info = parent.stat()
        if info.st_uid == owner.pw_uid:
            needed = stat.S_IXUSR
        elif info.st_gid == owner.pw_gid:
            needed = stat.S_IXGRP
        else:
            needed = stat.S_IXOTH
        if not info.st_mode & needed:
            raise MlopsError(
                f"the PostgreSQL data under {folder} is out of reach of OS user {owner.pw_name}: {parent} is not "
                f"searchable by it; set MLOPS_HOME to another folder or `chmod o+x {parent}`"
            )


def start(data_dir: Path, bin_dir: Path, port: int, log_file: Path, user: str | None) -> int:
    """Start ``postgres`` on 127.0.0.1:``port`` in its own session; returns its PID (not yet ready)."""
    env = {"PATH": os.environ.get("PATH", ""), "LC_ALL": "C", "TZ": "UTC"}
    command = [str(bin_dir / "postgres"), "-D", str(data_dir), "-p", str(port)]
    return processes.start(command, env=env, log_file=log_file, cwd=data_dir, user=user)


def accepts_connections(port: int, timeout_seconds: int = 2) -> bool:
    import psycopg2

    try:
        psycopg2.connect(url(port), connect_timeout=timeout_seconds).close()
    except psycopg2.Error:
        return False
    return True


def wait_until_ready(pid: int, port: int, timeout_seconds: float, log_file: Path) -> float:
    return processes.wait_until(
        "postgres", lambda: accepts_connections(port), pid, timeout_seconds, log_file, where=f"127.0.0.1:{port}"
    )


def ensure_databases(port: int, names: tuple[str, ...]) -> list[str]:
    """Create the databases that are missing; returns the ones created."""
    import psycopg2
    from psycopg2 import sql

    created = []
    connection = psycopg2.connect(url(port), connect_timeout=5)
    try:
        connection.autocommit = True  # CREATE DATABASE cannot run inside a transaction
        with connection.cursor() as cursor:
            for name in names:
                cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
                if cursor.fetchone() is None:
                    cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
                    created.append(name)
    finally:
        connection.close()
    return created
