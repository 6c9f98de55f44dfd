"""``mlops stream``: the stream consumer (services/stream_consumer.py), its set-up, status and producer.

    mlops stream --stream NAME                 score the stream until SIGTERM/SIGINT
    mlops stream setup --stream NAME --shards 4   create the stream and the checkpoint table (local / stack)
    mlops stream produce --stream NAME --month 2013-02 --rate 200   put a curated month's rows onto it
    mlops stream status --stream NAME          checkpoints and leases per shard

Thread policy: the consumer limits OpenMP to one thread (threadpoolctl, in ``StreamConsumer.run``); scale out
with more consumers (one per core), which share the shards through leases.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Annotated, Any

import typer

from ops.commands import JsonOpt, ProfileOpt, UsecaseOpt, app, err, run_command, show_mapping

stream_app = typer.Typer(help="Score a Kinesis stream as records arrive; set it up, feed it, inspect it.")
app.add_typer(stream_app, name="stream")

StreamOpt = Annotated[str | None, typer.Option("--stream", help="Stream name (default: stream.name in config).")]


def stream_settings(profile: str | None, usecase: str | None, stream: str | None) -> tuple[Any, Any]:
    """The context and its ``stream:`` settings, with the stream name overridden."""
    from flows.context import build_context

    ctx = build_context(profile, usecase)
    settings = ctx.settings.stream
    if stream:
        settings = settings.model_copy(update={"name": stream})
    return ctx, settings


@stream_app.callback(invoke_without_command=True)
def consume(
    context: typer.Context,
    stream: StreamOpt = None,
    idle_exit: Annotated[
        float | None,
        typer.Option("--idle-exit", help="Stop once every shard had no record for this many seconds."),
    ] = None,
    profile: ProfileOpt = None,
    usecase: UsecaseOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Score the stream's records as they arrive (exactly once into the lake; stops on SIGTERM/SIGINT)."""
    if context.invoked_subcommand is not None:
        return
    from adapters.storage import join_uri
    from services.stream_runner import run_consumer
    from tasks.training import model_inputs

    _log_to_stderr("services", "adapters")

    def work() -> dict:
        ctx, settings = stream_settings(profile, usecase, stream)
        root = join_uri(ctx.lake_root, "predictions")
        return run_consumer(
            settings,
            ctx.usecase,
            ctx.registry(),
            ctx.storage(root),
            root,
            f"{ctx.settings.home}/models",
            idle_exit_seconds=idle_exit,
            pii_key=ctx.pii_key(model_inputs(ctx.usecase)),
        )

    run_command(as_json, "scoring the stream", work, lambda r: show_mapping("Stream consumer", _flat(r)), service=True)


@stream_app.command("setup")
def setup(
    stream: StreamOpt = None,
    shards: Annotated[int, typer.Option("--shards", min=1, help="Shards of a new stream.")] = 4,
    profile: ProfileOpt = None,
    usecase: UsecaseOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create the stream (and the output stream) and the checkpoint table unless they exist (local, stack)."""
    from services.stream_runner import streams

    def work() -> dict:
        _, settings = stream_settings(profile, usecase, stream)
        source, output, table = streams(settings)
        source.create(shards)
        if output is not None:
            output.create(shards)
        table.create()
        return {
            "stream": source.name,
            "shards": len(source.list_shards()),
            "table": table.table,
            "output_stream": output.name if output else None,
        }

    run_command(as_json, "creating the stream", work, lambda r: show_mapping("Stream", r))


@stream_app.command("produce")
def produce(
    month: Annotated[str | None, typer.Option("--month", help="Curated month to put, e.g. 2013-02.")] = None,
    input_uri: Annotated[str | None, typer.Option("--input", help="A Parquet file instead of a month.")] = None,
    rate: Annotated[
        float | None, typer.Option("--rate", help="Records per second (default: as fast as possible).")
    ] = None,
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="Put only the first N rows.")] = None,
    stream: StreamOpt = None,
    profile: ProfileOpt = None,
    usecase: UsecaseOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Put a curated month's rows (id + model inputs, one JSON record each) onto the stream at a rate."""
    from ops.stream_producer import produce as put_rows
    from services.stream_runner import streams

    def work() -> dict:
        ctx, settings = stream_settings(profile, usecase, stream)
        payloads = month_payloads(ctx, month, input_uri, limit)
        result = put_rows(streams(settings)[0], payloads, rate)
        return {k: v for k, v in result.items() if k != "put_at"}

    run_command(as_json, "putting records", work, lambda r: show_mapping("Produced", r))


def month_payloads(ctx: Any, month: str | None, input_uri: str | None, limit: int | None) -> list[tuple[str, bytes]]:
    """The records of a curated month (or a Parquet file): id and model inputs of each row, as JSON."""
    from adapters.storage import join_uri, read_parquet
    from flows.snapshots import latest_snapshot_uri
    from tasks.errors import MlopsError
    from tasks.streaming import row_payloads
    from tasks.training import model_inputs

    if (month is None) == (input_uri is None):
        raise MlopsError("give either --month (a curated month) or --input (a Parquet file)")
    uri = input_uri or join_uri(latest_snapshot_uri(ctx, month), "data.parquet")
    frame = read_parquet(ctx.storage(uri), uri)
    if limit is not None:
        frame = frame.head(limit)
    uc = ctx.usecase
    return row_payloads(frame, (uc.id_column, *model_inputs(uc)), uc.id_column)


@stream_app.command("status")
def status(
    stream: StreamOpt = None,
    profile: ProfileOpt = None,
    usecase: UsecaseOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Checkpoint, pending range and lease of every shard of the stream."""
    import time

    from services.stream_runner import streams

    def work() -> dict:
        _, settings = stream_settings(profile, usecase, stream)
        source, _, table = streams(settings)
        rows, now = table.rows(), time.time()
        shards = {}
        for shard in source.list_shards():
            row = rows.get(shard.shard_id)
            shards[shard.shard_id] = {
                "parents": list(shard.parents),
                "closed": shard.ending_sequence is not None,
                "checkpoint": row.checkpoint if row else None,
                "pending": list(row.pending) if row and row.pending else None,
                "owner": row.owner if row and row.expires_at > now else None,
            }
        return {"stream": source.name, "consumers": table.live_workers(now), "shards": shards}

    run_command(as_json, "reading checkpoints", work, lambda r: err.print(json.dumps(r, indent=2)))


def _flat(result: dict) -> dict:
    return {k: (json.dumps(v) if isinstance(v, dict) else v) for k, v in result.items()}


def _log_to_stderr(*names: str) -> None:
    """The consumer's own INFO lines (shards taken, batches written) on stderr, whatever root level Prefect set."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    for name in names:
        logger = logging.getLogger(name)
        logger.setLevel(logging.INFO)
        logger.handlers = [handler]
        logger.propagate = False
