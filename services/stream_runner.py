"""Run the stream consumer as a process: wire its adapters, load the model, stop cleanly on SIGTERM/SIGINT.

``mlops stream --stream NAME`` (ops/cli_stream.py) builds the settings and calls ``run_consumer``; the
Kubernetes Deployment and the compose service run that command. SIGTERM (a rollout, ``docker stop``) lets the
batch in progress finish and checkpoint, hands the shards back and returns; SIGKILL loses nothing either (the
next owner replays the open range), it only waits for the lease to expire.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
import uuid
from dataclasses import asdict
from typing import Any

from adapters.checkpoints import CheckpointTable, dynamodb_client
from adapters.kinesis import KinesisStream, kinesis_client
from adapters.model_holder import ModelHolder
from adapters.registry import MlflowRegistry
from adapters.storage import Storage
from services.stream_consumer import StreamConsumer
from tasks.errors import MlopsError
from tasks.stream_settings import StreamSettings
from tasks.usecase import UseCase

log = logging.getLogger(__name__)


def worker_id() -> str:
    """Unique per process: host, pid and a random suffix (a restarted pod never reuses a dead one's leases)."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


def streams(settings: StreamSettings) -> tuple[KinesisStream, KinesisStream | None, CheckpointTable]:
    """The input stream, the output stream (if configured) and the checkpoint table of ``settings``."""
    client = kinesis_client(settings.region, settings.endpoint_url)
    backoff = (settings.backoff_base_ms, settings.backoff_max_ms)
    source = KinesisStream(settings.name, client, backoff=backoff)
    output = KinesisStream(settings.output_stream, client, backoff=backoff) if settings.output_stream else None
    table = CheckpointTable(
        settings.checkpoint_table,
        settings.application,
        settings.name,
        dynamodb_client(settings.region, settings.endpoint_url),
    )
    return source, output, table


def run_consumer(
    settings: StreamSettings,
    usecase: UseCase,
    registry: MlflowRegistry,
    storage: Storage,
    predictions_root: str,
    models_root: str,
    *,
    idle_exit_seconds: float | None = None,
    ready_timeout: float = 300.0,
    pii_key: bytes | None = None,
) -> dict[str, Any]:
    """Score the stream until SIGTERM/SIGINT (or, with ``idle_exit_seconds``, until it is drained).

    Raises:
        MlopsError: no model version could be loaded within ``ready_timeout`` seconds (the reason named).
    """
    source, output, table = streams(settings)
    holder = ModelHolder(
        registry,
        usecase,
        alias=settings.model_alias,
        download_root=models_root,
        poll_seconds=settings.model_refresh_seconds,
    )
    holder.start()
    started = time.monotonic()
    while not holder.status().ready:
        if time.monotonic() - started > ready_timeout:
            holder.stop()
            raise MlopsError(f"no model to score the stream with: {holder.status().last_error}")
        time.sleep(0.5)
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    worker = worker_id()
    consumer = StreamConsumer(
        settings, source, table, holder, storage, predictions_root, worker, output, pii_key=pii_key
    )
    log.info("consumer %s reads stream %s (model %s)", worker, settings.name, holder.status().version)
    try:
        stats = consumer.run(stop, idle_exit_seconds=idle_exit_seconds)
    finally:
        holder.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return {"worker": worker, "stream": settings.name, **asdict(stats), "throttled_calls": source.throttled}
