"""What a backup holds and how it is checked: the manifest, its verification, and retention. No I/O here."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from tasks.errors import MlopsError

MANIFEST_FORMAT = 1
ID_PREFIX = "backup-"


@dataclass(frozen=True)
class FileEntry:
    """One file of a backup: where it goes back (relative to the home or to its component), checksum, size."""

    path: str
    sha256: str
    bytes: int
    kind: str  # "sqlite" (online backup copy), "pg_dump", "file"


def backup_id(now: datetime) -> str:
    """A sortable name of a backup taken at ``now`` (UTC), to the millisecond."""
    return f"{ID_PREFIX}{now.strftime('%Y%m%dT%H%M%S')}{now.microsecond // 1000:03d}Z"


def build_manifest(backup: str, created_at: str, files: list[FileEntry], about: dict) -> dict:
    """The manifest written last into a backup: without it a folder is not a backup."""
    return {
        "format": MANIFEST_FORMAT,
        "id": backup,
        "created_at": created_at,
        **about,
        "files": [entry.__dict__ for entry in sorted(files, key=lambda e: e.path)],
        "total_bytes": sum(e.bytes for e in files),
    }


def entries_of(manifest: dict) -> list[FileEntry]:
    """The file entries of a manifest; MlopsError if it is not a backup manifest of a known format."""
    if manifest.get("format") != MANIFEST_FORMAT or not isinstance(manifest.get("files"), list):
        raise MlopsError(f"not a backup manifest of format {MANIFEST_FORMAT}: {str(manifest)[:120]}")
    return [FileEntry(**f) for f in manifest["files"]]


def problems(expected: list[FileEntry], found: dict[str, tuple[str, int]]) -> list[str]:
    """Every difference between the manifest and the files found (path -> (sha256, bytes)), one line each."""
    lines = []
    for entry in expected:
        if entry.path not in found:
            lines.append(f"missing: {entry.path}")
        elif found[entry.path] != (entry.sha256, entry.bytes):
            lines.append(f"checksum mismatch: {entry.path}")
    known = {e.path for e in expected}
    lines += [f"not in the manifest: {path}" for path in sorted(set(found) - known)]
    return lines


def to_prune(backups: list[str], keep: int) -> list[str]:
    """The backups beyond the ``keep`` newest (names sort by time); never the newest one."""
    if keep < 1:
        raise MlopsError(f"backup retention must keep at least 1 backup, not {keep}")
    ours = sorted(b for b in backups if b.startswith(ID_PREFIX))
    return ours[:-keep]
