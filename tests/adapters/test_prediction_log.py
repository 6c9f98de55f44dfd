"""The prediction log on a local folder: parts per window and version, manifests, flush by rows, nothing lost."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pandas as pd
import pytest

from adapters.prediction_log import LoggedModel, PredictionLog, window_batch_id
from adapters.storage import LocalStorage

MODEL = LoggedModel("m", "champion", "3", "run-3")
AT = datetime(2026, 1, 31, 14, 5, tzinfo=UTC)


def rows(n: int, start: int = 0) -> pd.DataFrame:
    return pd.DataFrame({"id": [f"r{i}" for i in range(start, start + n)], "probability": [0.5] * n})


def test_window_batch_ids():
    assert window_batch_id(AT, "hour") == "api-20260131T14"
    assert window_batch_id(AT, "day") == "api-20260131"
    with pytest.raises(ValueError, match="'week'"):
        window_batch_id(AT, "week")


def test_parts_per_window_and_version_with_a_manifest_of_all_rows(tmp_path):
    log = PredictionLog(LocalStorage(), str(tmp_path), "uc", flush_rows=1000)
    log.append(rows(3), MODEL, AT)
    log.append(rows(2, 3), MODEL, AT)
    log.append(rows(4), LoggedModel("m", "champion", "4", "run-4"), AT)
    log.append(rows(1), MODEL, AT.replace(hour=15))
    written = log.flush()
    assert len(written) == 3 and log.pending == 0 and log.rows_written == 10
    folder = tmp_path / "batch=api-20260131T14" / "model=3"
    manifest = json.loads((folder / "_manifest.json").read_text())
    assert manifest["rows_scored"] == 5 and manifest["batch_id"] == "api-20260131T14"
    assert manifest["model"]["version"] == "3" and manifest["input_files"] == [
        str(p) for p in sorted(folder.glob("*.parquet"))
    ]
    log.append(rows(2, 5), MODEL, AT)
    log.flush()
    manifest = json.loads((folder / "_manifest.json").read_text())
    assert manifest["rows_scored"] == 7 and len(manifest["files"]) == 2
    read = pd.concat(pd.read_parquet(f) for f in manifest["input_files"])
    assert sorted(read["id"]) == [f"r{i}" for i in range(7)]


def test_flush_by_rows_without_a_background_thread(tmp_path):
    log = PredictionLog(LocalStorage(), str(tmp_path), "uc", flush_rows=5)
    log.append(rows(4), MODEL, AT)
    assert log.rows_written == 0
    log.append(rows(1, 4), MODEL, AT)
    assert log.rows_written == 5 and log.pending == 0


def test_close_flushes_what_waits(tmp_path):
    log = PredictionLog(LocalStorage(), str(tmp_path), "uc", flush_rows=1000, flush_seconds=600)
    log.start()
    log.append(rows(3), MODEL, AT)
    log.close()
    assert log.rows_written == 3 and list(tmp_path.rglob("*.parquet"))


class _FailingOnce(LocalStorage):
    failures = 1

    def write_bytes(self, uri: str, data: bytes) -> None:
        if self.failures and uri.endswith(".parquet"):
            self.failures -= 1
            raise OSError("disk full")
        super().write_bytes(uri, data)


def test_a_failed_write_keeps_the_rows_for_the_next_flush(tmp_path):
    log = PredictionLog(_FailingOnce(), str(tmp_path), "uc", flush_rows=1000)
    log.append(rows(3), MODEL, AT)
    with pytest.raises(OSError, match="disk full"):
        log.flush()
    assert log.pending == 3
    log.flush()
    assert log.rows_written == 3 and log.pending == 0


def test_bad_settings_are_refused(tmp_path):
    with pytest.raises(ValueError, match="flush_rows"):
        PredictionLog(LocalStorage(), str(tmp_path), "uc", flush_rows=0)
