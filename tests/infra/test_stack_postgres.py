"""`mlops stack up --postgres`: Prefect and MLflow keep their data in the stack's own PostgreSQL, across down/up."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

from adapters import postgres, processes
from ops import stack
from tasks.errors import MlopsError

NO_BINARIES = (
    "PostgreSQL server binaries (initdb, postgres) not found: apt-get install postgresql, or set $MLOPS_POSTGRES_BIN"
)


@pytest.fixture
def home(monkeypatch):
    # when root, the cluster runs as an unprivileged user that must reach its data: pytest's tmp_path is under
    # /tmp/pytest-of-root (mode 0700), out of its reach, so the stack gets a folder of its own
    path = Path(tempfile.mkdtemp(prefix="mlops-stack-pg-"))
    path.chmod(0o755)
    monkeypatch.setenv("MLOPS_HOME", str(path))
    yield path
    stack.down()
    shutil.rmtree(path, ignore_errors=True)


def test_backend_is_remembered_and_never_switched_over_existing_data(home):
    assert stack._choose_backend({}, None) == "sqlite"
    assert stack._choose_backend({"backend": "postgres"}, None) == "postgres"
    assert stack._choose_backend({"backend": "postgres"}, "sqlite") == "sqlite"  # no data yet: nothing to split
    (home / "stack" / "mlflow").mkdir(parents=True)
    (home / "stack" / "mlflow" / "mlflow.db").touch()
    assert stack._choose_backend({}, None) == "sqlite"  # a stack from before the backend was recorded
    with pytest.raises(MlopsError, match=r"keeps its Prefect and MLflow data in sqlite.*will not switch to postgres"):
        stack.up(backend="postgres")
    assert stack.read_state() == {"components": {}}  # refused before anything was written or started


def _rows(port: int, database: str, query: str, *args) -> list[tuple]:
    import psycopg2

    with psycopg2.connect(postgres.url(port, database)) as connection, connection.cursor() as cursor:
        cursor.execute(query, args)
        return cursor.fetchall()


def _left_in_group(pgid: int) -> list[int]:
    """Live (non-zombie) processes still in the process group ``pgid``: a server's children count too."""
    left = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            left.append(int(stat.parent.name))
    return left


@pytest.mark.slow
@pytest.mark.skipif(postgres.find_binaries() is None, reason=NO_BINARIES)
def test_up_postgres_keeps_prefect_and_mlflow_data_in_postgres_across_down_up(home):
    from mlflow import MlflowClient
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    ports = stack.Ports(*(processes.free_port() for _ in range(4)))
    started = stack.up(ports, deploy=False, backend="postgres")
    report = stack.status()
    assert report["backend"] == started["backend"] == "postgres"
    assert set(report["components"]) == {"postgres", "s3", "prefect", "mlflow", "worker", "api", "dashboard"}
    assert all(c["running"] and c["healthy"] for c in report["components"].values()), report

    def prefect():
        return get_client(sync_client=True)

    with temporary_settings({PREFECT_API_URL: started["urls"]["prefect_api"]}):
        with prefect() as client:
            flow_id = client.create_flow_from_name("kept-in-postgres")
        experiment_id = MlflowClient(started["urls"]["mlflow"]).create_experiment("kept-in-postgres")
        # through the servers, into the stack's PostgreSQL; no SQLite file anywhere
        assert _rows(ports.postgres, "prefect", "SELECT name FROM flow WHERE id = %s", str(flow_id)) == [
            ("kept-in-postgres",)
        ]
        assert _rows(ports.postgres, "mlflow", "SELECT name FROM experiments WHERE experiment_id = %s", experiment_id)
        assert not list((home / "stack").rglob("*.db"))

        pids = dict(started["pids"])
        stopped = stack.down()
        assert stopped["stopped"] == dict.fromkeys(pids, True)
        assert not any(processes.alive(pid) or _left_in_group(pid) for pid in pids.values())
        assert "database system is shut down" in (home / "stack" / "logs" / "postgres.log").read_text()

        again = stack.up(deploy=False)  # backend and ports from the state file
        assert again["backend"] == "postgres" and again["urls"] == started["urls"]
        with prefect() as client:
            assert client.read_flow(flow_id).name == "kept-in-postgres"
        assert MlflowClient(again["urls"]["mlflow"]).get_experiment(experiment_id).name == "kept-in-postgres"
