"""The consumer as real processes on a moto server started by the test: SIGKILLed at random moments and
restarted, nothing is lost or duplicated; two consumers share 4 shards, one dies, the other finishes.

Records are counted by (partition key, sequence number) across scored output and dead-letter. The crash test
uses 20k records by default; ``MLOPS_STREAM_CRASH_RECORDS=100000`` runs the issue's full 100k (many minutes
on a busy 2-core machine).
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
from stream_support import (
    count_outputs,
    keys,
    load_stream_settings,
    outputs,
    start_consumer,
    stop_consumer,
    stream_config,
    wait_for_line,
)

from flows.settings import load_usecase
from services.stream_runner import streams
from tasks.streaming import row_payloads
from tasks.training import model_inputs

pytestmark = pytest.mark.slow
CRASH_RECORDS = int(os.environ.get("MLOPS_STREAM_CRASH_RECORDS", "20000"))
KILLS = 10


def _records(frame: pd.DataFrame, count: int) -> list[tuple[str, bytes]]:
    """``count`` records cycling through the month's rows, each round with keys of its own."""
    uc = load_usecase("flight_delay")
    base = row_payloads(frame, (uc.id_column, *model_inputs(uc)), uc.id_column)
    return [(f"{base[i % len(base)][0]}#{i // len(base)}", base[i % len(base)][1]) for i in range(count)]


@pytest.fixture
def four_shards(served, service_env: Path, s3_server: str, tmp_path: Path) -> dict:
    config = stream_config(served["config"], tmp_path / "config", s3_server)
    settings = load_stream_settings(config)
    source, _, table = streams(settings)
    source.create(4)
    table.create()
    return {"home": service_env, "config": config, "source": source, "table": table, "logs": tmp_path}


class _Producer(threading.Thread):
    """Puts the records at a rate in the background and remembers (key, sequence number) of each."""

    def __init__(self, source, records: list[tuple[str, bytes]], rate: float) -> None:
        super().__init__(daemon=True)
        self.source, self.records, self.rate = source, records, rate
        self.sent: list[tuple[str, str]] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            for start in range(0, len(self.records), 2000):
                part = self.records[start : start + 2000]
                before = time.monotonic()
                sequences = self.source.put(part)
                self.sent += list(zip([k for k, _ in part], sequences, strict=True))
                time.sleep(max(0.0, len(part) / self.rate - (time.monotonic() - before)))
        except BaseException as exc:
            self.error = exc


def _wait_all(home: Path, producer: _Producer, total: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        done = count_outputs(home)
        if len(producer.sent) == total and done >= total:
            return
        assert producer.error is None, producer.error
        assert time.monotonic() < deadline, f"{done} of {total} records out after {timeout:.0f} s"
        time.sleep(2.0)


@pytest.mark.timeout(3600)  # ten restarts of a real process, each waiting for the dead one's leases
def test_sigkilled_consumer_restarted_ten_times_loses_and_duplicates_nothing(served, four_shards):
    env, rng = four_shards, random.Random(14)
    records = _records(served["feb_frame"], CRASH_RECORDS)
    producer = _Producer(env["source"], records, rate=max(200.0, CRASH_RECORDS / 90))
    producer.start()
    for kill in range(KILLS):
        log = env["logs"] / f"consumer-{kill}.log"
        process = start_consumer(env["home"], env["config"], log)
        wait_for_line(log, "took shard", process, timeout=300)
        time.sleep(rng.uniform(0.2, 2.5))  # a random moment of its work: reading, scoring, writing, committing
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(30)
    log = env["logs"] / "consumer-final.log"
    final = start_consumer(env["home"], env["config"], log)
    _wait_all(env["home"], producer, CRASH_RECORDS, timeout=1800)
    producer.join()
    stats = stop_consumer(final)

    scored, dead = outputs(env["home"])
    found = keys(scored) + keys(dead)
    assert len(found) == len(set(found)), "a record appears twice"
    assert sorted(found) == sorted(producer.sent)
    assert stats["ok"] is True
    replays = sum((env["logs"] / f"consumer-{i}.log").read_text().count("replays to") for i in range(KILLS))
    print(
        f"{CRASH_RECORDS} records, {KILLS} SIGKILLs, {replays} half-written ranges replayed, "
        f"{len(scored)} scored, {len(dead)} dead-lettered"
    )


@pytest.mark.timeout(1800)
def test_two_consumers_share_four_shards_and_the_survivor_finishes_a_dead_ones_shards(served, four_shards):
    env = four_shards
    total = 8000
    producer = _Producer(env["source"], _records(served["feb_frame"], total), rate=200.0)
    logs = [env["logs"] / f"pair-{i}.log" for i in range(2)]
    first, second = (start_consumer(env["home"], env["config"], log) for log in logs)
    for process, log in ((first, logs[0]), (second, logs[1])):
        wait_for_line(log, "took shard", process, timeout=300)
    producer.start()
    deadline = time.monotonic() + 300
    while len(set(outputs(env["home"])[0].get("flow_run_id", pd.Series(dtype=str)).astype(str))) < 2:
        assert time.monotonic() < deadline, "the two consumers never both scored"
        time.sleep(0.5)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(30)
    _wait_all(env["home"], producer, total, timeout=900)
    producer.join()
    survivor = stop_consumer(second)["result"]["worker"]

    scored, dead = outputs(env["home"])
    found = keys(scored) + keys(dead)
    assert len(found) == len(set(found)) and sorted(found) == sorted(producer.sent) and dead.empty
    batches = (
        scored.assign(seq=scored["sequence_number"].astype(int))
        .groupby("file")
        .agg(
            shard=("shard_id", "first"), first=("seq", "min"), worker=("flow_run_id", "first"), at=("scored_at", "min")
        )
    )
    for shard, rows in batches.sort_values("first").groupby("shard"):
        # one writer at a time: batches follow each other in stream order and in time, whoever wrote them
        assert rows["at"].is_monotonic_increasing, shard
        assert rows["worker"].iloc[-1] == survivor, shard  # the survivor finished every shard
    assert len(set(batches["worker"])) == 2 and survivor in set(batches["worker"])
