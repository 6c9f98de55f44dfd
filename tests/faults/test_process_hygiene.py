"""Processes the product starts leave nothing behind, and every port they open listens on 127.0.0.1 only."""

from __future__ import annotations

import os
import signal
import sys
import time
from types import SimpleNamespace

import psutil
import pytest

from adapters import processes

ORPHAN_MAKER = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])  # same process group
print(child.pid, flush=True)
time.sleep(600)
"""


def test_stop_ends_the_group_even_when_its_leader_died_alone(tmp_path):
    log = tmp_path / "leader.log"
    leader = processes.start([sys.executable, "-c", ORPHAN_MAKER], env=dict(os.environ), log_file=log, cwd=tmp_path)
    while not log.read_text().strip():
        time.sleep(0.1)
    orphan = int(log.read_text().split()[0])
    os.kill(leader, signal.SIGKILL)  # the recorded PID dies alone, as an MLflow server's parent can
    while processes.alive(leader):
        processes._reap(leader)  # it is our child: reap its zombie
        time.sleep(0.05)
    assert processes.alive(orphan)
    try:
        assert processes.stop(leader, timeout_seconds=10) is True
        assert not processes.alive(orphan)
        assert processes.stop(leader) is False  # nothing left: a second stop has nothing to do
    finally:
        if processes.alive(orphan):
            os.kill(orphan, signal.SIGKILL)


def test_the_local_dask_cluster_listens_on_loopback_only():
    from distributed import LocalCluster

    from flows.score import _task_runner

    ctx = SimpleNamespace(
        usecase=SimpleNamespace(scoring=SimpleNamespace(runner="dask", dask_address=None, dask_workers=1))
    )
    kwargs = _task_runner(ctx).cluster_kwargs
    with LocalCluster(**kwargs, silence_logs=True) as cluster:
        cluster.wait_for_workers(1, timeout=120)
        ours = [psutil.Process(), *psutil.Process().children(recursive=True)]
        listening = {
            (c.laddr.ip, c.laddr.port)
            for p in ours
            for c in p.net_connections(kind="inet")
            if c.status == psutil.CONN_LISTEN
        }
        dashboard = cluster.dashboard_link
    assert listening, "the cluster should listen somewhere"
    assert {ip for ip, _ in listening} <= {"127.0.0.1"}, listening
    assert dashboard.startswith("http://127.0.0.1:")


@pytest.mark.parametrize("sig", [signal.SIGTERM])
def test_stop_of_a_process_that_already_ended_is_false(tmp_path, sig):
    pid = processes.start([sys.executable, "-c", "pass"], env=dict(os.environ), log_file=tmp_path / "l", cwd=tmp_path)
    while processes.alive(pid):
        time.sleep(0.05)
    assert processes.stop(pid, sig=sig) is False
