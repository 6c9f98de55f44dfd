"""Amazon Kinesis Data Streams through boto3: shards, iterators, reads with backoff, puts with retries.

Locally and in tests the endpoint is a moto server (the stack's S3 API serves Kinesis on the same port).
Throttling (``ProvisionedThroughputExceededException``, ``LimitExceededException``, KMS throttling, 5xx) is
retried with capped exponential backoff and full jitter; an expired iterator is reported to the caller as
``IteratorExpired`` so it can ask for a fresh one after the last record it has. Every other failure is a
``StreamError`` naming the stream.
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tasks.errors import MlopsError
from tasks.stream_leases import ShardInfo
from tasks.streaming import StreamRecord, backoff_ms

_THROTTLED = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "LimitExceededException",
        "KMSThrottlingException",
        "ThrottlingException",
        "InternalFailure",
        "ServiceUnavailable",
    }
)
_PUT_BATCH = 500  # PutRecords takes at most 500 entries


class StreamError(MlopsError):
    """The stream does not exist, refused a request, or stayed throttled through every retry."""


class IteratorExpired(MlopsError):
    """A shard iterator expired (unused for 5 minutes): get a new one after the last record read."""


@dataclass(frozen=True)
class ReadResult:
    """One GetRecords answer: records, the next iterator (None: the shard is closed and fully read), lag."""

    records: list[StreamRecord]
    next_iterator: str | None
    millis_behind: int


def kinesis_client(region: str, endpoint_url: str | None) -> Any:
    import boto3
    from botocore.config import Config

    # retries are ours (backoff with jitter, per call kind); botocore's own would hide throttling from us
    config = Config(retries={"max_attempts": 1, "mode": "standard"}, connect_timeout=5, read_timeout=30)
    return boto3.client("kinesis", region_name=region, endpoint_url=endpoint_url, config=config)


class KinesisStream:
    """One stream.

    Args:
        name: Stream name.
        client: A boto3 Kinesis client (``kinesis_client``).
        backoff: (base, cap) of the retry delay in milliseconds.
        attempts: Tries per call before a throttled call fails.
        sleep: Waits between retries (a test passes its own to count them).
    """

    def __init__(
        self,
        name: str,
        client: Any,
        *,
        backoff: tuple[int, int] = (100, 5000),
        attempts: int = 10,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.name, self.client, self.backoff, self.attempts, self.sleep = name, client, backoff, attempts, sleep
        self.throttled = 0  # calls retried after throttling, for metrics and tests

    # --- set-up (local stack, tests, demos; production streams come from terraform) ----------------------

    def create(self, shards: int, wait_seconds: float = 30.0) -> None:
        """Create the stream with ``shards`` shards unless it exists; wait until it is active."""
        with contextlib.suppress(self.client.exceptions.ResourceInUseException):
            self.client.create_stream(StreamName=self.name, ShardCount=shards)
        deadline = time.monotonic() + wait_seconds
        while (
            self._call(lambda: self.client.describe_stream_summary(StreamName=self.name))["StreamDescriptionSummary"][
                "StreamStatus"
            ]
            != "ACTIVE"
        ):
            if time.monotonic() > deadline:
                raise StreamError(f"stream '{self.name}' did not become active in {wait_seconds:.0f} s")
            self.sleep(0.2)

    # --- reading -------------------------------------------------------------------------------------

    def list_shards(self) -> list[ShardInfo]:
        """Every shard the stream still holds, open and closed, with its parents."""
        shards, token = [], None
        while True:
            kwargs = {"NextToken": token} if token else {"StreamName": self.name}
            page = self._call(lambda kwargs=kwargs: self.client.list_shards(**kwargs))
            for item in page.get("Shards", []):
                parents = tuple(p for p in (item.get("ParentShardId"), item.get("AdjacentParentShardId")) if p)
                ending = item.get("SequenceNumberRange", {}).get("EndingSequenceNumber")
                shards.append(ShardInfo(item["ShardId"], parents, ending))
            token = page.get("NextToken")
            if not token:
                return shards

    def iterator(self, shard_id: str, after: str | None, initial: str) -> str:
        """An iterator after sequence number ``after``, or at ``initial`` (TRIM_HORIZON / LATEST) without one."""
        kwargs: dict[str, Any] = {"StreamName": self.name, "ShardId": shard_id}
        if after is not None:
            kwargs.update(ShardIteratorType="AFTER_SEQUENCE_NUMBER", StartingSequenceNumber=after)
        else:
            kwargs.update(ShardIteratorType=initial)
        return self._call(lambda: self.client.get_shard_iterator(**kwargs))["ShardIterator"]

    def read(self, shard_id: str, iterator: str, limit: int) -> ReadResult:
        """One GetRecords call (retried while throttled).

        Raises:
            IteratorExpired: the iterator is too old; ask for a new one.
        """
        answer = self._call(lambda: self.client.get_records(ShardIterator=iterator, Limit=limit))
        records = [
            StreamRecord(
                shard_id=shard_id,
                sequence_number=item["SequenceNumber"],
                partition_key=item["PartitionKey"],
                data=bytes(item["Data"]),
                arrived_at=_utc(item.get("ApproximateArrivalTimestamp")),
            )
            for item in answer.get("Records", [])
        ]
        return ReadResult(records, answer.get("NextShardIterator"), int(answer.get("MillisBehindLatest") or 0))

    # --- writing -------------------------------------------------------------------------------------

    def put(self, entries: Sequence[tuple[str, bytes]], retries: int = 8) -> list[str]:
        """PutRecords in batches of 500; entries the stream refused are sent again (with backoff).

        Returns:
            The sequence number of every entry, in order.

        Raises:
            StreamError: some entries still failed after ``retries`` rounds (their error codes named).
        """
        sequences: list[str | None] = [None] * len(entries)
        for start in range(0, len(entries), _PUT_BATCH):
            todo = list(range(start, min(start + _PUT_BATCH, len(entries))))
            for attempt in range(retries + 1):
                records = [{"PartitionKey": entries[i][0], "Data": entries[i][1]} for i in todo]
                answer = self._call(
                    lambda records=records: self.client.put_records(StreamName=self.name, Records=records)
                )
                failed, codes = [], set()
                for i, result in zip(todo, answer["Records"], strict=True):
                    if result.get("SequenceNumber"):
                        sequences[i] = result["SequenceNumber"]
                    else:
                        failed.append(i)
                        codes.add(result.get("ErrorCode", "unknown"))
                if not failed:
                    break
                if attempt == retries:
                    raise StreamError(
                        f"stream '{self.name}': {len(failed)} records still refused after {retries} retries "
                        f"({', '.join(sorted(codes))})"
                    )
                self.throttled += 1
                self.sleep(backoff_ms(attempt, *self.backoff, random.random()) / 1000)  # noqa: S311
                todo = failed
        return [s or "" for s in sequences]

    # --- retries -------------------------------------------------------------------------------------

    def _call(self, action: Callable[[], Any]) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        for attempt in range(self.attempts):
            try:
                return action()
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code", "")
                status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
                if code == "ExpiredIteratorException":
                    raise IteratorExpired(f"stream '{self.name}': shard iterator expired") from None
                if code == "ResourceNotFoundException":
                    raise StreamError(f"stream '{self.name}' not found: {exc}") from None
                if code not in _THROTTLED and status < 500:
                    raise StreamError(f"stream '{self.name}': {code}: {exc}") from None
                last = f"{code or status}"
            except BotoCoreError as exc:  # connection refused, timeouts: the endpoint is away for a moment
                last = type(exc).__name__
            if attempt + 1 < self.attempts:
                self.throttled += 1
                self.sleep(backoff_ms(attempt, *self.backoff, random.random()) / 1000)  # noqa: S311
        raise StreamError(f"stream '{self.name}': still failing after {self.attempts} tries ({last})")


def _utc(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.now(UTC)
