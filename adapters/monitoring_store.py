"""Read what the monitoring flows stored in the lake: scoring manifests and check results (for the dashboard).

Layout (written by flows/score.py and flows/windows.py)::

    <lake>/<usecase>/scores/batch=<id>/model=<version>/_manifest.json
    <lake>/<usecase>/monitoring/<check>/model=<version>/window=<window>/result.json   (+ report.html for drift)

Missing folders read as nothing stored yet. Every document keeps the URI it was read from (``_uri``).
"""

from __future__ import annotations

from adapters.storage import Storage, join_uri, read_json
from tasks.errors import StorageError
from tasks.scoring import safe_value

MANIFEST = "_manifest.json"
QUARANTINE_DIR = "_quarantine"
RESULT = "result.json"
REPORT = "report.html"


def _documents(storage: Storage, folder: str, name: str, skip: str | None = None) -> list[dict]:
    try:
        uris = storage.list(folder)
    except StorageError:
        return []
    found = []
    for uri in sorted(uris):
        if uri.endswith("/" + name) and not (skip and f"/{skip}/" in uri):
            found.append({**read_json(storage, uri), "_uri": uri})
    return found


def scoring_manifests(storage: Storage, lake_root: str) -> list[dict]:
    """Every committed scoring output of the use case (quarantine side files excluded)."""
    return _documents(storage, join_uri(lake_root, "scores"), MANIFEST, skip=QUARANTINE_DIR)


def check_results(storage: Storage, lake_root: str, check: str) -> list[dict]:
    """Every stored result of one check (``drift`` or ``performance``), with its report's URI when it has one."""
    results = _documents(storage, join_uri(lake_root, "monitoring", check), RESULT)
    for result in results:
        report = result["_uri"].rsplit("/", 1)[0] + "/" + REPORT
        if check == "drift" and storage.exists(report):
            result["report_uri"] = report
    return results


def read_report(storage: Storage, lake_root: str, version: str, window: str) -> bytes:
    """The HTML drift report of one window and model version (StorageError when there is none)."""
    uri = join_uri(lake_root, "monitoring", "drift", f"model={safe_value(version)}", f"window={safe_value(window)}")
    return storage.read_bytes(join_uri(uri, REPORT))
