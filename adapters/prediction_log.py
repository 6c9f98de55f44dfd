"""The prediction log: every row a service scored, appended to the lake as Parquet micro-batches.

Layout under ``root`` (default ``<lake>/<usecase>/predictions``), one folder per time window and model
version, the same as batch scores so the drift and performance checks read an online window like a batch::

    batch=api-<YYYYMMDDTHH>/model=<version>/part-<time>-<writer>-<seq>-n<rows>.parquet
    batch=api-<YYYYMMDDTHH>/model=<version>/_manifest.json

A part holds the inputs (after the PII policy), the outputs (probability, label, outlier flags), the lineage
columns of batch scores, the request id and the alias. Rows are buffered and written when ``flush_rows``
are waiting or ``flush_seconds`` passed since the last write, and on ``close()``. Each part is written
atomically under a name no other writer uses (the writer id is unique per process); after each part the
folder's manifest is rewritten from a listing of the folder, so it names every part written so far by any
worker, and each worker's last flush rewrites it again. Its ``input_files`` are the parts themselves (they
carry the inputs), so ``mlops drift --scores-uri <root> --window api-<...>`` checks that window.
"""

from __future__ import annotations

import logging
import re
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from adapters.storage import Storage, join_uri, write_json, write_parquet
from tasks import scoring

MANIFEST = "_manifest.json"
_PART_ROWS = re.compile(r"-n(\d+)\.parquet$")
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoggedModel:
    """The version that scored the rows of one log folder."""

    name: str
    alias: str | None
    version: str
    run_id: str


def window_batch_id(at: datetime, window: str) -> str:
    """Batch id of the log window holding time ``at`` (UTC): ``api-20250131T14`` (hour) or ``api-20250131``."""
    utc = at.astimezone(UTC)
    if window == "hour":
        return f"api-{utc:%Y%m%dT%H}"
    if window == "day":
        return f"api-{utc:%Y%m%d}"
    raise ValueError(f"log window must be 'hour' or 'day', not {window!r}")


