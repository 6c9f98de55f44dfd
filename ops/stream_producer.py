"""The demo and benchmark producer: a curated month's rows put onto a stream at a given rate.

Each row becomes one record shaped as one row of an API request (the use case's id and the model inputs),
keyed by the id, so a key's records stay in order on one shard. Puts go in PutRecords calls of up to 500
records, paced so that the records per second match ``rate`` (None: as fast as the stream takes them).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from adapters.kinesis import KinesisStream

_MAX_PUT = 500


def produce(
    stream: KinesisStream, payloads: Sequence[tuple[str, bytes]], rate: float | None = None, *, chunk: int | None = None
) -> dict[str, Any]:
    """Put ``payloads`` (partition key, bytes) onto ``stream`` at ``rate`` records per second.

    Returns:
        Records put, seconds taken, the achieved rate, and the put time of each record (epoch seconds).
    """
    size = chunk or (_MAX_PUT if rate is None else max(1, min(_MAX_PUT, int(rate / 10) or 1)))
    started = time.time()
    put_at: list[float] = []
    for start in range(0, len(payloads), size):
        if rate:
            due = started + start / rate
            if (wait := due - time.time()) > 0:
                time.sleep(wait)
        part = payloads[start : start + size]
        stream.put(part)
        put_at += [time.time()] * len(part)
    seconds = time.time() - started
    return {
        "stream": stream.name,
        "records": len(payloads),
        "seconds": round(seconds, 3),
        "rate": round(len(payloads) / seconds, 1) if seconds else None,
        "put_at": put_at,
    }
