"""The stream consumer: scores the records of a Kinesis stream as they arrive, exactly once into the lake.

One process holds leases on some shards of the stream (its fair share among the live consumers, see
``tasks.stream_leases``) and loops over them: read records, cut a micro-batch (``batch_max_rows`` records or
``batch_max_ms``), decode and check them with the served version's contract, score them with the model holder
the REST API uses (a promotion swaps the version without a restart), write the results and the dead-letter,
put the results on the output stream if there is one, and only then move the shard's checkpoint.

Lake layout under ``root`` (``<lake>/<usecase>/predictions``, the API's prediction log: the same window folders
and lineage columns, so drift and performance checks read a stream window as they read an API window)::

    batch=stream-<name>-<YYYYMMDDTHH>/model=<version>/<shard>-seq-<first>-<last>.parquet
        inputs, scores, outlier flags, lineage, + shard_id, sequence_number, partition_key, arrived_at
    _dead_letter/stream=<name>/<shard>-seq-<first>-<last>.parquet
        raw payload, stream, shard, sequence number, partition key, arrival time, reason, model version

Exactly once into the lake: a batch's file names are its sequence range, the range is recorded in the
checkpoint table before the files are written, and a consumer that takes over a shard with a recorded range
cuts that very batch again (``adapters.checkpoints``). A replayed batch also deletes the file of the other
kind under its name, in case a promotion in between moved a record from the dead-letter to the scores. The
output stream is at least once (a replay puts the batch again); its records carry shard and sequence number
for consumers to drop repeats.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from adapters.checkpoints import CheckpointTable, LeaseLost
from adapters.compute import model_threads
from adapters.kinesis import IteratorExpired, KinesisStream
from adapters.model_holder import ModelHolder, ModelNotReady, ServedModel
from adapters.storage import Storage, join_uri, write_parquet
from tasks import scoring, serving, streaming
from tasks.privacy import apply_pii_policy
from tasks.stream_leases import LeaseRow, ShardInfo, held, plan_leases
from tasks.streaming import StreamRecord, StreamSettings

log = logging.getLogger(__name__)
DEAD_LETTER = "_dead_letter"  # hidden from Hive-style readers of the predictions root, as batch quarantines


@dataclass
class _Cursor:
    """Where this consumer is in one shard it holds."""

    shard_id: str
    after: str | None  # last sequence number read (the checkpoint until something is read)
    replay_until: str | None  # the last sequence number of a range a predecessor left half-written
    ending: str | None
    iterator: str | None = None
    buffer: list[StreamRecord] = field(default_factory=list)
    oldest_ms: float | None = None
    exhausted: bool = False
    next_poll: float = 0.0


@dataclass
class ConsumerStats:
    """What this process did: batches, records scored and dead-lettered, throttled calls, shards finished."""

    batches: int = 0
    scored: int = 0
    dead_lettered: int = 0
    replays: int = 0
    leases_taken: int = 0
    leases_lost: int = 0
    shards_finished: int = 0
    versions: dict[str, int] = field(default_factory=dict)


class StreamConsumer:
    """Scores one stream into the lake.

    Args:
        settings: The ``stream:`` settings.
        stream: The input stream.
        table: Checkpoints and leases.
        holder: The started model holder (alias-following).
        storage: Where results go (local folder or S3).
        root: Folder of the stream's outputs (``<lake>/<usecase>/stream``).
        worker: This consumer's id (unique per process: host + pid + random).
        output: The output stream, if results are also put on one.
        clock: Wall-clock seconds (leases compare it across hosts).
        pii_key: Key of the PII policy's hashed inputs (None when no model input is hashed).
    """

    def __init__(
        self,
        settings: StreamSettings,
        stream: KinesisStream,
        table: CheckpointTable,
        holder: ModelHolder,
        storage: Storage,
        root: str,
        worker: str,
        output: KinesisStream | None = None,
        clock: Callable[[], float] = time.time,
        pii_key: bytes | None = None,
    ) -> None:
        self.settings, self.stream, self.table, self.holder = settings, stream, table, holder
        self.storage, self.root, self.worker, self.output, self.clock = storage, root, worker, output, clock
        self.pii_key = pii_key  # inputs are logged after the PII policy, as the API logs them
        self.cursors: dict[str, _Cursor] = {}
        self.shards: list[ShardInfo] = []
        self.stats = ConsumerStats()

    # --- the loop ------------------------------------------------------------------------------------

    def run(self, stop: threading.Event, idle_exit_seconds: float | None = None) -> ConsumerStats:
        """Work until ``stop`` is set (or, with ``idle_exit_seconds``, once every shard is idle that long)."""
        s = self.settings
        next_sync = next_balance = 0.0
        last_work = self.clock()
        try:
            with model_threads(1):  # the product's thread policy (adapters/compute): one native thread per consumer
                while not stop.is_set():
                    now = self.clock()
                    if now >= next_sync:
                        self._sync_shards()
                        next_sync = now + s.shard_sync_seconds
                    if now >= next_balance:
                        finished_all = self._balance(now)
                        next_balance = now + s.lease_seconds / 3
                        if finished_all and idle_exit_seconds is not None:
                            break
                    worked = any([self._step(c) for c in list(self.cursors.values())])
                    if worked:
                        last_work = now
                    elif idle_exit_seconds is not None and now - last_work > idle_exit_seconds:
                        break
                    else:
                        stop.wait(s.idle_poll_ms / 1000)
        finally:
            self._let_go()
        return self.stats

    def _sync_shards(self) -> None:
        """List the shards again: new children appear, and a shard split or merged while read gets its end."""
        self.shards = self.stream.list_shards()
        ending = {shard.shard_id: shard.ending_sequence for shard in self.shards}
        for cursor in self.cursors.values():
            cursor.ending = ending.get(cursor.shard_id, cursor.ending)

    def _let_go(self) -> None:
        """A clean stop: hand every shard back (buffered records are re-read by the next owner) and leave."""
        for shard_id in list(self.cursors):
            try:
                self.table.release(shard_id, self.worker)
            except Exception:  # stopping anyway: the lease expires by itself
                log.exception("could not release shard %s", shard_id)
        self.cursors.clear()
        try:
            self.table.leave(self.worker)
        except Exception:
            log.exception("could not remove the heartbeat of %s", self.worker)

    def _balance(self, now: float) -> bool:
        """Heartbeat, renew our leases, take or hand back shards; True when every shard is finished."""
        ttl = self.settings.lease_seconds
        self.table.heartbeat(self.worker, now, ttl)
        if self.settings.heartbeat_file:
            Path(self.settings.heartbeat_file).touch()
        for shard_id in list(self.cursors):
            try:
                self.table.renew(shard_id, self.worker, now, ttl)
            except LeaseLost:
                self._drop(shard_id, "lost its lease")
        rows = self.table.rows()
        plan = plan_leases(self.shards, rows, self.worker, self.table.live_workers(now), now)
        for shard_id in plan.release:
            if shard_id in self.cursors:
                self.table.release(shard_id, self.worker)
                self._drop(shard_id, "above this consumer's share", lost=False)
        for shard_id in plan.acquire:
            if self.table.acquire(shard_id, self.worker, now, ttl):
                self._open(shard_id, self.table.row(shard_id))
        for shard_id in held(rows, self.worker, now):  # ours by the table but not open here (a restart)
            if shard_id not in self.cursors and shard_id not in plan.release:
                self._open(shard_id, self.table.row(shard_id))
        return bool(self.shards) and all(rows.get(s.shard_id, LeaseRow(s.shard_id)).finished for s in self.shards)

    def _open(self, shard_id: str, row: LeaseRow) -> None:
        info = next((s for s in self.shards if s.shard_id == shard_id), ShardInfo(shard_id))
        replay = row.pending[1] if row.pending else None
        self.cursors[shard_id] = _Cursor(shard_id, row.checkpoint, replay, info.ending_sequence)
        self.stats.leases_taken += 1
        log.info("took shard %s at %s%s", shard_id, row.checkpoint, f" (replays to {replay})" if replay else "")

    def _drop(self, shard_id: str, why: str, lost: bool = True) -> None:
        self.cursors.pop(shard_id, None)
        self.stats.leases_lost += lost
        log.info("let shard %s go: %s", shard_id, why)

    # --- one shard -----------------------------------------------------------------------------------

    def _step(self, cursor: _Cursor) -> bool:
        """Do the next thing one shard needs (write a batch, read, finish); True if anything happened."""
        now_ms = self.clock() * 1000
        batch = self._due(cursor, now_ms)
        try:
            if batch:
                return self._process(cursor, batch)
            if cursor.exhausted and not cursor.buffer:
                self.table.finish(cursor.shard_id, self.worker)
                self.stats.shards_finished += 1
                self._drop(cursor.shard_id, "finished (closed and fully read)", lost=False)
                return True
            if cursor.exhausted or now_ms < cursor.next_poll or len(cursor.buffer) >= self.settings.batch_max_rows:
                return False
            return self._read(cursor, now_ms)
        except LeaseLost:
            self._drop(cursor.shard_id, "lost its lease")
            return True

    def _due(self, cursor: _Cursor, now_ms: float) -> list[StreamRecord]:
        buffer = cursor.buffer
        if not buffer:
            return []
        if cursor.replay_until is not None:  # cut exactly the range a predecessor began
            last = int(cursor.replay_until)
            upto = next((i for i, r in enumerate(buffer) if int(r.sequence_number) >= last), None)
            if upto is None:
                return list(buffer) if cursor.exhausted else []
            return buffer[: upto + 1]
        if cursor.exhausted or streaming.batch_due(len(buffer), cursor.oldest_ms, now_ms, self.settings):
            return buffer[: self.settings.batch_max_rows]
        return []

    def _read(self, cursor: _Cursor, now_ms: float) -> bool:
        s = self.settings
        if cursor.iterator is None:
            cursor.iterator = self.stream.iterator(cursor.shard_id, cursor.after, s.initial_position)
        try:
            answer = self.stream.read(cursor.shard_id, cursor.iterator, s.get_records_limit)
        except IteratorExpired:
            cursor.iterator = None  # a fresh one after the last record read
            return True
        cursor.iterator = answer.next_iterator
        if answer.records:
            if not cursor.buffer:
                cursor.oldest_ms = now_ms
            cursor.buffer.extend(answer.records)
            cursor.after = answer.records[-1].sequence_number
            cursor.next_poll = now_ms
        else:
            cursor.next_poll = now_ms + s.idle_poll_ms
        caught_up = cursor.ending is not None and int(cursor.after or 0) >= int(cursor.ending)
        cursor.exhausted = answer.next_iterator is None or (not answer.records and caught_up)
        return bool(answer.records) or cursor.exhausted

    def _process(self, cursor: _Cursor, batch: list[StreamRecord]) -> bool:
        """Score one batch, make its outputs durable, then move the checkpoint past it."""
        try:
            served = self.holder.current()
        except ModelNotReady as exc:
            log.warning("no model to score with yet: %s", exc)
            return False
        first, last = batch[0].sequence_number, batch[-1].sequence_number
        replay = cursor.replay_until is not None
        self.table.begin(cursor.shard_id, self.worker, first, last)
        window = streaming.window_batch_id(self.stream.name, batch[0].arrived_at)
        scores, dead = self._score(batch, served, window)
        self._write(window, served.version, streaming.part_name(cursor.shard_id, first, last), scores, dead, replay)
        if self.output is not None and len(scores):
            self.output.put(_output_entries(scores, served), retries=self.settings.put_retries)
        self.table.commit(cursor.shard_id, self.worker, last)
        del cursor.buffer[: len(batch)]
        cursor.oldest_ms = self.clock() * 1000 if cursor.buffer else None
        cursor.replay_until = None
        stats = self.stats
        stats.batches += 1
        stats.replays += replay
        stats.scored += len(scores)
        stats.dead_lettered += len(dead)
        stats.versions[served.version] = stats.versions.get(served.version, 0) + len(scores)
        return True

    def _write(
        self, window: str, version: str, name: str, scores: pd.DataFrame, dead: pd.DataFrame, replay: bool
    ) -> None:
        """Write the batch's scores and dead-letter (atomic puts); a replay first removes what it will not rewrite.

        A replay may score with another version than the crashed attempt (a promotion in between): that
        attempt's file sits in another ``model=`` folder, and a record it dead-lettered may now be scored.
        """
        scores_uri = join_uri(self.root, scoring.partition_path(window, version), name)
        dead_uri = join_uri(self.root, DEAD_LETTER, f"stream={scoring.safe_value(self.stream.name)}", name)
        if replay:
            batch_folder = join_uri(self.root, f"batch={window}")
            earlier = [u for u in self.storage.list(batch_folder) if u.endswith("/" + name) and u != scores_uri]
            for uri in [*earlier, *([scores_uri] if not len(scores) else []), *([dead_uri] if not len(dead) else [])]:
                self.storage.delete(uri)
        if len(scores):
            write_parquet(self.storage, scores_uri, scores)
        if len(dead):
            write_parquet(self.storage, dead_uri, dead)

    def _score(self, batch: list[StreamRecord], served: ServedModel, window: str) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Scores of the records that pass (with their inputs, as the API logs them) and the dead-letter rows."""
        decoded = streaming.decode_records(batch, served.contract)
        rejected = list(decoded.rejected)
        scores = pd.DataFrame()
        if len(decoded.frame):
            lineage = served.lineage(window, datetime.now(UTC), self.worker)
            contract = served.contract
            chunk = scoring.score_chunk(
                decoded.frame, served.model, served.usecase, contract.row_specs, contract.reference, lineage
            )
            failed = np.asarray(chunk.failed, dtype=bool)
            rows = np.asarray(decoded.rows)
            refused = streaming.refused_rows(decoded.frame, failed, chunk.reasons, contract)
            rejected += list(zip(rows[failed].tolist(), refused, strict=True))
            inputs = decoded.frame.loc[~failed].reset_index(drop=True)
            inputs = apply_pii_policy(inputs, served.usecase.pii, self.pii_key)
            extra = {c: inputs[c].array for c in inputs.columns if c not in chunk.scores.columns}
            extra[serving.MODEL_ALIAS] = pd.array([served.alias or ""] * len(inputs), dtype="str")
            scores = chunk.scores.assign(**extra, **streaming.stream_columns(batch, rows[~failed].tolist()))
        dead = streaming.dead_letter_frame(batch, sorted(rejected), self.stream.name, served.version)
        return scores, dead


def _output_entries(scores: pd.DataFrame, served: ServedModel) -> list[tuple[str, bytes]]:
    ident = served.usecase.id_column
    entries = []
    for row in scores[
        [ident, scoring.PROBABILITY, scoring.PREDICTED_LABEL, "shard_id", "sequence_number", "partition_key"]
    ].itertuples(index=False):
        body: dict[str, Any] = {
            ident: row[0],
            "probability": float(row[1]),
            "predicted_label": int(row[2]),
            "model_version": served.version,
            "shard_id": row[3],
            "sequence_number": row[4],
        }
        entries.append((str(row[5]), json.dumps(body, separators=(",", ":")).encode()))
    return entries


def latencies(scores: pd.DataFrame) -> np.ndarray:
    """Seconds from the stream accepting each record to its score (``scored_at - arrived_at``)."""
    delta = pd.to_datetime(scores[scoring.SCORED_AT], utc=True) - pd.to_datetime(scores["arrived_at"], utc=True)
    return delta.dt.total_seconds().to_numpy()
