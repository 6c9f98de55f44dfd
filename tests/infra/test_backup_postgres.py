"""Backup and restore of the PostgreSQL stack: pg_dump of Prefect's and MLflow's databases, S3 artifacts and lake
pointers; restored into a fresh stack (`mlops stack up --postgres` on an empty home)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

from adapters import postgres, processes
from adapters.registry import MlflowRegistry
from adapters.storage import S3Storage
from ops import backup as ops_backup
from ops import stack

POINTER = "s3://mlops-lake/flight_delay/curated/period=2013-01/latest.json"


@pytest.fixture
def home(monkeypatch):
    path = Path(tempfile.mkdtemp(prefix="mlops-backup-pg-"))  # reachable by the cluster's unprivileged user
    path.chmod(0o755)
    monkeypatch.setenv("MLOPS_HOME", str(path))
    yield path
    stack.down()
    shutil.rmtree(path, ignore_errors=True)


def state(urls: dict) -> dict:
    from prefect.client.orchestration import get_client

    registry = MlflowRegistry(urls["mlflow"], http_retries=0)
    with get_client(sync_client=True) as client:
        deployments = sorted((str(d.id), d.name) for d in client.read_deployments())
        flows = sorted((str(f.id), f.name) for f in client.read_flows())
    version = registry.get_alias("kept", "champion")
    return {
        "flows": flows,
        "deployments": deployments,
        "champion": version.version if version else None,
        "history": registry.alias_history("kept"),
        "artifact": registry.read_run_artifact(version.run_id, "evidence/report.json") if version else None,
        "pointer": S3Storage(endpoint_url=urls["s3"]).read_bytes(POINTER),
    }


@pytest.mark.slow
@pytest.mark.skipif(postgres.find_binaries() is None, reason="PostgreSQL server binaries not found")
def test_backup_of_the_postgres_stack_restores_into_a_fresh_stack(home, tmp_path, monkeypatch):
    from mlflow import MlflowClient
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    ports = stack.Ports(*(processes.free_port() for _ in range(4)))
    started = stack.up(ports, deploy=False, backend="postgres")
    for key, value in started["env"].items():
        monkeypatch.setenv(key, value)
    urls = started["urls"]
    with temporary_settings({PREFECT_API_URL: urls["prefect_api"]}):
        with get_client(sync_client=True) as client:
            flow_id = client.create_flow_from_name("kept-in-postgres")
            client.create_deployment(flow_id, name="kept-deployment")
        registry = MlflowRegistry(urls["mlflow"], http_retries=0)
        run_id = registry.log_metrics_run(
            experiment="kept", run_name="r", metrics={"auc": 0.8}, tags={}, artifacts={"evidence/report.json": b"{}"}
        )
        mlflow = MlflowClient(urls["mlflow"])
        mlflow.create_registered_model("kept")
        version = mlflow.create_model_version("kept", source=f"runs:/{run_id}/evidence", run_id=run_id)
        registry.set_alias("kept", "champion", version.version, reason="first", flow_run_id=None)
        S3Storage(endpoint_url=urls["s3"]).write_bytes(POINTER, b'{"version": "abc"}')
        taken = ops_backup.create(str(tmp_path / "backups"), "stack")
        before = state(urls)  # the backup's own flow is part of what it saved
    print(
        f"\npostgres stack backup: {taken['files']} files, {taken['total_bytes'] / 1e6:.2f} MB in {taken['seconds']} s"
    )
    stack.down()
    for child in home.iterdir():  # everything goes: databases, buckets' copy, logs
        shutil.rmtree(child) if child.is_dir() else child.unlink()

    stack.up(ports, deploy=False, backend="postgres")  # a fresh stack: empty databases, empty buckets
    with temporary_settings({PREFECT_API_URL: urls["prefect_api"]}):
        assert MlflowRegistry(urls["mlflow"]).get_alias("kept", "champion") is None
        restored = ops_backup.restore(taken["uri"], "stack")
        print(
            f"postgres stack restore: {restored['files']} files in {restored['seconds']} s "
            f"(then {restored['restart_seconds']} s to restart the servers)"
        )
        assert set(restored["stack_servers_restarted"]) == {"worker", "mlflow", "prefect"}
        assert state(urls) == before
