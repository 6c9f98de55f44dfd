"""`mlops stack`: the real servers on free 127.0.0.1 ports, deployments applied, data kept across down/up."""

from __future__ import annotations

import boto3
import pytest
import yaml

from adapters import processes
from flows.settings import REPO_ROOT
from ops import stack

pytestmark = pytest.mark.slow


@pytest.fixture
def stack_home(tmp_path, monkeypatch):
    monkeypatch.setenv("MLOPS_HOME", str(tmp_path / "home"))
    yield tmp_path / "home"
    stack.down()


def test_up_status_down_up_keeps_data_and_stops_by_pid(stack_home):
    ports = stack.Ports(processes.free_port(), processes.free_port(), processes.free_port())
    started = stack.up(ports)
    assert set(started["pids"]) == {"s3", "prefect", "mlflow", "worker", "api"}
    report = stack.status()
    assert report["backend"] == started["backend"] == "sqlite"  # the default; no PostgreSQL started
    assert all(c["running"] and c["healthy"] for c in report["components"].values()), report
    # the API is up before any model exists, and says it serves nothing yet
    assert report["api"]["url"] == started["urls"]["api"] and report["api"]["version"] is None

    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: started["urls"]["prefect_api"]}), get_client(sync_client=True) as client:
        names = {d.name for d in client.read_deployments()}
    declared = {d["name"] for d in yaml.safe_load((REPO_ROOT / "prefect.yaml").read_text())["deployments"]}
    assert names == declared

    s3 = boto3.client(
        "s3",
        endpoint_url=started["urls"]["s3"],
        region_name="us-east-1",
        aws_access_key_id="stack-local",
        aws_secret_access_key="stack-local",
    )
    s3.put_object(Bucket="mlops-lake", Key="kept/across/restarts.txt", Body=b"still here")

    pids = dict(started["pids"])
    stopped = stack.down()
    assert all(stopped["stopped"].values()) and stopped["objects_saved"] >= 1
    assert not any(processes.alive(pid) for pid in pids.values())

    again = stack.up(deploy=False)  # same ports, kept in the state file
    assert again["urls"] == started["urls"]
    body = s3.get_object(Bucket="mlops-lake", Key="kept/across/restarts.txt")["Body"].read()
    assert body == b"still here"
