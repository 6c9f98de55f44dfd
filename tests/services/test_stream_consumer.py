"""The stream consumer in this process against a moto server started by the test: dead-letter reasons, shard
splits, the output stream, a promotion in the middle of the stream. Crash and two-consumer tests (real
processes, SIGKILL) are in test_stream_processes.py."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
from conftest import MODEL, USECASE
from stream_support import keys, load_stream_settings, outputs, stream_config

from adapters.model_holder import ModelHolder
from adapters.storage import LocalStorage
from flows.context import build_context
from services.stream_consumer import StreamConsumer
from services.stream_runner import streams
from tasks.streaming import row_payloads
from tasks.training import model_inputs


@pytest.fixture
def stream_env(served, service_env: Path, s3_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A fresh home, a config whose stream and checkpoint table live on the test's moto server."""

    def make(shards: int = 2, **stream: object) -> dict:
        config = stream_config(
            served["config"], tmp_path / f"config-{len(list(tmp_path.iterdir()))}", s3_server, **stream
        )
        monkeypatch.setenv("MLOPS_CONFIG_DIR", str(config))
        settings = load_stream_settings(config)
        source, output, table = streams(settings)
        source.create(shards)
        if output is not None:
            output.create(1)
        table.create()
        return {
            "home": service_env,
            "config": config,
            "settings": settings,
            "source": source,
            "output": output,
            "table": table,
        }

    return make


@pytest.fixture
def champion_restored(served):
    yield
    build_context().registry().set_alias(
        MODEL, "champion", served["versions"][-1], reason="test cleanup", flow_run_id=None
    )


def _payloads(frame: pd.DataFrame, rows: int, start: int = 0) -> list[tuple[str, bytes]]:
    uc = build_context().usecase
    return row_payloads(frame.iloc[start : start + rows], (uc.id_column, *model_inputs(uc)), uc.id_column)


def _consumer(env: dict, worker: str = "test-worker") -> tuple[StreamConsumer, ModelHolder]:
    ctx = build_context()
    holder = ModelHolder(ctx.registry(), ctx.usecase, download_root=f"{ctx.settings.home}/models", poll_seconds=0.5)
    holder.start()
    root = str(env["home"] / "lake" / USECASE / "predictions")
    consumer = StreamConsumer(
        env["settings"], env["source"], env["table"], holder, LocalStorage(), root, worker, env["output"]
    )
    return consumer, holder


def _drain(env: dict, idle: float = 2.0) -> dict:
    consumer, holder = _consumer(env)
    try:
        return consumer.run(threading.Event(), idle_exit_seconds=idle).__dict__
    finally:
        holder.stop()


def _good_record(served: dict, i: int) -> dict:
    return json.loads(_payloads(served["feb_frame"], 1, i)[0][1])


def test_malformed_records_land_in_the_dead_letter_with_their_reason_and_the_rest_is_scored(served, stream_env):
    env = stream_env(shards=2, output_stream="scores-out")
    good = _good_record(served, 0)
    bad: dict[str, bytes] = {
        "empty payload": b"",
        "not UTF-8 text": b"\xff\xfe\x00garbage",
        "not JSON": b"{'single': 'quotes'}",
        "not a finite number: NaN": json.dumps({**good, "distance": float("nan")}).encode(),
        "not a JSON object but a JSON list": json.dumps([good]).encode(),
        "field 'carrier': missing required field": json.dumps(
            {k: v for k, v in good.items() if k != "carrier"}
        ).encode(),
        "field 'distance': expected a number, got a string": json.dumps({**good, "distance": "far"}).encode(),
        "field 'distanse': unknown field (did you mean 'distance'?)": json.dumps({**good, "distanse": 1}).encode(),
        "field 'distance': value 99999.0 is outside the contract's range": json.dumps(
            {**good, "distance": 99999}
        ).encode(),
        "field 'sched_dep_local': null is not allowed": json.dumps({**good, "sched_dep_local": None}).encode(),
        "is not an ISO 8601 date-time": json.dumps({**good, "sched_dep_local": "yesterday"}).encode(),
        "expected a local date-time without a UTC offset": json.dumps(
            {**good, "sched_dep_local": "2013-02-01T06:00:00+00:00"}
        ).encode(),
    }
    fine = _payloads(served["feb_frame"], 300, 1)
    mixed = fine[:150] + [(f"bad-{i}", data) for i, data in enumerate(bad.values())] + fine[150:]
    sequences = env["source"].put(mixed)
    stats = _drain(env)

    scored, dead = outputs(env["home"])
    assert len(scored) == len(fine) and len(dead) == len(bad) == stats["dead_lettered"]
    assert sorted(keys(scored) + keys(dead)) == sorted(zip([k for k, _ in mixed], sequences, strict=True))
    by_key = dead.set_index("partition_key")
    for i, (reason, data) in enumerate(bad.items()):
        row = by_key.loc[f"bad-{i}"]
        assert reason in row["reason"], (reason, row["reason"])
        assert bytes(row["payload"]) == data  # the raw bytes, to inspect or replay
        assert row["stream"] == env["settings"].name and row["shard_id"].startswith("shardId-")
    assert scored["model_version"].astype(str).unique().tolist() == [served["versions"][-1]]
    assert {"distance", "carrier", "probability", "model_run_id", "model_alias", "shard_id", "sequence_number"} <= set(
        scored.columns
    )
    # the output stream got every scored row, naming where each came from
    out = env["output"]
    shard = out.list_shards()[0].shard_id
    read = out.read(shard, out.iterator(shard, None, "TRIM_HORIZON"), 10_000)
    bodies = [json.loads(r.data) for r in read.records]
    assert sorted((b["shard_id"], b["sequence_number"]) for b in bodies) == sorted(
        zip(scored["shard_id"], scored["sequence_number"], strict=True)
    )
    # checkpoints moved to the last record of every shard
    rows = env["table"].rows()
    last = {}
    for (_, seq), (shard_id, *_) in zip(
        keys(pd.concat([scored, dead])), pd.concat([scored, dead])[["shard_id"]].itertuples(index=False), strict=True
    ):
        last[shard_id] = max(last.get(shard_id, 0), int(seq))
    assert {s: int(rows[s].checkpoint) for s in last} == last