class PredictionLog:
    """Buffers scored rows per (window, version) and writes them as Parquet parts.

    Args:
        storage: Where the log goes (local folder or S3).
        root: The log's root URI.
        usecase: The use case name (in manifests).
        window: ``hour`` or ``day``: the partition (and drift window) a row lands in, by its scoring time.
        flush_rows: Write once this many rows wait.
        flush_seconds: Write rows waiting longer than this (checked by a background thread after ``start``).
        combine: Turns the items queued for one part into its frame (default: they are frames, concatenated).
            A service queues cheap per-request values and builds one frame per part, off the request path.
    """

    def __init__(
        self,
        storage: Storage,
        root: str,
        usecase: str,
        *,
        window: str = "hour",
        flush_rows: int = 5000,
        flush_seconds: float = 30.0,
        combine: Callable[[Sequence[Any]], pd.DataFrame] | None = None,
    ) -> None:
        window_batch_id(datetime.now(UTC), window)  # refuse a bad window name now, not at the first row
        if flush_rows < 1 or flush_seconds <= 0:
            raise ValueError("flush_rows must be >= 1 and flush_seconds > 0")
        self.storage, self.root, self.usecase, self.window = storage, root.rstrip("/"), usecase, window
        self.flush_rows, self.flush_seconds = flush_rows, flush_seconds
        self.combine = combine or (lambda frames: pd.concat(frames, ignore_index=True))
        self.writer = uuid.uuid4().hex[:8]
        self.rows_written = 0
        self.parts_written = 0
        self.last_error: str | None = None
        self._buffers: dict[tuple[str, str], tuple[LoggedModel, list[Any]]] = {}
        self._counts: dict[tuple[str, str], int] = {}
        self._pending = 0
        self._seq = 0
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._last_flush = time.monotonic()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def append(self, rows: Any, model: LoggedModel, scored_at: datetime, count: int | None = None) -> None:
        """Queue scored rows (one request: a frame, or an item ``combine`` understands with ``count`` rows).

        Writes when ``flush_rows`` rows are waiting (in the background thread once ``start`` ran).
        """
        count = len(rows) if count is None else count
        if not count:
            return
        key = (window_batch_id(scored_at, self.window), model.version)
        with self._lock:
            entry = self._buffers.setdefault(key, (model, []))
            entry[1].append(rows)
            self._pending += count
            self._counts[key] = self._counts.get(key, 0) + count
            full = self._pending >= self.flush_rows
        if full and self._thread is not None:
            self._wake.set()  # the background thread writes: the request that filled the buffer does not wait
        elif full:
            self.flush()

    def flush(self) -> list[str]:
        """Write every waiting row now; the URIs of the parts written."""
        with self._write_lock:
            with self._lock:
                buffers, self._buffers, self._pending = self._buffers, {}, 0
                counts, self._counts = self._counts, {}
                self._last_flush = time.monotonic()
            written: list[str] = []
            keys = sorted(buffers)
            for i, key in enumerate(keys):
                model, frames = buffers[key]
                try:
                    written.append(self._write(key[0], model, self.combine(frames)))
                except Exception:
                    # nothing lost: the next flush retries
                    self._requeue({k: buffers[k] for k in keys[i:]}, {k: counts[k] for k in keys[i:]})
                    raise
            return written

    def _requeue(
        self, buffers: dict[tuple[str, str], tuple[LoggedModel, list[Any]]], counts: dict[tuple[str, str], int]
    ) -> None:
        with self._lock:
            for key, (model, items) in buffers.items():
                entry = self._buffers.setdefault(key, (model, []))
                entry[1][:0] = items
                self._pending += counts[key]
                self._counts[key] = self._counts.get(key, 0) + counts[key]

    def _write(self, batch_id: str, model: LoggedModel, frame: pd.DataFrame) -> str:
        folder = join_uri(self.root, scoring.partition_path(batch_id, model.version))
        self._seq += 1
        name = f"part-{datetime.now(UTC):%Y%m%dT%H%M%S%f}-{self.writer}-{self._seq:06d}-n{len(frame)}.parquet"
        uri = join_uri(folder, name)
        write_parquet(self.storage, uri, _plain(frame))
        self.rows_written += len(frame)
        self.parts_written += 1
        self._write_manifest(folder, batch_id, model)
        return uri

    def _write_manifest(self, folder: str, batch_id: str, model: LoggedModel) -> None:
        parts = [u for u in self.storage.list(folder) if _PART_ROWS.search(u) and "/." not in u[len(folder) :]]
        names = [u.rsplit("/", 1)[-1] for u in parts]
        rows = sum(int(_PART_ROWS.search(n).group(1)) for n in names)  # type: ignore[union-attr]
        manifest = {
            "status": "ok",
            "source": "api",
            "usecase": self.usecase,
            "batch_id": batch_id,
            "window": self.window,
            "input_uri": folder,
            "input_files": parts,
            "snapshot": None,
            "model": {**model.__dict__, "uri": f"models:/{model.name}/{model.version}"},
            "output_uri": self.root,
            "scores_uri": folder,
            "quarantine_uri": None,
            "manifest_uri": join_uri(folder, MANIFEST),
            "rows_in": rows,
            "rows_scored": rows,
            "rows_quarantined": 0,
            "files": names,
            "scored_at": datetime.now(UTC).isoformat(),
            "flow_run_id": "",
        }
        write_json(self.storage, join_uri(folder, MANIFEST), manifest)

    # --- background flushing ----------------------------------------------------------------------------

    def start(self) -> None:
        """Flush rows older than ``flush_seconds`` from a background thread."""
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            woken = self._wake.wait(min(1.0, self.flush_seconds / 4))
            self._wake.clear()
            due = time.monotonic() - self._last_flush >= self.flush_seconds
            if self._pending and (woken or due or self._pending >= self.flush_rows):
                self._safe_flush()

    def _safe_flush(self) -> None:
        try:
            self.flush()
            self.last_error = None
        except Exception as exc:  # the store is down: keep serving, say so, and try again later
            self.last_error = f"prediction log write failed: {type(exc).__name__}: {exc}"
            log.error("%s", self.last_error)

    def close(self) -> None:
        """Stop the background thread and write what is waiting (on shutdown)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(10)
        self._safe_flush()

    @property
    def pending(self) -> int:
        return self._pending


def _plain(frame: pd.DataFrame) -> pd.DataFrame:
    """Categoricals (lineage, outlier features) as strings: parts of different requests concatenate cleanly."""
    converted = {c: frame[c].astype("str") for c in frame.columns if isinstance(frame[c].dtype, pd.CategoricalDtype)}
    return frame.assign(**converted)
