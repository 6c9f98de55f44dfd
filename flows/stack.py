"""The local stack: S3 API (moto), Prefect server, MLflow server and a process worker on 127.0.0.1.

State (PIDs, ports, logs, server data) lives in ``$MLOPS_HOME/stack``. The S3 API keeps objects in
memory, so ``down`` copies the stack's buckets to disk and ``up`` restores them: data survives down/up.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from adapters import processes
from flows.settings import REPO_ROOT, mlops_home
from tasks.errors import MlopsError

BUCKETS = ("mlops-landing", "mlops-lake", "mlops-mlflow")
WORK_POOL = "mlops-process"
LOCAL_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "stack-local", "AWS_SECRET_ACCESS_KEY": "stack-local"}
ORDER = ("s3", "prefect", "mlflow", "worker")


@dataclass(frozen=True)
class Ports:
    prefect: int = 4200
    mlflow: int = 5000
    s3: int = 9000


def stack_dir() -> Path:
    return mlops_home() / "stack"


def urls(ports: Ports) -> dict[str, str]:
    return {
        "prefect": f"http://127.0.0.1:{ports.prefect}",
        "prefect_api": f"http://127.0.0.1:{ports.prefect}/api",
        "mlflow": f"http://127.0.0.1:{ports.mlflow}",
        "s3": f"http://127.0.0.1:{ports.s3}",
    }


def stack_env(ports: Ports) -> dict[str, str]:
    """What a shell (or a test) needs to point the `stack` profile and the Prefect CLI at this stack."""
    u = urls(ports)
    return {
        "MLOPS_PROFILE": "stack",
        "PREFECT_API_URL": u["prefect_api"],
        "MLFLOW_TRACKING_URI": u["mlflow"],
        "MLOPS_S3_ENDPOINT_URL": u["s3"],
        "AWS_DEFAULT_REGION": "us-east-1",
        **LOCAL_CREDENTIALS,
    }


def _process_env(ports: Ports) -> dict[str, str]:
    env = {**os.environ, **stack_env(ports)}
    env.update(
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        PREFECT_HOME=str(stack_dir() / "prefect"),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        MLFLOW_S3_ENDPOINT_URL=urls(ports)["s3"],
        MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false",
        MLFLOW_DISABLE_TELEMETRY="true",
        MLOPS_REPO_DIR=str(REPO_ROOT),
        MLOPS_HOME=str(mlops_home()),
    )
    return env


def _commands(ports: Ports) -> dict[str, tuple[list[str], str | None, float]]:
    """Component → (command, health URL, start-up timeout)."""
    bin_dir = Path(sys.executable).parent
    mlflow_db = stack_dir() / "mlflow" / "mlflow.db"
    return {
        "s3": (
            [str(bin_dir / "moto_server"), "-H", "127.0.0.1", "-p", str(ports.s3)],
            f"{urls(ports)['s3']}/moto-api/",
            30,
        ),
        "prefect": (
            [str(bin_dir / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(ports.prefect)],
            f"{urls(ports)['prefect_api']}/health",
            120,
        ),
        "mlflow": (
            [
                str(bin_dir / "mlflow"),
                "server",
                "--host",
                "127.0.0.1",
                "--port",
                str(ports.mlflow),
                "--workers",
                "1",
                "--backend-store-uri",
                f"sqlite:///{mlflow_db}",
                "--artifacts-destination",
                f"s3://{BUCKETS[2]}",
            ],
            f"{urls(ports)['mlflow']}/health",
            90,
        ),
        "worker": ([str(bin_dir / "prefect"), "worker", "start", "--pool", WORK_POOL, "--type", "process"], None, 0),
    }


def read_state() -> dict:
    path = stack_dir() / "state.json"
    return json.loads(path.read_text()) if path.exists() else {"components": {}}


def _write_state(state: dict) -> None:
    path = stack_dir() / "state.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(state, indent=2, sort_keys=True))


def up(ports: Ports | None = None, deploy: bool = True) -> dict:
    """Start what is not running, restore the buckets, apply pools and deployments, start the worker."""
    state = read_state()
    ports = Ports(**state["ports"]) if ports is None and "ports" in state else ports or Ports()
    state["ports"] = ports.__dict__
    env, timings = _process_env(ports), {}
    (stack_dir() / "mlflow").mkdir(parents=True, exist_ok=True)
    for name in ORDER:
        if name == "worker" and deploy:
            timings["deploy"] = apply_infra(env)
        timings[name] = _ensure(state, name, ports, env)
        if name == "s3":
            _restore_buckets(ports)
        _write_state(state)
    return {"urls": urls(ports), "seconds": timings, "env": stack_env(ports), "pids": _pids(state)}


def _ensure(state: dict, name: str, ports: Ports, env: dict[str, str]) -> float:
    current = state["components"].get(name, {})
    if processes.alive(current.get("pid")):
        return 0.0
    command, health, timeout = _commands(ports)[name]
    port = getattr(ports, name, None)
    if port and processes.port_in_use(port):
        raise MlopsError(f"port {port} for {name} is already in use by another program: pass another port")
    log = stack_dir() / "logs" / f"{name}.log"
    started = time.perf_counter()
    pid = processes.start(command, env=env, log_file=log, cwd=REPO_ROOT)
    state["components"][name] = {"pid": pid, "log": str(log), "health": health}
    if health:
        processes.wait_until_healthy(name, health, pid, timeout, log)
    return round(time.perf_counter() - started, 2)


def apply_infra(env: dict[str, str]) -> float:
    """Create or update the process work pool from infra/work-pools, then `prefect deploy --all`."""
    started = time.perf_counter()
    prefect = str(Path(sys.executable).parent / "prefect")
    template = REPO_ROOT / "infra" / "work-pools" / "process.json"
    _run(
        [
            prefect,
            "work-pool",
            "create",
            WORK_POOL,
            "--type",
            "process",
            "--base-job-template",
            str(template),
            "--overwrite",
        ],
        env,
    )
    _run([prefect, "--no-prompt", "deploy", "--all"], env)
    return round(time.perf_counter() - started, 2)


def _run(command: list[str], env: dict[str, str]) -> None:
    done = subprocess.run(command, env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, check=False)
    if done.returncode != 0:
        tail = " | ".join((done.stdout + done.stderr).strip().splitlines()[-3:])
        raise MlopsError(f"`{' '.join(command[1:4])} ...` failed: {tail}")


def status() -> dict:
    state = read_state()
    ports = Ports(**state.get("ports", {}))
    report = {}
    for name in ORDER:
        info = state["components"].get(name, {})
        running = processes.alive(info.get("pid"))
        healthy = running and (info.get("health") is None or processes.http_ok(info["health"]))
        report[name] = {"pid": info.get("pid"), "running": running, "healthy": bool(healthy), "log": info.get("log")}
    return {"components": report, "urls": urls(ports), "env": stack_env(ports)}


def down() -> dict:
    """Save the buckets, then stop worker, MLflow, Prefect and the S3 API, each by its PID."""
    state = read_state()
    ports = Ports(**state.get("ports", {}))
    saved = _save_buckets(ports) if processes.alive(state["components"].get("s3", {}).get("pid")) else 0
    stopped = {}
    for name in reversed(ORDER):
        stopped[name] = processes.stop(state["components"].get(name, {}).get("pid"))
        state["components"].pop(name, None)
    _write_state(state)
    return {"stopped": stopped, "objects_saved": saved}


def _pids(state: dict) -> dict[str, int]:
    return {name: info["pid"] for name, info in state["components"].items()}


def _s3(ports: Ports):
    import boto3

    # the stack's S3 API is a local emulator that accepts any key: these are not credentials
    return boto3.client("s3", endpoint_url=urls(ports)["s3"], region_name="us-east-1", **_local_keys())


def _local_keys() -> dict[str, str]:
    return {
        "aws_access_key_id": LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    }


def _restore_buckets(ports: Ports) -> None:
    s3 = _s3(ports)
    existing = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
    backup = stack_dir() / "s3-data"
    for bucket in BUCKETS:
        if bucket not in existing:
            s3.create_bucket(Bucket=bucket)
            for path in sorted((backup / bucket).rglob("*")) if (backup / bucket).exists() else []:
                if path.is_file():
                    s3.put_object(
                        Bucket=bucket, Key=path.relative_to(backup / bucket).as_posix(), Body=path.read_bytes()
                    )


def _save_buckets(ports: Ports) -> int:
    s3, backup, saved = _s3(ports), stack_dir() / "s3-data", 0
    for bucket in BUCKETS:
        target = backup / bucket
        fresh = backup / f".{bucket}.new"
        shutil.rmtree(fresh, ignore_errors=True)
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for item in page.get("Contents", []):
                path = fresh / item["Key"]
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read())
                saved += 1
        shutil.rmtree(target, ignore_errors=True)
        if fresh.exists():
            fresh.rename(target)
    return saved