def test_a_split_shard_is_read_to_its_end_before_its_children_are_taken(served, stream_env):
    """moto keeps routing puts to a split parent (AWS sends them to the children): the children stay empty here,
    so what this checks is the order of leases; the order of records is tests/unit/test_stream_leases.py's."""
    env = stream_env(shards=1)
    source = env["source"]
    first = _payloads(served["feb_frame"], 400)
    before = source.put(first)
    parent = source.list_shards()[0].shard_id
    source.client.split_shard(StreamName=source.name, ShardToSplit=parent, NewStartingHashKey=str(2**127))
    second = _payloads(served["feb_frame"], 400, 400)
    after = source.put(second)
    stats = _drain(env)

    scored, dead = outputs(env["home"])
    assert dead.empty and stats["shards_finished"] == 1
    expected = list(zip([k for k, _ in first + second], before + after, strict=True))
    assert sorted(keys(scored)) == sorted(expected)
    rows = env["table"].rows()
    children = {s.shard_id for s in source.list_shards() if s.parents == (parent,)}
    assert len(children) == 2 and rows[parent].finished
    assert children <= set(rows)  # taken once the parent was finished (they have rows only once leased)
    assert stats["leases_taken"] == 3


def test_a_promotion_during_the_stream_swaps_versions_without_a_failed_record(served, stream_env, champion_restored):
    old, new = served["versions"]
    registry = build_context().registry()
    registry.set_alias(MODEL, "champion", old, reason="stream test: start on the old version", flow_run_id=None)
    env = stream_env(shards=2)
    consumer, holder = _consumer(env)
    stop = threading.Event()
    thread = threading.Thread(target=consumer.run, args=(stop,), daemon=True)
    thread.start()
    frame, sent, start = served["feb_frame"], [], 0
    try:
        for _ in range(3):
            payloads = _payloads(frame, 100, start)
            sent += list(zip([k for k, _ in payloads], env["source"].put(payloads), strict=True))
            start += 100
            time.sleep(0.3)
        registry.set_alias(MODEL, "champion", new, reason="stream test: promotion", flow_run_id=None)
        deadline = time.monotonic() + 120
        while new not in set(outputs(env["home"])[0].get("model_version", pd.Series(dtype=str)).astype(str)):
            assert time.monotonic() < deadline, "the new version never scored"
            payloads = _payloads(frame, 50, start)
            sent += list(zip([k for k, _ in payloads], env["source"].put(payloads), strict=True))
            start += 50
            time.sleep(0.3)
        final = _payloads(frame, 200, start)
        final_keys = list(zip([k for k, _ in final], env["source"].put(final), strict=True))
        sent += final_keys
        while len(outputs(env["home"])[0]) + len(outputs(env["home"])[1]) < len(sent):
            assert time.monotonic() < deadline + 120, "not every record was scored"
            time.sleep(0.3)
    finally:
        stop.set()
        thread.join(60)
        holder.stop()

    scored, dead = outputs(env["home"])
    assert dead.empty  # none failed across the swap
    assert sorted(keys(scored)) == sorted(sent)
    versions = dict(zip(keys(scored), scored["model_version"].astype(str), strict=True))
    assert {versions[k] for k in final_keys} == {new}  # records after the swap carry the new version
    assert old in set(versions.values())
    for _, shard in scored.assign(seq=scored["sequence_number"].astype(int)).sort_values("seq").groupby("shard_id"):
        order = shard["model_version"].astype(str).tolist()
        assert order == sorted(order, key=lambda v: v != old)  # once the new version scores, the old never does
