# ruff: noqa: F401, F811  (fixtures shared with another test module are imported, then requested by name)
"""Backup and restore of the embedded default, proven on a lifecycle's state: real flows, a real Prefect server.

One state is built per module: the curated Jan–Mar 2013 lake, a model trained, registered and promoted, a batch
scored, and a Prefect server (SQLite) holding the retrain deployment and the automations of its triggers. It is
backed up while the server runs, the home is deleted, and the backup restored into an empty home.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from mlflow import MlflowClient
from test_train_register_flow import MODEL, MONTHS, curated_lake

from flows.register import register
from flows.score import score
from flows.train import train
from ops import backup as ops_backup
from ops.local_prefect import local_prefect
from tasks.errors import MlopsError

# a whole lifecycle on a busy machine: beyond the suite's default 600 s per test
pytestmark = pytest.mark.timeout(1800)

RUNTIME_LINEAGE = ["scored_at", "flow_run_id"]  # when and by which run: differ by design between two runs


def registry_state(home: Path) -> dict:
    uri = f"sqlite:///{home}/mlflow/mlflow.db"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    model = client.get_registered_model(MODEL)
    versions = client.search_model_versions(f"name='{MODEL}'")
    runs = {}
    for version in versions:
        run = client.get_run(version.run_id)
        artifacts = client.download_artifacts(version.run_id, "", dst_path=str(home.parent / f"dl-{home.name}"))
        files = {
            p.relative_to(artifacts).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in Path(artifacts).rglob("*")
            if p.is_file()
        }
        runs[version.run_id] = {"metrics": run.data.metrics, "params": run.data.params, "artifacts": files}
    return {
        "aliases": dict(model.aliases),
        "tags": dict(model.tags),  # the alias history lives here
        "versions": sorted((v.version, v.run_id, tuple(sorted(v.tags.items()))) for v in versions),
        "runs": runs,
    }


def prefect_state() -> dict:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        deployments = client.read_deployments()
        automations = client.read_automations()
    return {
        "deployments": sorted((str(d.id), d.name, json.dumps(d.parameters, sort_keys=True)) for d in deployments),
        "automations": sorted((str(a.id), a.name, a.trigger.model_dump_json()) for a in automations),
    }


def scored(result: dict) -> pd.DataFrame:
    frame = pd.read_parquet(result["scores_uri"]).drop(columns=RUNTIME_LINEAGE)
    return frame.sort_values(list(frame.columns)).reset_index(drop=True)


@pytest.fixture(scope="module")
def lifecycle(tmp_path_factory, curated_lake):
    """A home after a lifecycle, its backup, and what it looked like."""
    root = tmp_path_factory.mktemp("backup-proof")
    home, backups = root / "home", root / "backups"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLOPS_HOME", str(home))
        mp.setenv("MLOPS_PII_KEY", "test-only-pii-key-0123456789abcdef")
        mp.delenv("MLOPS_PROFILE", raising=False)
        home.mkdir()
        shutil.copytree(curated_lake, home / "lake")
        with local_prefect(home / "demo-prefect", serve=["retrain"]):
            register(run_id=train(months=MONTHS)["run_id"], reason="first model")
            batch = score(input_uri=str(home / "lake" / "flight_delay" / "curated" / "period=2013-03"))
            before = {"registry": registry_state(home), "prefect": prefect_state(), "scores": scored(batch)}
            taken = ops_backup.create(str(backups), None)  # while the server keeps running: the online API
        yield {"root": root, "home": home, "taken": taken, "before": before, "batch": batch, "mp": mp}


def test_backup_has_a_checksummed_manifest_and_no_secrets(lifecycle):
    taken = lifecycle["taken"]
    folder = Path(taken["uri"])
    manifest = json.loads((folder / "manifest.json").read_text())
    paths = {f["path"]: f for f in manifest["files"]}
    assert paths["home/mlflow/mlflow.db"]["kind"] == "sqlite"
    assert paths["home/demo-prefect/prefect.db"]["kind"] == "sqlite"
    assert any(p.startswith("home/mlflow/artifacts/") for p in paths)
    assert any(p.endswith("/latest.json") for p in paths) and any(p.endswith("/manifest.json") for p in paths)
    assert not any(p.startswith("home/secrets/") or p.endswith((".log", "-wal", "-shm")) for p in paths)
    for path, entry in paths.items():
        assert hashlib.sha256((folder / path).read_bytes()).hexdigest() == entry["sha256"], path
    assert taken["total_bytes"] == sum(f["bytes"] for f in manifest["files"]) > 0
    print(f"\nbackup: {taken['files']} files, {taken['total_bytes'] / 1e6:.1f} MB in {taken['seconds']} s")


def test_restore_into_an_empty_home_gives_back_the_same_state(lifecycle):
    home, before, mp = lifecycle["home"], lifecycle["before"], lifecycle["mp"]
    assert ops_backup.verify(lifecycle["taken"]["uri"], None)["files"] == lifecycle["taken"]["files"]
    with pytest.raises(MlopsError, match="is not empty"):
        ops_backup.restore(lifecycle["taken"]["uri"], None)
    shutil.rmtree(home)
    restored = ops_backup.restore(lifecycle["taken"]["uri"], None)
    print(f"\nrestore: {restored['files']} files in {restored['seconds']} s")
    after = registry_state(home)
    assert after == before["registry"]
    assert after["aliases"] == {"champion": 1, "challenger": 1}
    with local_prefect(home / "demo-prefect"):  # the restored database, no runner re-registering anything
        assert prefect_state() == before["prefect"]
        assert before["prefect"]["automations"]  # the retrain triggers became automations
        again = score(input_uri=str(home / "lake" / "flight_delay" / "curated" / "period=2013-03"))
    pd.testing.assert_frame_equal(scored(again), before["scores"])
    assert again["rows_scored"] == lifecycle["batch"]["rows_scored"]
    mp.setenv("MLOPS_HOME", str(home))


def test_a_damaged_backup_fails_verification_naming_the_file(lifecycle, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(lifecycle["taken"]["uri"], copy)
    db = copy / "home" / "mlflow" / "mlflow.db"
    data = bytearray(db.read_bytes())
    data[len(data) // 2] ^= 0xFF
    db.write_bytes(bytes(data))
    (copy / "home" / "stray.txt").write_text("x")
    with pytest.raises(MlopsError, match=r"checksum mismatch: home/mlflow/mlflow.db; not in the manifest"):
        ops_backup.verify(str(copy), None)
    (copy / "manifest.json").unlink()
    with pytest.raises(MlopsError, match=r"no backup at .* \(no manifest\.json\)"):
        ops_backup.verify(str(copy), None)
