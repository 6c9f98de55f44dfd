"""The ``stream:`` settings of the stream consumer, validated with the rest of the config (``flows.settings``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from tasks.usecase import Strict


class StreamSettings(Strict):
    """Where the consumer reads and keeps its place, and how it cuts micro-batches (``stream:`` in config).

    ``batch_max_rows`` / ``batch_max_ms``: a shard's batch is scored when it holds that many records or its
    oldest record has waited that long. ``lease_seconds``: a consumer that stops renewing loses its shards
    after this long; the others take them. ``initial_position`` applies to a shard without a checkpoint.
    """

    name: str = "mlops-scoring-input"
    application: str = "mlops-stream-scorer"
    checkpoint_table: str = "mlops-stream-checkpoints"
    region: str = "us-east-1"
    endpoint_url: str | None = None
    initial_position: Literal["TRIM_HORIZON", "LATEST"] = "TRIM_HORIZON"
    batch_max_rows: int = Field(default=500, ge=1, le=10_000)
    batch_max_ms: int = Field(default=1000, ge=1)
    get_records_limit: int = Field(default=1000, ge=1, le=10_000)
    idle_poll_ms: int = Field(default=250, ge=0)
    lease_seconds: float = Field(default=20.0, gt=0.0)
    shard_sync_seconds: float = Field(default=10.0, gt=0.0)
    backoff_base_ms: int = Field(default=100, ge=1)
    backoff_max_ms: int = Field(default=5000, ge=1)
    put_retries: int = Field(default=8, ge=0)
    output_stream: str | None = None
    model_alias: str = "champion"
    model_refresh_seconds: float = Field(default=5.0, gt=0.0)
    # touched at every lease round (about every lease_seconds / 3): a liveness probe checks its age
    heartbeat_file: str | None = None
