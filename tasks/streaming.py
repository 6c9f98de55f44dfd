"""Streaming scoring logic: stream settings, records decoded into contract-typed rows, batch cuts, file names.

Pure: records and plain values in, frames and plain values out; the Kinesis and DynamoDB calls live in
``adapters.kinesis`` / ``adapters.checkpoints`` and the loop in ``services.stream_consumer``.

A record is one JSON object shaped like one row of an API request: the model's input fields and optionally the
use case's id (its partition key otherwise). Fields and types are checked by the API's own code
(``tasks.serving``), row rules by batch scoring's (``tasks.scoring.check_rows`` inside ``score_chunk``). A record
that cannot become a row or breaks a row rule goes to the dead-letter with its reason, never blocking the others.
Table-level rules (null shares over a batch) have no meaning for one record and are not applied to streams.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from tasks import scoring, serving
from tasks.serving import RequestError, ServingContract
from tasks.stream_settings import StreamSettings

# AWS sequence numbers are decimal strings of up to 56 digits today; padded to 64, names sort in stream order
_SEQUENCE_DIGITS = 64
MAX_RECORD_BYTES = 1_048_576  # Kinesis' own limit per record


@dataclass(frozen=True)
class StreamRecord:
    """One record as read from a shard: where it is, its key, its bytes and when the stream accepted it."""

    shard_id: str
    sequence_number: str
    partition_key: str
    data: bytes
    arrived_at: datetime


@dataclass(frozen=True)
class Decoded:
    """A batch's records as rows: ``frame`` (contract-typed) from records ``rows``; the others with reasons."""

    frame: pd.DataFrame
    rows: tuple[int, ...]
    rejected: tuple[tuple[int, str], ...]


class _NonFinite(ValueError):
    pass


def _refuse_constant(name: str) -> float:
    raise _NonFinite(name)


def parse_payload(data: bytes) -> tuple[Any, str | None]:
    """One record's bytes as a JSON object, or the reason it is not one (None: fine)."""
    if not data.strip():
        return None, "empty payload"
    if len(data) > MAX_RECORD_BYTES:
        return None, f"payload larger than {MAX_RECORD_BYTES} bytes"
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, f"not UTF-8 text (byte {exc.start})"
    try:
        parsed = json.loads(text, parse_constant=_refuse_constant)
    except _NonFinite as exc:
        return None, f"not a finite number: {exc}"
    except (json.JSONDecodeError, RecursionError) as exc:
        return None, f"not JSON: {str(exc)[:120]}"
    if not isinstance(parsed, dict):
        return None, f"not a JSON object but a JSON {type(parsed).__name__}"
    return parsed, None


def decode_records(records: list[StreamRecord], contract: ServingContract) -> Decoded:
    """Parse JSON records and type them with the served version's contract, as the API does its requests.

    The typing and field rules are the API's (``tasks.serving.records_frame``): one implementation for both.
    Where the API refuses a whole request, a stream refuses only the records at fault. A record without an id
    gets its partition key as id.
    """
    parsed, rejected = [], []
    for index, record in enumerate(records):
        value, reason = parse_payload(record.data)
        if reason is None:
            parsed.append((index, value))
        else:
            rejected.append((index, reason))
    try:
        frame = _typed_frame(records, parsed, contract)
    except RequestError as exc:
        bad: dict[int, list[str]] = {}
        for problem in exc.problems:
            where = f"field '{problem.field}': " if problem.field else ""
            bad.setdefault(problem.row if problem.row is not None else -1, []).append(where + problem.reason)
        if -1 in bad:  # a problem with no row: every record of the batch is at fault
            bad = {row: bad[-1] for row in range(len(parsed))}
        rejected += [(parsed[row][0], "; ".join(reasons)) for row, reasons in bad.items()]
        parsed = [item for row, item in enumerate(parsed) if row not in bad]
        frame = _typed_frame(records, parsed, contract)
    return Decoded(frame, tuple(i for i, _ in parsed), tuple(sorted(rejected)))


def _typed_frame(records: list[StreamRecord], parsed: list[tuple[int, Any]], contract: ServingContract) -> pd.DataFrame:
    ids = [records[i].partition_key for i, _ in parsed]
    return serving.records_frame([value for _, value in parsed], contract, ids)


def refused_rows(frame: pd.DataFrame, failed: np.ndarray, reasons: np.ndarray, contract: ServingContract) -> list[str]:
    """Readable reason of each row the contract's row checks refused (the API's wording), in row order."""
    by_row: dict[int, list[str]] = {}
    for problem in serving.contract_problems(frame, failed, reasons, contract.row_specs):
        where = f"field '{problem.field}': " if problem.field else ""
        by_row.setdefault(problem.row if problem.row is not None else -1, []).append(where + problem.reason)
    return ["; ".join(by_row.get(int(row), ["fails the contract"])) for row in np.flatnonzero(failed)]


# --- micro-batches --------------------------------------------------------------------------------------


