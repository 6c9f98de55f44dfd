"""Benchmark streaming scoring end to end and print its figures beside the batch scoring flow's on the same rows.

S1  records/s through the consumer (put -> scored in the lake) at a few producer rates, one consumer process
S2  put -> scored latency p50 / p99 at each rate (the producer's put time to the row's ``scored_at``)
S3  rows/s of the stream at the highest rate / rows/s of the batch scoring flow on the same rows
S4  peak RSS (VmHWM) of the consumer process

Setup (throw-away MLOPS_HOME, its own Prefect server and moto server on 127.0.0.1): January and February 2013
landed and ingested, a model trained on January and promoted (gate relaxed: the figures are about throughput).
Each rate gets a fresh 4-shard stream; the consumer is a real `mlops stream` process that exits once idle.

Run: .venv/bin/python bench/stream.py [--rates 250,1000,0] [--records 8000] [--home DIR (reuse a setup)]
(rate 0: as fast as the producer can put)
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="250,1000,0", help="records/s of the producer; 0 = unthrottled")
    parser.add_argument("--records", type=int, default=8000, help="records per rate")
    parser.add_argument("--home", type=Path)
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    home = args.home.resolve() if args.home else Path(tempfile.mkdtemp(prefix="bench-stream-"))
    from score import start_environment  # bench/score.py: config copy, CLI defaults, a Prefect server

    prefect = start_environment(home)
    moto, endpoint = start_moto(home)
    try:
        run(home, endpoint, [float(r) for r in args.rates.split(",")], args.records)
    finally:
        for process in (moto, prefect):
            process.terminate()
            process.wait(timeout=30)
    print(f"(state in {home})", file=sys.stderr)


def start_moto(home: Path) -> tuple[subprocess.Popen, str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # a local emulator that accepts any key: these are not credentials
    local = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1"}
    os.environ.update(local)
    log = (home / "moto.log").open("w")
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=log
    )
    import httpx

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/moto-api/", timeout=2)
            return server, f"http://127.0.0.1:{port}"
        except httpx.HTTPError:
            time.sleep(0.3)
    raise SystemExit("moto server did not start")


def setup(home: Path) -> str:
    """Two months ingested and a January model at @champion; the February snapshot's URI."""
    import yaml

    from flows.context import build_context
    from flows.ingest import ingest
    from flows.land import land
    from flows.register import register
    from flows.snapshots import latest_snapshot_uri
    from flows.train import train

    path = home / "config" / "usecases" / "flight_delay.yaml"
    data = yaml.safe_load(path.read_text())
    data["gate"] = {**data["gate"], "floors": {}, "max_brier": None, "max_calibration_error": None}
    path.write_text(yaml.safe_dump(data))
    ctx = build_context()
    if ctx.registry().get_alias(ctx.usecase.registered_model, "champion") is None:
        for month in ("2013-01", "2013-02"):
            ingest(input_uri=land(period=month)["batch_uri"])
        register(run_id=train(months="2013-01")["run_id"])
    return latest_snapshot_uri(build_context(), "2013-02")


def set_stream(home: Path, endpoint: str, name: str) -> None:
    import yaml

    path = home / "config" / "base.yaml"
    data = yaml.safe_load(path.read_text())
    data["stream"] = {**data["stream"], "endpoint_url": endpoint, "name": name, "checkpoint_table": f"t-{name}"}
    path.write_text(yaml.safe_dump(data))


def run(home: Path, endpoint: str, rates: list[float], records: int) -> None:
    import pandas as pd

    from flows.context import build_context
    from flows.score import score
    from ops.cli_stream import month_payloads
    from ops.stream_producer import produce
    from services.stream_runner import streams

    print(f"machine: {os.cpu_count()} cores, load average {load()}, OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}")
    snapshot = setup(home)
    base = month_payloads(build_context(), "2013-02", None, None)
    payloads = [(f"{base[i % len(base)][0]}#{i}", base[i % len(base)][1]) for i in range(records)]
    print(f"input: {records:,} records from the February 2013 snapshot, JSON rows of the API's shape, 4 shards")
    results = []
    for rate in rates:
        name = f"bench-{uuid.uuid4().hex[:6]}"
        set_stream(home, endpoint, name)
        ctx = build_context()
        source, _, table = streams(ctx.settings.stream)
        source.create(4)
        table.create()
        log = home / f"consumer-{name}.log"
        consumer = subprocess.Popen(
            [sys.executable, "-m", "ops.main", "stream", "--idle-exit", "4", "--json"],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=log.open("w"),
            text=True,
        )
        peak = PeakRss(consumer.pid)
        peak.start()
        while "took shard" not in log.read_text():
            if consumer.poll() is not None:
                raise SystemExit(f"consumer failed: {log.read_text()[-2000:]}")
            time.sleep(0.2)
        put = produce(source, payloads, rate or None)
        stats = json.loads(consumer.communicate(timeout=1800)[0].strip().splitlines()[-1])["result"]
        peak.done = True
        scored = pd.concat(
            pd.read_parquet(p)
            for p in (home / "lake" / "flight_delay" / "predictions").glob(f"batch=stream-{name}-*/*/*")
        )
        put_at = dict(zip([k for k, _ in payloads], put["put_at"], strict=True))
        epoch = pd.Timestamp(0, tz="UTC")
        done_at = (pd.to_datetime(scored["scored_at"], utc=True) - epoch).dt.total_seconds()
        latency = done_at.to_numpy() - scored["partition_key"].map(put_at).to_numpy()
        seconds = done_at.max() - min(put["put_at"])
        row = {
            "rate": rate or "max",
            "put_rate": put["rate"],
            "records_per_second": len(scored) / seconds,
            "p50": float(pd.Series(latency).quantile(0.5)),
            "p99": float(pd.Series(latency).quantile(0.99)),
            "peak_rss_mb": peak.peak_mb,
            "scored": len(scored),
            "batches": stats["batches"],
        }
        results.append(row)
        print(
            f"rate {row['rate']!s:>6}: put {row['put_rate']:>7,.0f} rec/s  scored {row['records_per_second']:>7,.0f} "
            f"rec/s  latency p50 {row['p50']:.2f} s  p99 {row['p99']:.2f} s  "
            f"consumer peak RSS {row['peak_rss_mb']:,.0f} MB  "
            f"({row['scored']:,} scored in {row['batches']} batches; load {load()})"
        )
    batch = score(input_uri=snapshot, output_uri=str(home / "batch-scores"))
    batch = score(input_uri=snapshot, output_uri=str(home / "batch-scores"))  # warm, as a long-lived worker
    best = max(r["records_per_second"] for r in results)
    print(
        f"batch scoring flow on the same month: {batch['rows_per_second']:,.0f} rows/s ({batch['rows_in']:,} rows)\n"
        f"S3 = stream / batch = {best:,.0f} / {batch['rows_per_second']:,.0f} = {best / batch['rows_per_second']:.3f}"
        f"   (load average {load()})"
    )


class PeakRss(threading.Thread):
    """Reads VmHWM of a process until it exits."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak_mb, self.done = pid, 0.0, False

    def run(self) -> None:
        status = Path(f"/proc/{self.pid}/status")
        while not self.done:
            try:
                line = next(x for x in status.read_text().splitlines() if x.startswith("VmHWM"))
                self.peak_mb = max(self.peak_mb, int(line.split()[1]) / 1024)
            except (OSError, StopIteration):
                return
            time.sleep(0.2)


def load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


if __name__ == "__main__":
    main()
