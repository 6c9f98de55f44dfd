"""Reading the lake's scoring manifests and check results for the dashboard (local folder)."""

from __future__ import annotations

import pytest

from adapters import monitoring_store
from adapters.storage import LocalStorage, write_json
from tasks.errors import StorageError


@pytest.fixture
def lake(tmp_path):
    storage, root = LocalStorage(), str(tmp_path / "lake" / "u")
    write_json(storage, f"{root}/scores/batch=b1/model=1/_manifest.json", {"batch_id": "b1"})
    write_json(storage, f"{root}/scores/batch=b1/model=1/_quarantine/_manifest.json", {"batch_id": "q"})
    write_json(storage, f"{root}/monitoring/drift/model=1/window=2013-05/result.json", {"window": "2013-05"})
    storage.write_bytes(f"{root}/monitoring/drift/model=1/window=2013-05/report.html", b"<html>May</html>")
    write_json(storage, f"{root}/monitoring/drift/model=1/window=2013-06/result.json", {"window": "2013-06"})
    write_json(storage, f"{root}/monitoring/performance/model=1/window=2013-05/result.json", {"window": "2013-05"})
    return storage, root


def test_manifests_skip_quarantine_side_files_and_keep_their_uri(lake):
    storage, root = lake
    found = monitoring_store.scoring_manifests(storage, root)
    assert [m["batch_id"] for m in found] == ["b1"]
    assert found[0]["_uri"].endswith("/scores/batch=b1/model=1/_manifest.json")


def test_drift_results_name_their_report_only_when_it_exists(lake):
    storage, root = lake
    found = {r["window"]: r for r in monitoring_store.check_results(storage, root, "drift")}
    assert found["2013-05"]["report_uri"].endswith("window=2013-05/report.html")
    assert "report_uri" not in found["2013-06"]
    assert [r["window"] for r in monitoring_store.check_results(storage, root, "performance")] == ["2013-05"]


def test_nothing_stored_yet_reads_as_empty(tmp_path):
    storage = LocalStorage()
    assert monitoring_store.scoring_manifests(storage, str(tmp_path / "none")) == []
    assert monitoring_store.check_results(storage, str(tmp_path / "none"), "drift") == []


def test_report_of_a_window_and_a_missing_one(lake):
    storage, root = lake
    assert monitoring_store.read_report(storage, root, "1", "2013-05") == b"<html>May</html>"
    with pytest.raises(StorageError):
        monitoring_store.read_report(storage, root, "1", "2013-06")
