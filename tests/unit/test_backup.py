"""The backup manifest, its verification and retention (pure logic)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tasks.backup import FileEntry, backup_id, build_manifest, entries_of, problems, to_prune
from tasks.errors import MlopsError

DB = FileEntry("home/mlflow/mlflow.db", "a" * 64, 10, "sqlite")
POINTER = FileEntry("home/lake/latest.json", "b" * 64, 2, "file")


def test_ids_sort_by_time_to_the_millisecond():
    early = backup_id(datetime(2026, 1, 2, 3, 4, 5, 6000, tzinfo=UTC))
    late = backup_id(datetime(2026, 1, 2, 3, 4, 5, 7000, tzinfo=UTC))
    assert early == "backup-20260102T030405006Z" and early < late


def test_manifest_round_trip_and_total():
    manifest = build_manifest("backup-1", "2026-01-01T00:00:00+00:00", [POINTER, DB], {"notes": []})
    assert manifest["total_bytes"] == 12 and [e.path for e in entries_of(manifest)] == [POINTER.path, DB.path]


@pytest.mark.parametrize("manifest", [{}, {"format": 99, "files": []}, {"format": 1, "files": "x"}])
def test_foreign_manifest_is_refused(manifest):
    with pytest.raises(MlopsError, match="not a backup manifest"):
        entries_of(manifest)


def test_problems_name_each_file():
    found = {DB.path: ("c" * 64, 10), "home/extra": ("d" * 64, 1)}
    assert problems([DB, POINTER], found) == [
        f"checksum mismatch: {DB.path}",
        f"missing: {POINTER.path}",
        "not in the manifest: home/extra",
    ]
    assert problems([DB], {DB.path: (DB.sha256, DB.bytes)}) == []


def test_retention_keeps_the_newest_and_ignores_other_folders():
    names = ["backup-3", "backup-1", "notes", "backup-2"]
    assert to_prune(names, 2) == ["backup-1"]
    assert to_prune(names, 5) == []
    with pytest.raises(MlopsError, match="at least 1"):
        to_prune(names, 0)
