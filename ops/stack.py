"""The local stack: S3 API (moto), Prefect server, MLflow server, a process worker and the REST API on 127.0.0.1.

State (PIDs, ports, backend, logs, server data) lives in ``$MLOPS_HOME/stack``. The S3 API keeps objects in
memory, so ``down`` copies the stack's buckets to disk and ``up`` restores them: data survives down/up.
Prefect and MLflow keep their data in SQLite files, or (``backend="postgres"``) in a PostgreSQL cluster in
``stack/postgres`` run from the server binaries on the machine; a stack keeps the backend it started with.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

from adapters import postgres, processes
from flows.settings import REPO_ROOT, mlops_home
from ops import infra
from tasks.errors import MlopsError

BUCKETS = ("mlops-landing", "mlops-lake", "mlops-mlflow")
WORK_POOL = "mlops-process"
LOCAL_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "stack-local", "AWS_SECRET_ACCESS_KEY": "stack-local"}
ORDER = ("postgres", "s3", "prefect", "mlflow", "worker", "api")
BACKENDS = ("sqlite", "postgres")
DATABASES = ("prefect", "mlflow")


@dataclass(frozen=True)
class Ports:
    prefect: int = 4200
    mlflow: int = 5000
    s3: int = 9000
    postgres: int = 15432
    api: int = 0  # the REST API (`mlops api`): 0 picks a free port at the first `up`, kept afterwards


def stack_dir() -> Path:
    return mlops_home() / "stack"


def urls(ports: Ports) -> dict[str, str]:
    return {
        "prefect": f"http://127.0.0.1:{ports.prefect}",
        "prefect_api": f"http://127.0.0.1:{ports.prefect}/api",
        "mlflow": f"http://127.0.0.1:{ports.mlflow}",
        "s3": f"http://127.0.0.1:{ports.s3}",
        **({"api": f"http://127.0.0.1:{ports.api}"} if ports.api else {}),
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


def _worker_env() -> dict[str, str]:
    """What the worker (and the flow-run processes it starts, which inherit its environment) runs with."""
    return {
        # poll for scheduled and triggered runs every 2 s, not Prefect's 10 s: a triggered retrain or a
        # `prefect deployment run` starts within seconds (the server is on loopback: polls are cheap)
        "PREFECT_WORKER_QUERY_SECONDS": "2",
        # persist what flows return (batch URI, snapshot URI, run id: small references), so callers of
        # `run_deployment` and the UI can read a run's result; in a folder of the stack, on this machine.
        # Task results stay in memory: tasks hand each other DataFrames, which must never be pickled to disk.
        "PREFECT_RESULTS_PERSIST_BY_DEFAULT": "true",
        "PREFECT_TASKS_DEFAULT_PERSIST_RESULT": "false",
        "PREFECT_LOCAL_STORAGE_PATH": str(stack_dir() / "prefect" / "results"),
    }


def _commands(ports: Ports, backend: str = "sqlite") -> dict[str, tuple[list[str], str | None, float]]:
    """Component → (command, health URL, start-up timeout)."""
    bin_dir = Path(sys.executable).parent
    mlflow_store = f"sqlite:///{stack_dir() / 'mlflow' / 'mlflow.db'}"
    if backend == "postgres":
        mlflow_store = postgres.url(ports.postgres, "mlflow", "postgresql+psycopg2")
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
                mlflow_store,
                "--artifacts-destination",
                f"s3://{BUCKETS[2]}",
            ],
            f"{urls(ports)['mlflow']}/health",
            90,
        ),
        "worker": ([str(bin_dir / "prefect"), "worker", "start", "--pool", WORK_POOL, "--type", "process"], None, 0),
        # alive before a champion exists (/ready says when one serves); it follows @champion from then on
        "api": (
            [str(bin_dir / "mlops"), "api", "--profile", "stack", "--port", str(ports.api), "--workers", "1"],
            f"http://127.0.0.1:{ports.api}/health",
            120,
        ),
    }


def read_state() -> dict:
    path = stack_dir() / "state.json"
    return json.loads(path.read_text()) if path.exists() else {"components": {}}


def _write_state(state: dict) -> None:
    path = stack_dir() / "state.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(state, indent=2, sort_keys=True))


def up(ports: Ports | None = None, deploy: bool = True, backend: str | None = None) -> dict:
    """Start what is not running, restore the buckets, apply pools and deployments, start the worker.

    ``backend`` (sqlite, postgres) holds Prefect's and MLflow's data; None: the one the stack already has
    (SQLite for a new stack). A stack never switches backend over existing data: that raises.
    """
    state = read_state()
    ports = Ports(**state["ports"]) if ports is None and "ports" in state else ports or Ports()
    backend = _choose_backend(state, backend)
    if not ports.api:
        ports = replace(ports, api=processes.free_port())
    state["ports"], state["backend"] = ports.__dict__, backend
    env, timings = _process_env(ports), {}
    (stack_dir() / "mlflow").mkdir(parents=True, exist_ok=True)
    try:
        for name in _components(backend):
            if name == "worker" and deploy:
                timings["deploy"] = apply_infra(env)
            if name == "postgres":
                timings[name] = _ensure_postgres(state, ports)
            else:
                timings[name] = _ensure(state, name, ports, env, backend)
            if name == "s3":
                _restore_buckets(ports)
            _write_state(state)
    finally:
        _write_state(state)  # a process started before a failure is still known, so `down` stops it
    return {
        "urls": _urls(ports, backend),
        "backend": backend,
        "seconds": timings,
        "env": stack_env(ports),
        "pids": _pids(state),
    }


def _components(backend: str) -> tuple[str, ...]:
    return ORDER if backend == "postgres" else tuple(name for name in ORDER if name != "postgres")


def _urls(ports: Ports, backend: str) -> dict[str, str]:
    return {**urls(ports), **({"postgres": postgres.url(ports.postgres)} if backend == "postgres" else {})}


def _has_data(backend: str) -> bool:
    if backend == "postgres":
        return (stack_dir() / "postgres" / "PG_VERSION").exists()
    return (stack_dir() / "prefect" / "prefect.db").exists() or (stack_dir() / "mlflow" / "mlflow.db").exists()


def _choose_backend(state: dict, requested: str | None) -> str:
    if requested not in (None, *BACKENDS):
        raise MlopsError(f"stack backend must be one of {', '.join(BACKENDS)}, not {requested!r}")
    known = state.get("backend") or next((b for b in BACKENDS if _has_data(b)), None)
    chosen = requested or known or "sqlite"
    if known and chosen != known and _has_data(known):
        raise MlopsError(
            f"the stack in {stack_dir()} keeps its Prefect and MLflow data in {known}; it will not switch to "
            f"{chosen} and split them: run `mlops stack up` without --{chosen} to keep {known}, or `mlops stack "
            f"down` and move {stack_dir()} away (or set MLOPS_HOME) to start an empty stack on {chosen}"
        )
    return chosen


def _ensure_postgres(state: dict, ports: Ports) -> float:
    """initdb on first use, start the server unless it runs, create the Prefect and MLflow databases."""
    started = time.perf_counter()
    if not processes.alive(state["components"].get("postgres", {}).get("pid")):
        bin_dir, user = postgres.require_binaries(), postgres.run_as()
        if processes.port_in_use(ports.postgres):
            raise MlopsError(f"port {ports.postgres} for postgres is already in use by another program: pass another")
        data, log = stack_dir() / "postgres", stack_dir() / "logs" / "postgres.log"
        postgres.init_cluster(data, bin_dir, user)
        pid = postgres.start(data, bin_dir, ports.postgres, log, user)
        state["components"]["postgres"] = {"pid": pid, "log": str(log), "health": postgres.url(ports.postgres)}
        postgres.wait_until_ready(pid, ports.postgres, 60, log)
    postgres.ensure_databases(ports.postgres, DATABASES)
    return round(time.perf_counter() - started, 2)


def _ensure(state: dict, name: str, ports: Ports, env: dict[str, str], backend: str = "sqlite") -> float:
    current = state["components"].get(name, {})
    if processes.alive(current.get("pid")):
        return 0.0
    command, health, timeout = _commands(ports, backend)[name]
    if name == "prefect" and backend == "postgres":
        env = {
            **env,
            "PREFECT_API_DATABASE_CONNECTION_URL": postgres.url(ports.postgres, "prefect", "postgresql+asyncpg"),
        }
    if name == "worker":
        env = {**env, **_worker_env()}
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
    """Create or update the process work pool and `prefect deploy --all` (ops/infra.py); seconds taken.

    Only the pool the stack's worker serves: container pools can be applied to this server too
    (`mlops infra apply --profile stack`), but no worker for them runs here.
    """
    report = infra.apply(env["PREFECT_API_URL"], ("process",), env=env)
    return round(sum(report["seconds"].values()), 2)


def status() -> dict:
    state = read_state()
    ports = Ports(**state.get("ports", {}))
    backend = state.get("backend", "sqlite")
    report = {}
    for name in _components(backend):
        info = state["components"].get(name, {})
        running = processes.alive(info.get("pid"))
        healthy = running and _healthy(name, info, ports)
        report[name] = {"pid": info.get("pid"), "running": running, "healthy": bool(healthy), "log": info.get("log")}
    served = _served(ports) if report.get("api", {}).get("running") else None
    return {
        "components": report,
        "backend": backend,
        "urls": _urls(ports, backend),
        "env": stack_env(ports),
        "api": served,
    }


def _served(ports: Ports) -> dict:
    """The API's URL and the model version it serves (None before a champion exists)."""
    import httpx

    url = urls(ports).get("api", "")
    try:
        ready = httpx.get(f"{url}/ready", timeout=3).json()
    except (httpx.HTTPError, ValueError) as exc:
        return {"url": url, "ready": False, "version": None, "error": str(exc)}
    return {
        "url": url,
        "ready": bool(ready.get("ready")),
        "version": ready.get("version"),
        "error": ready.get("last_error"),
    }


def _healthy(name: str, info: dict, ports: Ports) -> bool:
    if name == "postgres":
        return postgres.accepts_connections(ports.postgres)
    return info.get("health") is None or processes.http_ok(info["health"])


def down() -> dict:
    """Save the buckets, then stop worker, MLflow, Prefect, the S3 API and PostgreSQL, each by its PID."""
    state = read_state()
    ports = Ports(**state.get("ports", {}))
    saved = _save_buckets(ports) if processes.alive(state["components"].get("s3", {}).get("pid")) else 0
    stopped = {}
    for name in reversed(_components(state.get("backend", "sqlite"))):
        pid = state["components"].get(name, {}).get("pid")
        if name == "postgres":  # SIGINT to the postmaster alone: fast shutdown (SIGTERM waits for every client)
            stopped[name] = processes.stop(pid, 60, group=False, sig=signal.SIGINT)
        else:
            stopped[name] = processes.stop(pid)
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
