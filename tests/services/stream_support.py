"""Helpers of the stream tests: a config pointing at the test's moto server, streams, outputs read back."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[2]
USECASE = "flight_delay"


def stream_config(base_config: Path, target: Path, endpoint: str, **stream: object) -> Path:
    """A copy of the session's config whose ``stream:`` points at ``endpoint`` with short leases and batches."""
    shutil.copytree(base_config, target)
    base = yaml.safe_load((target / "base.yaml").read_text())
    base["stream"] = {
        **base.get("stream", {}),
        "endpoint_url": endpoint,
        "name": f"in-{uuid.uuid4().hex[:8]}",
        "checkpoint_table": f"ckpt-{uuid.uuid4().hex[:8]}",
        "batch_max_rows": 200,
        "batch_max_ms": 200,
        "idle_poll_ms": 50,
        "lease_seconds": 3.0,
        "shard_sync_seconds": 1.0,
        "model_refresh_seconds": 0.5,
        **stream,
    }
    (target / "base.yaml").write_text(yaml.safe_dump(base))
    return target


def load_stream_settings(config: Path):
    from tasks.stream_settings import StreamSettings

    return StreamSettings.model_validate(yaml.safe_load((config / "base.yaml").read_text())["stream"])


def outputs(home: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every scored row and every dead-lettered record under ``home``'s lake, with the file each came from."""
    root = home / "lake" / USECASE / "predictions"
    scored = [_read(p) for p in sorted(root.glob("batch=*/model=*/*.parquet"))]
    dead = [_read(p) for p in sorted((root / "_dead_letter").glob("stream=*/*.parquet"))]
    return _concat(scored), _concat(dead)


def count_outputs(home: Path) -> int:
    """Rows in every output file, from the Parquet footers only (cheap enough to poll)."""
    import pyarrow.parquet as pq

    root = home / "lake" / USECASE / "predictions"
    files = [*root.glob("batch=*/model=*/*.parquet"), *(root / "_dead_letter").glob("stream=*/*.parquet")]
    total = 0
    for path in files:
        try:
            total += pq.read_metadata(path).num_rows
        except (OSError, ValueError):  # replaced while read: counted at the next poll
            continue
    return total


def _read(path: Path) -> pd.DataFrame:
    return pd.read_parquet(path).assign(file=path.name)


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    return (
        pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["partition_key", "sequence_number"])
    )


def keys(frame: pd.DataFrame) -> list[tuple[str, str]]:
    """(partition key, sequence number) of each row: how records are counted."""
    return list(zip(frame["partition_key"].astype(str), frame["sequence_number"].astype(str), strict=True))


def consumer_env(home: Path, config: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    env.update(
        MLOPS_HOME=str(home),
        MLOPS_CONFIG_DIR=str(config),
        OMP_NUM_THREADS="1",
        PYTHONUNBUFFERED="1",
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        MLFLOW_DISABLE_TELEMETRY="true",
    )
    env.pop("MLOPS_PROFILE", None)
    return env


def start_consumer(home: Path, config: Path, log: Path, *extra: str) -> subprocess.Popen:
    """``mlops stream --json`` as a real process (its own session, so a kill reaches it alone).

    Its JSON result goes to ``<log>.out``, its log lines to ``log``.
    """
    command = [sys.executable, "-m", "ops.main", "stream", "--json", *extra]
    with log.open("ab") as err, log.with_suffix(".out").open("ab") as out:
        process = subprocess.Popen(
            command, cwd=REPO, env=consumer_env(home, config), stdout=out, stderr=err, start_new_session=True
        )
    process.out_path = log.with_suffix(".out")  # type: ignore[attr-defined]
    return process


def stop_consumer(process: subprocess.Popen, timeout: float = 60) -> dict:
    """SIGTERM (a clean stop: the batch in progress finishes, shards are handed back); its JSON result."""
    os.killpg(process.pid, signal.SIGTERM)
    assert process.wait(timeout) == 0, process.out_path.read_text()[-2000:]  # type: ignore[attr-defined]
    return json.loads(process.out_path.read_text().strip().splitlines()[-1])  # type: ignore[attr-defined]


def wait_for_line(log: Path, text: str, process: subprocess.Popen, timeout: float) -> None:
    """Wait until ``text`` appears in the process's log (it started working); fail if it exits first."""
    deadline = time.monotonic() + timeout
    while text not in (log.read_text(errors="replace") if log.exists() else ""):
        if process.poll() is not None:
            raise AssertionError(f"consumer exited ({process.returncode}) before '{text}': {log.read_text()[-2000:]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"no '{text}' in {timeout:.0f} s: {log.read_text()[-2000:]}")
        time.sleep(0.2)
