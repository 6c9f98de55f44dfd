"""Benchmark online scoring: our API vs MLflow's scoring server on the same model version, then a swap under load.

Peer: ``mlflow models serve -m models:/<name>@champion --env-manager local`` (FastAPI + uvicorn in the locked
MLflow) with the same worker count; both get ``OMP_NUM_THREADS=1`` per worker. Same machine, same requests
(``dataframe_records`` bodies to ``/invocations``: MLflow's format, which our API accepts too), single-row and
100-row payloads. The load generator is bounded: a fixed duration at a fixed concurrency (1, 8, 32 clients),
then it stops by itself. Each cell runs ours and MLflow's alternately. Printed: rows/s, p50 and p99 latency
for both and the ratios; goals: at concurrency 8 at least 2x MLflow's rows/s with p99 no worse; single-row p50
at concurrency 1 at most 15 ms. Memory: RSS of each server's worker processes after the load.

Swap under load: while 8 clients send single rows to our API, the alias moves 5 times (promotions and
rollbacks between two versions, each with the alias-moved event). Printed: failed requests (goal 0), the
versions seen (old or new only), and the time from each alias move to the first response by the new version
and to 20 responses in a row by it (every worker moved).

Setup (throw-away MLOPS_HOME, its own Prefect server): January and February 2013 landed and ingested, two
models trained on January and registered; @champion is put on the first. Requests are February rows.

Run: .venv/bin/python bench/serve.py [--duration 5] [--workers 1] [--home DIR (reuse a setup)]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from score import load, start_environment

REPO = Path(__file__).resolve().parents[1]
CONCURRENCY = (1, 8, 32)
PAYLOADS = (1, 100)
MOVES = 5


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds of load per cell")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn workers of both servers")
    parser.add_argument("--home", type=Path, help="reuse the state of an earlier run (skips the setup)")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    home = args.home.resolve() if args.home else Path(tempfile.mkdtemp(prefix="bench-serve-"))
    prefect = start_environment(home)
    try:
        run(home, args.duration, args.workers)
    finally:
        prefect.terminate()
        prefect.wait(timeout=30)
    print(f"(state in {home})", file=sys.stderr)


def run(home: Path, duration: float, workers: int) -> None:
    from flows.context import build_context

    print(f"machine: {os.cpu_count()} cores, load average {load()} at start; OMP_NUM_THREADS=1 per worker")
    ctx = build_context()
    uc, registry = ctx.usecase, ctx.registry()
    versions = setup(ctx)
    name = uc.registered_model
    registry.set_alias(name, "champion", versions[0], reason="benchmark start", flow_run_id=None)
    rows = request_rows(ctx, 200)
    bodies = {n: {"dataframe_records": rows[:n]} for n in PAYLOADS}
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"  # MLflow execs `uvicorn`
    ours = start_server(ours_command(workers), env, home / "ours.log")
    peer = start_server(
        mlflow_command(name, workers), {**env, "MLFLOW_TRACKING_URI": registry.tracking_uri}, home / "mlflow.log"
    )
    try:
        for server in (ours, peer):
            wait_ready(server, bodies[1])
        print(f"servers: ours {ours['url']} and MLflow {peer['url']}, {workers} worker(s) each, version {versions[0]}")
        table(ours, peer, bodies, duration)
        memory(ours, peer)
        swap_under_load(ours, registry, ctx.usecase.name, name, versions, bodies[1])
    finally:
        for server in (ours, peer):
            stop(server)
    print(f"load average {load()} at the end")


# --- setup ---------------------------------------------------------------------------------------------------


def setup(ctx) -> list[str]:
    """Two registered versions trained on January (reused when the home already has them)."""
    from flows.ingest import ingest
    from flows.land import land
    from flows.register import register
    from flows.train import train

    name = ctx.usecase.registered_model
    registry = ctx.registry()
    known = [v for v in ("1", "2") if _exists(registry, name, v)]
    if len(known) == 2:
        return known
    started = time.perf_counter()
    for month in ("2013-01", "2013-02"):
        ingest(input_uri=land(period=month)["batch_uri"])
    for _ in range(2):
        register(run_id=train(months="2013-01")["run_id"])
    print(f"setup: Jan+Feb ingested, 2 versions trained on Jan and registered in {time.perf_counter() - started:.0f} s")
    return ["1", "2"]


def _exists(registry, name: str, version: str) -> bool:
    try:
        registry.get_version(name, version)
        return True
    except Exception:
        return False


def request_rows(ctx, n: int) -> list[dict]:
    """February rows as a client sends them (model inputs + id), JSON values only, inside the contract."""
    import pandas as pd

    from adapters.storage import read_parquet
    from flows.snapshots import latest_snapshot_uri
    from tasks.training import model_inputs

    uri = latest_snapshot_uri(ctx, "2013-02")
    frame = read_parquet(ctx.storage(uri), f"{uri}/data.parquet").dropna(subset=["temp"]).head(n)
    records = []
    for _, row in frame.iterrows():
        record = {ctx.usecase.id_column: str(row[ctx.usecase.id_column])}
        for column in model_inputs(ctx.usecase):
            value = row[column]
            record[column] = (
                None
                if pd.isna(value)
                else value.isoformat()
                if isinstance(value, pd.Timestamp)
                else value.item()
                if hasattr(value, "item")
                else value
            )
        records.append(record)
    return records


# --- servers ------------------------------------------------------------------------------------------------


def _free_port() -> int:
    from adapters.processes import free_port

    return free_port()


def ours_command(workers: int) -> tuple[list[str], int]:
    port = _free_port()
    return [sys.executable, "-m", "ops.main", "api", "--port", str(port), "--workers", str(workers)], port


def mlflow_command(name: str, workers: int) -> tuple[list[str], int]:
    port = _free_port()
    mlflow = str(Path(sys.executable).parent / "mlflow")
    uri = f"models:/{name}@champion"
    command = [mlflow, "models", "serve", "-m", uri, "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)]
    return [*command, "-w", str(workers)], port


def start_server(spec: tuple[list[str], int], env: dict[str, str], log: Path) -> dict:
    command, port = spec
    process = subprocess.Popen(
        command, env=env, cwd=REPO, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True
    )
    return {"process": process, "url": f"http://127.0.0.1:{port}", "log": log}


def wait_ready(server: dict, body: dict, timeout: float = 240) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server["process"].poll() is not None:
            raise SystemExit(f"server exited: {server['log'].read_text()[-2000:]}")
        try:
            response = httpx.post(f"{server['url']}/invocations", json=body, timeout=10)
            if response.status_code == 200:
                return
            if response.status_code < 500 and response.status_code != 503:
                raise SystemExit(f"{server['url']} refused the benchmark body: {response.text[:500]}")
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"{server['url']} not ready after {timeout:.0f} s: {server['log'].read_text()[-2000:]}")


def stop(server: dict) -> None:
    import signal

    process = server["process"]
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


# --- load -----------------------------------------------------------------------------------------------------


async def _load(url: str, body: dict, concurrency: int, duration: float, record=None) -> dict:
    import httpx

    latencies: list[float] = []
    failures = 0
    end = time.perf_counter() + duration
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client:

        async def worker() -> None:
            nonlocal failures
            while time.perf_counter() < end:
                started = time.perf_counter()
                try:
                    response = await client.post("/invocations", json=body)
                    ok = response.status_code == 200
                except httpx.HTTPError:
                    ok, response = False, None
                latencies.append(time.perf_counter() - started)
                failures += not ok
                if record is not None:
                    record(response)

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - began
    rows = len(body["dataframe_records"])
    ms = np.array(latencies) * 1000
    return {
        "requests": len(latencies),
        "failures": failures,
        "rows_per_s": (len(latencies) - failures) * rows / elapsed,
        "p50": float(np.percentile(ms, 50)),
        "p99": float(np.percentile(ms, 99)),
    }


def table(ours: dict, peer: dict, bodies: dict, duration: float) -> None:
    print(f"\n-- throughput and latency: {duration:.0f} s per cell, ours and MLflow alternately --")
    header = (
        f"{'rows':>4} {'conc':>4} | {'ours rows/s':>11} {'p50 ms':>7} {'p99 ms':>7} | "
        f"{'mlflow rows/s':>13} {'p50 ms':>7} {'p99 ms':>7} | {'rows/s x':>8} {'p99 x':>6} | load"
    )
    print(header)
    print("-" * len(header))
    for n, body in bodies.items():
        for concurrency in CONCURRENCY:
            for server in (ours, peer):  # warm both at this concurrency
                asyncio.run(_load(server["url"], body, concurrency, 0.5))
            a = asyncio.run(_load(ours["url"], body, concurrency, duration))
            b = asyncio.run(_load(peer["url"], body, concurrency, duration))
            print(
                f"{n:>4} {concurrency:>4} | {a['rows_per_s']:>11,.0f} {a['p50']:>7.1f} {a['p99']:>7.1f} | "
                f"{b['rows_per_s']:>13,.0f} {b['p50']:>7.1f} {b['p99']:>7.1f} | "
                f"{a['rows_per_s'] / b['rows_per_s']:>8.2f} {a['p99'] / b['p99']:>6.2f} | {load()}"
                + (f"  failures ours {a['failures']} mlflow {b['failures']}" if a["failures"] or b["failures"] else "")
            )
    print("rows/s x = ours / MLflow (higher is better); p99 x = ours / MLflow (lower is better)")


def _tree(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo += children.get(current, [])
    return found


def _rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def memory(ours: dict, peer: dict) -> None:
    print("\n-- memory: RSS of each process of the server (after the load) --")
    for label, server in (("ours", ours), ("mlflow", peer)):
        sizes = [(pid, _rss_mb(pid)) for pid in _tree(server["process"].pid)]
        sizes = [(pid, mb) for pid, mb in sizes if mb > 0]
        listed = ", ".join(f"{mb:.0f} MB" for _, mb in sizes)
        print(f"{label:>6}: {len(sizes)} process(es): {listed}; largest (a worker) {max(mb for _, mb in sizes):.0f} MB")


def swap_under_load(ours: dict, registry, usecase: str, name: str, versions: list[str], body: dict) -> None:
    import httpx

    from adapters.alias_events import emit_alias_moved

    print(f"\n-- swap under load: 8 clients, single rows, {MOVES} alias moves between versions {versions} --")
    seen: dict[str, int] = {}
    statuses: dict[int, int] = {}
    lock = threading.Lock()

    def record(response) -> None:
        with lock:
            status = response.status_code if response is not None else 0
            statuses[status] = statuses.get(status, 0) + 1
            if status == 200:
                version = response.headers.get("X-Model-Version", "?")
                seen[version] = seen.get(version, 0) + 1

    stop_at = {"flag": False}
    load_thread = threading.Thread(target=_bounded_load, args=(ours["url"], body, record, stop_at))
    load_thread.start()
    timings = []
    current = versions[0]
    with httpx.Client(base_url=ours["url"], timeout=30) as probe:
        for i in range(MOVES):
            target = versions[1] if current == versions[0] else versions[0]
            kind = "promotion" if target == versions[1] else "rollback"
            moved = time.perf_counter()
            move = registry.set_alias(name, "champion", target, reason=f"benchmark {kind}", flow_run_id=None)
            emit_alias_moved(name, usecase, move.__dict__)
            first = streak_done = None
            streak = 0
            while streak_done is None and time.perf_counter() - moved < 120:
                got = probe.post("/invocations", json=body).headers.get("X-Model-Version")
                now = time.perf_counter()
                if got == target:
                    first = first or now
                    streak += 1
                    streak_done = now if streak >= 20 else None
                else:
                    streak = 0
            timings.append((first or float("nan")) - moved)
            after_first = (first or float("nan")) - moved
            after_all = (streak_done or float("nan")) - moved
            print(
                f"move {i + 1} ({kind} {current} -> {target}): first response by {target} after "
                f"{after_first:.2f} s, 20 in a row after {after_all:.2f} s"
            )
            current = target
            time.sleep(1.0)
    stop_at["flag"] = True
    load_thread.join()
    failed = sum(v for k, v in statuses.items() if k != 200)
    print(
        f"requests: {sum(statuses.values()):,}, failed: {failed} (statuses {statuses}); versions seen: {seen}; "
        f"alias move -> serving: median {np.nanmedian(timings):.2f} s, max {np.nanmax(timings):.2f} s"
    )


def _bounded_load(url: str, body: dict, record, stop_at: dict) -> None:
    """The swap phase's load: 8 clients until the moves are done (at most 10 minutes)."""
    import httpx

    async def go() -> None:
        deadline = time.perf_counter() + 600
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:

            async def worker() -> None:
                while not stop_at["flag"] and time.perf_counter() < deadline:
                    try:
                        record(await client.post("/invocations", json=body))
                    except httpx.HTTPError:
                        record(None)

            await asyncio.gather(*(worker() for _ in range(8)))

    asyncio.run(go())


if __name__ == "__main__":
    main()