def batch_due(rows: int, oldest_ms: float | None, now_ms: float, settings: StreamSettings) -> bool:
    """Whether a shard's pending records form a batch now: enough rows, or the oldest has waited long enough."""
    if rows == 0 or oldest_ms is None:
        return False
    return rows >= settings.batch_max_rows or now_ms - oldest_ms >= settings.batch_max_ms


def backoff_ms(attempt: int, base_ms: int, cap_ms: int, jitter: float) -> float:
    """Delay before retry ``attempt`` (0-based): exponential, capped, "full jitter" (``jitter`` in [0, 1)).

    Full jitter spreads the retries of consumers throttled at the same moment instead of syncing them.
    """
    if attempt < 0 or not 0.0 <= jitter <= 1.0:
        raise ValueError(f"attempt {attempt} / jitter {jitter} out of range")
    return min(cap_ms, base_ms * 2 ** min(attempt, 30)) * jitter


# --- names, ranges, lineage -----------------------------------------------------------------------------


def sequence_key(sequence_number: str) -> str:
    """A sequence number padded so that names sort in stream order."""
    if not sequence_number.isdigit():
        raise ValueError(f"not a Kinesis sequence number: {sequence_number!r}")
    return sequence_number.zfill(_SEQUENCE_DIGITS)


def range_name(first: str, last: str) -> str:
    """File name of a batch's output: its first and last sequence number, so a replay rewrites the same file."""
    if int(first) > int(last):
        raise ValueError(f"sequence range {first}..{last} is reversed")
    return f"seq-{sequence_key(first)}-{sequence_key(last)}.parquet"


def parse_range_name(name: str) -> tuple[str, str]:
    """Inverse of ``range_name``: the first and last sequence number (unpadded)."""
    stem = name.rsplit("/", 1)[-1].removesuffix(".parquet")
    prefix, first, last = stem.rsplit("-", 3)[-3:]
    if prefix != "seq":
        raise ValueError(f"not a stream output file: {name!r}")
    return str(int(first)), str(int(last))


def window_batch_id(stream: str, at: datetime) -> str:
    """Batch id (and folder) of the hour a record arrived in, as the API's log: ``stream-<name>-20250131T14``.

    The arrival time is the stream's own stamp of the batch's first record, so a replay finds the same folder.
    """
    return scoring.safe_value(f"stream-{stream}-{at.astimezone(UTC):%Y%m%dT%H}")


def part_name(shard_id: str, first: str, last: str) -> str:
    """File name of a batch's scores or dead-letter: shard and sequence range (a replay rewrites the same file)."""
    return f"{scoring.safe_value(shard_id)}-{range_name(first, last)}"


def dead_letter_frame(
    records: list[StreamRecord], rejected: list[tuple[int, str]], stream: str, model_version: str
) -> pd.DataFrame:
    """Refused records with everything needed to replay or inspect them: raw bytes, place, reason."""
    picked = [(records[i], reason) for i, reason in rejected]
    return pd.DataFrame(
        {
            "stream": pd.array([stream] * len(picked), dtype="str"),
            "shard_id": pd.array([r.shard_id for r, _ in picked], dtype="str"),
            "sequence_number": pd.array([r.sequence_number for r, _ in picked], dtype="str"),
            "partition_key": pd.array([r.partition_key for r, _ in picked], dtype="str"),
            "payload": pd.Series([r.data for r, _ in picked], dtype="object"),
            "arrived_at": pd.to_datetime(pd.Series([r.arrived_at for r, _ in picked], dtype="object"), utc=True),
            "reason": pd.array([reason for _, reason in picked], dtype="str"),
            "model_version": pd.array([model_version] * len(picked), dtype="str"),
        }
    )


def stream_columns(records: list[StreamRecord], rows: list[int]) -> dict[str, object]:
    """The columns a stream adds to each scored row: where its record was, its key and when it arrived."""
    picked = [records[i] for i in rows]
    return {
        "shard_id": pd.array([r.shard_id for r in picked], dtype="str"),
        "sequence_number": pd.array([r.sequence_number for r in picked], dtype="str"),
        "partition_key": pd.array([r.partition_key for r in picked], dtype="str"),
        "arrived_at": pd.to_datetime(pd.Series([r.arrived_at for r in picked], dtype="object"), utc=True).array,
    }


# --- producing -------------------------------------------------------------------------------------------


def row_payloads(frame: pd.DataFrame, fields: tuple[str, ...], key_column: str) -> list[tuple[str, bytes]]:
    """Rows as (partition key, JSON object) records, shaped as the API takes a row: times ISO, nulls null.

    Raises:
        ValueError: a field is not a column of ``frame``.
    """
    missing = [f for f in (*fields, key_column) if f not in frame.columns]
    if missing:
        raise ValueError(f"column(s) {', '.join(missing)} not in the rows to produce")
    part = frame.loc[:, list(dict.fromkeys(fields))]
    records = json.loads(part.to_json(orient="records", date_format="iso", date_unit="s"))
    keys = frame[key_column].astype("str").tolist()
    return [(key, json.dumps(rec, separators=(",", ":")).encode()) for key, rec in zip(keys, records, strict=True)]
