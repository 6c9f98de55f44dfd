"""Consistent copies of the product's state, and their restore: SQLite databases, PostgreSQL, files, S3 prefixes.

A backup is a folder ``<root>/<backup id>/`` holding ``home/`` (files of MLOPS_HOME, SQLite databases copied
with SQLite's online backup API: a consistent copy while servers keep writing), ``postgres/<db>.dump``
(``pg_dump -Fc``), ``s3/<bucket>/<key>`` (objects under S3 prefixes), and ``manifest.json`` with the SHA-256
and size of each file, written last: a folder without it is not a backup. It is built in
``<id>.partial`` and renamed when complete; an ``s3://`` root receives the finished folder, manifest last.

Never in a backup: secrets (the PII key lives in the secret store: keep it there), logs, the registry's local
model cache, SQLite's -wal/-shm/-journal side files, ``*.tmp`` files, process state (PIDs) and a PostgreSQL
data directory (its dump is taken instead).
"""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from adapters.storage import join_uri, local_path, storage_for
from tasks.backup import FileEntry
from tasks.errors import MlopsError, StorageError

SQLITE_HEADER = b"SQLite format 3\x00"
SKIPPED_SUFFIXES = (".log", "-wal", "-shm", "-journal", ".tmp", ".pid")
_CHUNK = 1 << 20


@dataclass(frozen=True)
class PostgresSource:
    """Databases of one PostgreSQL server, dumped with the client binaries in ``bin_dir``."""

    url: str  # postgresql://user@127.0.0.1:port (no database)
    databases: tuple[str, ...]
    bin_dir: str


@dataclass(frozen=True)
class BackupPlan:
    """What one backup takes: the home (minus ``skip`` folders), PostgreSQL databases, S3 prefixes."""

    home: str
    skip: tuple[str, ...] = ()  # folders relative to the home
    postgres: PostgresSource | None = None
    s3_prefixes: tuple[tuple[str, bool], ...] = ()  # (s3://bucket/prefix, only JSON pointers and manifests)
    s3_endpoint_url: str | None = None
    notes: tuple[str, ...] = field(default=())


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def is_sqlite(path: Path) -> bool:
    with path.open("rb") as handle:
        return handle.read(len(SQLITE_HEADER)) == SQLITE_HEADER


def sqlite_copy(source: Path, target: Path) -> None:
    """A consistent copy of a live SQLite database (the online backup API copies a snapshot page by page)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with (
        closing(sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=60)) as src,
        closing(sqlite3.connect(target)) as dst,
    ):
        src.backup(dst)


def take(plan: BackupPlan, folder: Path) -> list[FileEntry]:
    """Write every part of the plan under ``folder`` and return the entries of the manifest."""
    entries = _take_home(Path(plan.home), plan.skip, folder / "home")
    if plan.postgres is not None:
        entries += _dump_postgres(plan.postgres, folder / "postgres")
    for uri, only_json in plan.s3_prefixes:
        entries += _take_prefix(uri, only_json, plan.s3_endpoint_url, folder)
    return entries


def _take_home(home: Path, skip: tuple[str, ...], target: Path) -> list[FileEntry]:
    skipped = [home / s for s in skip]
    entries = []
    for path in sorted(home.rglob("*")):
        if not path.is_file() or path.is_symlink() or any(path.is_relative_to(s) for s in skipped):
            continue
        if path.name.endswith(SKIPPED_SUFFIXES):
            continue
        relative = path.relative_to(home).as_posix()
        copy = target / relative
        copy.parent.mkdir(parents=True, exist_ok=True)
        kind = "sqlite" if is_sqlite(path) else "file"
        if kind == "sqlite":
            sqlite_copy(path, copy)
        else:
            shutil.copy2(path, copy)
        entries.append(_entry(f"home/{relative}", copy, kind))
    return entries


def _dump_postgres(source: PostgresSource, target: Path) -> list[FileEntry]:
    target.mkdir(parents=True, exist_ok=True)
    entries = []
    for database in source.databases:
        dump = target / f"{database}.dump"
        _run([f"{source.bin_dir}/pg_dump", "--format=custom", f"--file={dump}", f"{source.url}/{database}"])
        entries.append(_entry(f"postgres/{database}.dump", dump, "pg_dump"))
    return entries


def _take_prefix(uri: str, only_json: bool, endpoint: str | None, folder: Path) -> list[FileEntry]:
    storage, entries = storage_for(uri, s3_endpoint_url=endpoint), []
    for key_uri in storage.list(uri):
        if only_json and not key_uri.endswith(".json"):
            continue
        relative = "s3/" + key_uri.removeprefix("s3://")
        copy = folder / relative
        copy.parent.mkdir(parents=True, exist_ok=True)
        copy.write_bytes(storage.read_bytes(key_uri))
        entries.append(_entry(relative, copy, "object"))
    return entries


def _entry(path: str, copy: Path, kind: str) -> FileEntry:
    return FileEntry(path, sha256_of(copy), copy.stat().st_size, kind)


def check(folder: Path, entries: list[FileEntry], pg_bin_dir: str | None) -> list[str]:
    """Checksums of every file, plus SQLite's integrity check and ``pg_restore --list`` of every dump."""
    from tasks.backup import problems

    found = {
        p.relative_to(folder).as_posix(): (sha256_of(p), p.stat().st_size)
        for p in folder.rglob("*")
        if p.is_file() and p != folder / "manifest.json"
    }
    lines = problems(entries, found)
    damaged = {line.split(": ", 1)[1] for line in lines}
    for entry in entries:
        if entry.path in damaged:
            continue
        if entry.kind == "sqlite":
            # immutable: read as a plain file, without creating side files or taking locks in the backup
            with closing(sqlite3.connect(f"file:{folder / entry.path}?mode=ro&immutable=1", uri=True)) as db:
                verdict = db.execute("PRAGMA quick_check").fetchone()[0]
            if verdict != "ok":
                lines.append(f"damaged SQLite database: {entry.path}: {verdict}")
        elif entry.kind == "pg_dump" and pg_bin_dir is not None:
            try:
                _run([f"{pg_bin_dir}/pg_restore", "--list", str(folder / entry.path)])
            except MlopsError as exc:
                lines.append(f"unreadable dump: {entry.path}: {exc}")
    return lines


