"""Kinesis and DynamoDB adapters: leases and checkpoints on a moto server (conditional writes for real);
throttling, expired iterators and partial PutRecords failures from a client that answers as AWS does when it
throttles (moto never throttles)."""

from __future__ import annotations

import uuid

import pytest
from botocore.exceptions import ClientError

from adapters.checkpoints import CheckpointTable, LeaseLost, dynamodb_client
from adapters.kinesis import IteratorExpired, KinesisStream, StreamError, kinesis_client
from tasks.stream_leases import SHARD_END


@pytest.fixture
def table(s3_server: str) -> CheckpointTable:
    table = CheckpointTable(f"t-{uuid.uuid4().hex[:8]}", "app", "flights", dynamodb_client("us-east-1", s3_server))
    table.create()
    return table


def test_a_lease_is_exclusive_until_it_expires(table: CheckpointTable) -> None:
    assert table.acquire("s0", "a", now=100.0, ttl=10.0)
    assert not table.acquire("s0", "b", now=105.0, ttl=10.0)
    assert table.acquire("s0", "a", now=105.0, ttl=10.0)  # renewing by taking again is fine
    assert table.acquire("s0", "b", now=116.0, ttl=10.0)  # a's lease expired at 115
    assert table.row("s0").owner == "b"


def test_a_consumer_that_lost_its_lease_can_neither_begin_nor_commit(table: CheckpointTable) -> None:
    table.acquire("s0", "a", now=100.0, ttl=10.0)
    table.begin("s0", "a", "1", "200")
    assert table.row("s0").pending == ("1", "200")
    table.acquire("s0", "b", now=111.0, ttl=10.0)
    with pytest.raises(LeaseLost):
        table.commit("s0", "a", "200")
    with pytest.raises(LeaseLost):
        table.begin("s0", "a", "201", "400")
    with pytest.raises(LeaseLost):
        table.renew("s0", "a", now=112.0, ttl=10.0)
    row = table.row("s0")
    assert row.checkpoint is None and row.pending == ("1", "200")  # b must replay exactly 1..200
    table.commit("s0", "b", "200")
    row = table.row("s0")
    assert row.checkpoint == "200" and row.pending is None


def test_finish_marks_the_shard_done_and_frees_it_and_workers_are_counted(table: CheckpointTable) -> None:
    table.acquire("s0", "a", now=100.0, ttl=10.0)
    table.finish("s0", "a")
    row = table.row("s0")
    assert row.checkpoint == SHARD_END and row.finished and row.owner is None
    table.heartbeat("a", now=100.0, ttl=10.0)
    table.heartbeat("b", now=100.0, ttl=3.0)
    assert table.live_workers(now=105.0) == 1
    table.leave("a")
    assert table.live_workers(now=101.0) == 1
    assert set(table.rows()) == {"s0"}  # heartbeats are not shards


def test_a_missing_table_is_named(s3_server: str) -> None:
    from adapters.checkpoints import CheckpointError

    missing = CheckpointTable("no-such-table", "app", "flights", dynamodb_client("us-east-1", s3_server))
    with pytest.raises(CheckpointError, match="no-such-table"):
        missing.rows()


def test_a_stream_on_moto_lists_shards_reads_and_puts(s3_server: str) -> None:
    stream = KinesisStream(f"s-{uuid.uuid4().hex[:8]}", kinesis_client("us-east-1", s3_server))
    stream.create(2)
    sequences = stream.put([(f"k{i}", f"{i}".encode()) for i in range(20)])
    shards = stream.list_shards()
    assert len(shards) == 2 and all(s.ending_sequence is None for s in shards)
    read = []
    for shard in shards:
        result = stream.read(shard.shard_id, stream.iterator(shard.shard_id, None, "TRIM_HORIZON"), 100)
        read += [(r.partition_key, r.sequence_number, r.data) for r in result.records]
        assert result.next_iterator is not None
    assert sorted(read) == sorted((f"k{i}", s, f"{i}".encode()) for i, s in enumerate(sequences))
    with pytest.raises(StreamError, match="not found"):
        KinesisStream("no-such-stream", kinesis_client("us-east-1", s3_server)).list_shards()


def _error(code: str, status: int = 400) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": code}, "ResponseMetadata": {"HTTPStatusCode": status}}, "Op")


class _Throttling:
    """Answers the way Kinesis does under load: a few throttles first, partial PutRecords failures."""

    def __init__(self, throttles: int) -> None:
        self.throttles, self.calls, self.puts = throttles, 0, []

    def get_records(self, **_: object) -> dict:
        self.calls += 1
        if self.calls <= self.throttles:
            raise _error("ProvisionedThroughputExceededException")
        return {"Records": [], "NextShardIterator": "next", "MillisBehindLatest": 0}

    def put_records(self, StreamName: str, Records: list[dict]) -> dict:
        self.puts.append([r["PartitionKey"] for r in Records])
        first = len(self.puts) == 1
        results = [
            {"ErrorCode": "ProvisionedThroughputExceededException"} if first and i % 2 else {"SequenceNumber": f"{i}"}
            for i, _ in enumerate(Records)
        ]
        return {"FailedRecordCount": sum("ErrorCode" in r for r in results), "Records": results}


def test_throttled_reads_back_off_and_succeed() -> None:
    waits: list[float] = []
    stream = KinesisStream("s", _Throttling(throttles=3), backoff=(100, 1000), sleep=waits.append)
    assert stream.read("shard", "it", 10).next_iterator == "next"
    assert len(waits) == 3 and all(0 <= w <= 1.0 for w in waits) and stream.throttled == 3


def test_reads_throttled_beyond_every_retry_fail_naming_the_stream() -> None:
    stream = KinesisStream("flights", _Throttling(throttles=99), attempts=4, sleep=lambda _: None)
    with pytest.raises(StreamError, match=r"flights.*4 tries.*ProvisionedThroughputExceeded"):
        stream.read("shard", "it", 10)


def test_an_expired_iterator_is_reported_for_a_fresh_one() -> None:
    class Expired:
        def get_records(self, **_: object) -> dict:
            raise _error("ExpiredIteratorException")

    with pytest.raises(IteratorExpired):
        KinesisStream("s", Expired(), sleep=lambda _: None).read("shard", "it", 10)


def test_put_retries_only_the_entries_the_stream_refused() -> None:
    client = _Throttling(throttles=0)
    stream = KinesisStream("s", client, sleep=lambda _: None)
    sequences = stream.put([(f"k{i}", b"x") for i in range(6)])
    assert client.puts == [["k0", "k1", "k2", "k3", "k4", "k5"], ["k1", "k3", "k5"]]
    assert all(sequences)