def put_back(folder: Path, entries: list[FileEntry], home: Path, postgres: PostgresSource | None, endpoint: str | None):
    """Restore every file of a verified backup: home files into ``home``, dumps into ``postgres``, objects to S3."""
    dumps = [e for e in entries if e.kind == "pg_dump"]
    if dumps and postgres is None:
        raise MlopsError("the backup holds PostgreSQL dumps: restore it into a running PostgreSQL stack")
    for entry in entries:
        source = folder / entry.path
        if entry.path.startswith("home/"):
            target = home / entry.path.removeprefix("home/")
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
        elif entry.kind == "pg_dump" and postgres is not None:
            database = Path(entry.path).stem
            _run(
                [
                    f"{postgres.bin_dir}/pg_restore",
                    "--clean",
                    "--if-exists",
                    "--no-owner",
                    "--exit-on-error",
                    f"--dbname={postgres.url}/{database}",
                    str(source),
                ]
            )
        elif entry.path.startswith("s3/"):
            storage_for("s3://", s3_endpoint_url=endpoint).write_bytes(
                "s3://" + entry.path.removeprefix("s3/"), source.read_bytes()
            )


def publish(staged: Path, root: str, backup: str, endpoint: str | None) -> str:
    """Move a finished backup folder (manifest included) to ``<root>/<backup>``; return its URI."""
    target = join_uri(root, backup)
    if root.startswith("s3://"):
        storage = storage_for(root, s3_endpoint_url=endpoint)
        files = sorted(p for p in staged.rglob("*") if p.is_file() and p != staged / "manifest.json")
        for path in [*files, staged / "manifest.json"]:  # manifest last: readers trust only complete backups
            storage.write_bytes(join_uri(target, path.relative_to(staged).as_posix()), path.read_bytes())
        return target
    final = local_path(target)
    if final.exists():
        raise StorageError(f"backup {target} exists already")
    staged.rename(final)
    return target


@contextmanager
def fetched(uri: str, endpoint: str | None) -> Iterator[Path]:
    """A local folder with the backup at ``uri`` (itself if local; a download for s3://)."""
    if not uri.startswith("s3://"):
        folder = local_path(uri)
        if not (folder / "manifest.json").is_file():
            raise MlopsError(f"no backup at {uri} (no manifest.json)")
        yield folder
        return
    storage = storage_for(uri, s3_endpoint_url=endpoint)
    if not storage.exists(join_uri(uri, "manifest.json")):
        raise MlopsError(f"no backup at {uri} (no manifest.json)")
    with tempfile.TemporaryDirectory(prefix="mlops-restore-") as tmp:
        for key_uri in storage.list(uri):
            path = Path(tmp, key_uri.removeprefix(uri.rstrip("/") + "/"))
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(storage.read_bytes(key_uri))
        yield Path(tmp)


def list_backups(root: str, endpoint: str | None) -> list[str]:
    """Names of the complete backups (with a manifest) under ``root``."""
    if root.startswith("s3://"):
        uris = storage_for(root, s3_endpoint_url=endpoint).list(root)
        return sorted({u.rsplit("/", 2)[-2] for u in uris if u.endswith("/manifest.json")})
    folder = local_path(root)
    return sorted(p.name for p in folder.iterdir() if (p / "manifest.json").is_file()) if folder.is_dir() else []


def remove_backup(root: str, backup: str, endpoint: str | None) -> None:
    target = join_uri(root, backup)
    if root.startswith("s3://"):
        storage = storage_for(root, s3_endpoint_url=endpoint)
        uris = storage.list(target)
        manifest = [u for u in uris if u.endswith("/manifest.json")]
        for uri in [*manifest, *(u for u in uris if u not in manifest)]:  # manifest first: no half backup looks whole
            storage.delete(uri)
        return
    folder = local_path(target)
    (folder / "manifest.json").unlink(missing_ok=True)
    shutil.rmtree(folder, ignore_errors=True)


def _run(command: list[str]) -> None:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=3600, check=False)
    except OSError as exc:
        raise MlopsError(f"cannot run {Path(command[0]).name}: {exc}") from exc
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise MlopsError(f"{Path(command[0]).name} failed: {last}")
