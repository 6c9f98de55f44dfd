"""Score a batch with the model behind an alias: contract-checked, chunked, lineage on every row, atomic output.

The flow resolves ``models:/<name>@<alias>`` once to a version and reads that version's contract and reference
sketch from its training run. It checks the batch's table-level contract from the Parquet footers (nothing is
written when it fails), then cuts the batch into partitions of row groups and runs one task per partition,
on threads (default runner) or on a Dask cluster, as ``scoring:`` in the use case says. A task receives the
partition's *bounds*, never rows: it reads its row groups in chunks, quarantines the rows that break the
contract, scores the others with the model (loaded once per process) and writes one Parquet part per chunk.

Output, under ``output_uri`` (default ``<lake>/<usecase>/scores``)::

    batch=<batch id>/model=<version>/part-PPPPP-SSS.parquet     scores with lineage columns
    batch=<batch id>/model=<version>/_manifest.json             the run's summary, written last
    _quarantine/batch=<batch id>/model=<version>/part-....parquet   quarantined input rows with reasons
    _staging/batch=<batch id>/model=<version>/<run>/...         parts of a run in progress

Every part is written atomically under a name fixed by the partition plan, first into the run's staging
folder; only the commit, after every partition succeeded, deletes the old manifest, moves the parts into place,
deletes parts an earlier run wrote that this one did not (another ``chunk_rows``) and writes the manifest. A
failed or killed run leaves its parts in staging (invisible to readers: paths starting with ``_`` are skipped by
Hive-style dataset readers) and the next run of the same batch and version removes them and any unfinished temp
file, so rows are never duplicated or stale. Readers that must not see a commit half-way read the files the
manifest lists.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa
from prefect import flow, runtime
from prefect.artifacts import create_markdown_artifact, create_progress_artifact, update_progress_artifact
from prefect.futures import as_completed
from prefect.states import Failed, State
from prefect.task_runners import ThreadPoolTaskRunner

from adapters.model_cache import load_cached
from adapters.parquet_stream import describe_parquet, read_chunks, read_column
from adapters.storage import join_uri, read_json, write_json, write_parquet
from flows.context import Context, build_context
from flows.lifecycle import current_flow_run_id, emit_lifecycle
from flows.snapshots import curated_periods, latest_snapshot_uri
from flows.steps import io_step
from tasks import contract, lifecycle_events, scoring
from tasks.errors import InputDataError, MlopsError, RegistryError, RegistryUnavailable, StorageError
from tasks.expectations import ExpectationSpec
from tasks.scoring import InputProfile, Lineage, OutlierReference, Partition, PartitionResult
from tasks.training import model_inputs

CONTRACT_ARTIFACT = contract.CONTRACT_ARTIFACT
SKETCH_ARTIFACT = contract.SKETCH_ARTIFACT
MANIFEST = "_manifest.json"
STAGING_DIR = "_staging"  # runs write here, hidden from Hive-style readers (a leading "_"), until they commit
QUARANTINE_DIR = "_quarantine"


@dataclass(frozen=True)
class ModelRef:
    """One concrete model version, resolved from an alias at the start of the run."""

    name: str
    alias: str
    version: str
    run_id: str


@dataclass(frozen=True)
class ScoringModel:
    """A model version with the contract and outlier reference it was trained with."""

    ref: ModelRef
    specs: tuple[ExpectationSpec, ...]
    reference: OutlierReference


@dataclass(frozen=True)
class InputBatch:
    """The batch to score: its id, its Parquet files, their row groups and what the footers say."""

    uri: str
    batch_id: str
    files: tuple[str, ...]
    row_groups: tuple[tuple[int, ...], ...]
    profile: InputProfile
    snapshot: dict[str, str] | None


@dataclass(frozen=True)
class ScoringJob:
    """What every partition task needs, all small values and references: no rows, no model."""

    model: ModelRef
    row_specs: tuple[ExpectationSpec, ...]
    types: dict[str, str]
    columns: tuple[str, ...]
    reference: OutlierReference
    lineage: Lineage
    files: tuple[str, ...]
    output_uri: str
    scores_uri: str
    quarantine_uri: str
    staging_uri: str  # where this run writes its parts until commit_output moves them into place
    chunk_rows: int


def model_ref(ctx: Context, alias: str) -> ModelRef:
    """The version behind ``alias`` (resolved once: a run works with that version even if the alias moves)."""
    name = ctx.usecase.registered_model
    version = ctx.registry().get_alias(name, alias)
    if version is None:
        raise MlopsError(
            f"model '{name}' has no @{alias} version yet: run `mlops train` then `mlops register` "
            "(the gate promotes a good model to @champion)"
        )
    return ModelRef(name, alias, version.version, version.run_id)


@io_step("resolve-model")
def resolve_model(ctx: Context, alias: str) -> ScoringModel:
    """The version behind ``alias``, with the contract and reference sketch logged with it."""
    ref = model_ref(ctx, alias)
    specs = contract.contract_from_dict(run_json(ctx, ref, CONTRACT_ARTIFACT))
    sketch = run_json(ctx, ref, SKETCH_ARTIFACT)
    try:
        reference = scoring.outlier_reference(contract.sketch_from_dict(sketch))
    except MlopsError as exc:
        raise RegistryError(f"{_describe(ref)}: {SKETCH_ARTIFACT} is unusable: {exc}") from None
    return ScoringModel(ref, specs, reference)


def run_json(ctx: Context, ref: ModelRef, path: str) -> dict:
    """A JSON object logged with the run of a model version (its contract, sketch, importances)."""
    try:
        data = json.loads(ctx.registry().read_run_artifact(ref.run_id, path).decode("utf-8"))
    except RegistryUnavailable:
        raise
    except (RegistryError, ValueError) as exc:
        raise RegistryError(f"{_describe(ref)}: cannot read {path} of its run {ref.run_id}: {exc}") from None
    if not isinstance(data, dict):
        raise RegistryError(f"{_describe(ref)}: {path} of its run {ref.run_id} is not a JSON object")
    return data


def _describe(ref: ModelRef) -> str:
    return f"model '{ref.name}' version {ref.version} (@{ref.alias})"


@io_step("load-model")
def load_model(ctx: Context, ref: ModelRef) -> str:
    """Load the model into this process's cache now, so a model that cannot load fails before any output."""
    return type(_model(ctx, ref)).__name__


def _model(ctx: Context, ref: ModelRef) -> Any:
    root = f"{ctx.settings.home}/models"
    return load_cached(ctx.registry(), ref.name, ref.version, ref.run_id, root)


@io_step("describe-input")
def describe_input(ctx: Context, input_uri: str) -> InputBatch:
    """Find the batch's Parquet files (a curated snapshot or month folder, a file, a folder) and read footers."""
    storage = ctx.storage(input_uri)
    base = input_uri.rstrip("/")
    snapshot = None
    if base.endswith(".parquet") and storage.exists(base):
        files, batch_id = [base], scoring.file_batch_id(base)
    else:
        if storage.exists(join_uri(base, "latest.json")):  # a month folder: its latest snapshot
            base = join_uri(base, f"v={read_json(storage, join_uri(base, 'latest.json'))['version']}")
        if storage.exists(join_uri(base, "manifest.json")):
            manifest = read_json(storage, join_uri(base, "manifest.json"))
            snapshot = {"uri": base, "period": manifest["period"], "version": manifest["version"]}
            files = [join_uri(base, "data.parquet")]
            batch_id = scoring.snapshot_batch_id(manifest["period"], manifest["version"])
        else:
            files = [u for u in storage.list(base) if u.endswith(".parquet") and not _hidden(u, base)]
            batch_id = scoring.file_batch_id(base)
    if not files:
        raise StorageError(f"input not found: {input_uri} (no Parquet file, curated snapshot or month folder)")
    profile, row_groups = describe_parquet(files, s3_endpoint_url=ctx.settings.storage.s3_endpoint_url)
    return InputBatch(input_uri, batch_id, tuple(files), row_groups, profile, snapshot)


def _hidden(uri: str, base: str) -> bool:
    """Files under a ``_`` or ``.`` folder or name (markers, quarantines, writes in progress) are not input."""
    return any(part.startswith(("_", ".")) for part in uri[len(base) :].split("/") if part)


@io_step("find-latest-curated")
def latest_curated(ctx: Context) -> str:
    """The latest snapshot of the latest curated month: what a scheduled scoring run scores."""
    periods = curated_periods(ctx)
    if not periods:
        raise MlopsError(f"nothing to score: no curated snapshot under {ctx.lake_root}/curated (run `mlops ingest`)")
    return latest_snapshot_uri(ctx, periods[-1])


@io_step("check-output")
def check_output(ctx: Context, scores_uri: str) -> None:
    """Fail now, before any scoring, when the output location cannot be written."""
    storage = ctx.storage(scores_uri)
    probe = join_uri(scores_uri, f"_probe-{uuid.uuid4().hex}")
    try:
        storage.write_bytes(probe, b"")
        storage.delete(probe)
    except StorageError as exc:
        raise type(exc)(f"output location not writable: {scores_uri} ({exc})") from None


@io_step("find-duplicate-ids")
def find_duplicate_ids(ctx: Context, batch: InputBatch) -> np.ndarray:
    """Batch-wide positions of rows whose id an earlier row has (read from the id column alone)."""
    endpoint = ctx.settings.storage.s3_endpoint_url
    ids = [read_column(f, ctx.usecase.id_column, s3_endpoint_url=endpoint) for f in batch.files]
    return scoring.duplicate_positions(
        pa.chunked_array([c for a in ids for c in a.chunks], type=ids[0].type).to_pandas()
    )


@io_step("score-partition")
def score_partition(
    ctx: Context, job: ScoringJob, part: Partition, duplicates: np.ndarray | None = None
) -> PartitionResult:
    """Read one partition chunk by chunk; write its scores and its quarantined rows, one part per chunk.

    ``duplicates`` are the positions (from the partition's first row) of rows to quarantine as duplicate ids.
    """
    model = _model(ctx, job.model)
    with ctx.model_threads():  # entered in the partition's own thread: OpenMP's thread count is per thread
        return _score_partition(ctx, job, part, model, duplicates)


def _score_partition(
    ctx: Context, job: ScoringJob, part: Partition, model: Any, duplicates: np.ndarray | None
) -> PartitionResult:
    storage = ctx.storage(job.scores_uri)
    results, offset = [], 0
    chunks = read_chunks(
        job.files[part.file],
        part.row_groups,
        job.chunk_rows,
        types=job.types,
        s3_endpoint_url=ctx.settings.storage.s3_endpoint_url,
    )
    for piece, table in enumerate(chunks):
        frame = table.select(list(job.columns)).to_pandas()
        duplicate = None
        if duplicates is not None:
            duplicate = np.zeros(len(frame), dtype=bool)
            duplicate[duplicates[(duplicates >= offset) & (duplicates < offset + len(frame))] - offset] = True
        offset += len(frame)
        scored = scoring.score_chunk(frame, model, ctx.usecase, job.row_specs, job.reference, job.lineage, duplicate)
        name, files = scoring.part_name(part.index, piece), []
        if len(scored.scores):
            write_parquet(storage, join_uri(job.staging_uri, name), scored.scores)
            files.append(name)
        if len(scored.reasons):
            rows = table.filter(pa.array(scored.failed)).to_pandas()
            quarantine = scoring.assemble_quarantine(rows, scored.reasons, job.lineage)
            write_parquet(storage, join_uri(job.staging_uri, QUARANTINE_DIR, name), quarantine)
            files.append(f"{QUARANTINE_DIR}/{name}")
        results.append(PartitionResult(**{**asdict(scored.result), "files": tuple(files)}))
    return scoring.combine(results)


def run_partitions(
    ctx: Context, job: ScoringJob, partitions: tuple[Partition, ...], duplicates: dict[int, np.ndarray]
) -> list[PartitionResult]:
    """Run every partition on the configured runner; progress is published as partitions finish."""
    progress = None
    if len(partitions) > 1 and runtime.flow_run.id is not None:
        progress = create_progress_artifact(0.0, description=f"Scoring {len(partitions)} partitions")
    results: list[PartitionResult] = []
    # A task timeout cannot interrupt a worker thread (threads here, Dask's too): Prefect would only warn,
    # once per partition. Submitted partitions therefore run without one (retries still apply).
    task = score_partition.with_options(task_run_name="score-partition-{part.index}")
    task.timeout_seconds = None  # with_options treats None as "unchanged"
    with _task_runner(ctx) as runner:
        futures = [
            runner.submit(task, {"ctx": ctx, "job": job, "part": p, "duplicates": duplicates.get(p.index)})
            for p in partitions
        ]
        for future in as_completed(futures):
            results.append(future.result())
            if progress is not None:
                update_progress_artifact(progress, 100.0 * len(results) / len(partitions))
    return results


def _task_runner(ctx: Context) -> Any:
    spec = ctx.usecase.scoring
    if spec.runner == "dask":
        from prefect_dask import DaskTaskRunner

        if spec.dask_address:
            return DaskTaskRunner(address=spec.dask_address)
        # one thread per worker process: the model's own threads get the cores, and partitions run in parallel
        cluster = {"n_workers": spec.dask_workers, "threads_per_worker": 1, "processes": True}
        # every port on 127.0.0.1: the scheduler, the workers and the dashboard (":0" would listen on every interface)
        local = {"host": "127.0.0.1", "dashboard_address": "127.0.0.1:0"}
        return DaskTaskRunner(cluster_kwargs={**cluster, **local})
    return ThreadPoolTaskRunner(max_workers=spec.threads)


@io_step("clear-leftovers")
def clear_leftovers(ctx: Context, job: ScoringJob) -> int:
    """Remove what failed or killed runs of this (batch, version) left: staged parts, unfinished temp files.

    Runs of one (batch, version) never overlap (the deployment's concurrency limit is 1).
    """
    storage = ctx.storage(job.output_uri)
    staged = storage.list(job.staging_uri.rsplit("/", 1)[0])
    for uri in staged:
        storage.delete(uri)
    cleared = sum(storage.clear_temp(u) for u in (job.scores_uri, job.quarantine_uri, job.staging_uri))
    return len(staged) + cleared


@io_step("commit-output")
def commit_output(ctx: Context, job: ScoringJob, written: tuple[str, ...], summary: dict) -> int:
    """Move the staged parts into place, delete parts of an earlier run this run did not rewrite, then write
    the manifest: the run's commit. The old manifest goes first, so no manifest ever lists a mix of two runs."""
    storage = ctx.storage(job.scores_uri)
    storage.delete(join_uri(job.scores_uri, MANIFEST))
    for name in written:
        final = job.quarantine_uri if name.startswith(f"{QUARANTINE_DIR}/") else job.scores_uri
        storage.move(join_uri(job.staging_uri, name), join_uri(final, name.removeprefix(f"{QUARANTINE_DIR}/")))
    removed = 0
    for folder, prefix in ((job.scores_uri, ""), (job.quarantine_uri, f"{QUARANTINE_DIR}/")):
        names = [f.removeprefix(prefix) for f in written if f.startswith(prefix) and "/" not in f.removeprefix(prefix)]
        for uri in scoring.stale_files(storage.list(folder), names):
            storage.delete(uri)
            removed += 1
    write_json(storage, join_uri(job.scores_uri, MANIFEST), {**summary, "stale_files_removed": removed})
    return removed


@flow(name="score", log_prints=False)
def score(
    input_uri: str | None = None,
    output_uri: str | None = None,
    model_alias: str = "champion",
    profile: str | None = None,
    usecase: str | None = None,
) -> dict:
    """Score a batch (default: the latest curated month) with the model behind an alias; quarantine bad rows."""
    started = time.perf_counter()
    scored_at = datetime.now(UTC)
    ctx = build_context(profile, usecase)
    input_uri = input_uri or latest_curated(ctx)
    uc = ctx.usecase
    model = resolve_model(ctx, model_alias)
    batch = describe_input(ctx, input_uri)
    specs = scoring.scoring_specs(model.specs, uc)
    try:
        scoring.check_table(batch.profile, specs, f"input {input_uri}")
    except InputDataError as exc:
        return refuse_batch(ctx, model.ref, batch, specs, exc)
    root = output_uri or join_uri(ctx.lake_root, "scores")
    where = scoring.partition_path(batch.batch_id, model.ref.version)
    flow_run_id = str(runtime.flow_run.id or "")
    job = ScoringJob(
        model=model.ref,
        row_specs=tuple(s for s in specs if s.row_level),
        types=scoring.column_types(specs),
        columns=tuple(dict.fromkeys((uc.id_column, *model_inputs(uc), *scoring.needed_columns(specs)))),
        reference=model.reference,
        lineage=Lineage(model.ref.name, model.ref.version, model.ref.run_id, batch.batch_id, scored_at, flow_run_id),
        files=batch.files,
        output_uri=root,
        scores_uri=join_uri(root, where),
        quarantine_uri=join_uri(root, QUARANTINE_DIR, where),
        staging_uri=join_uri(root, STAGING_DIR, where, flow_run_id or uuid.uuid4().hex),
        chunk_rows=uc.scoring.chunk_rows,
    )
    check_output(ctx, job.scores_uri)
    clear_leftovers(ctx, job)
    load_model(ctx, model.ref)
    partitions = scoring.plan_partitions(batch.row_groups, uc.scoring.chunk_rows)
    duplicates = scoring.positions_by_partition(find_duplicate_ids(ctx, batch), batch.row_groups, partitions)
    scoring_started = time.perf_counter()
    total = scoring.combine(run_partitions(ctx, job, partitions, duplicates))
    scoring_seconds = time.perf_counter() - scoring_started
    if total.rows_in != batch.profile.rows or total.rows_in != total.rows_scored + total.rows_quarantined:
        raise MlopsError(
            f"row accounting broke: {batch.profile.rows} rows in the input, {total.rows_in} read, "
            f"{total.rows_scored} scored + {total.rows_quarantined} quarantined"
        )
    summary = _summary(ctx, batch, model.ref, job, total, len(partitions), scored_at, flow_run_id)
    summary["stale_files_removed"] = commit_output(ctx, job, total.files, summary)
    seconds = time.perf_counter() - started
    summary["seconds"] = {"total": round(seconds, 3), "scoring": round(scoring_seconds, 3)}
    summary["rows_per_second"] = round(total.rows_in / seconds, 1) if seconds else None
    _publish(ctx, summary)
    return summary


def refuse_batch(ctx: Context, ref: ModelRef, batch: InputBatch, specs: list, refusal: InputDataError) -> State:
    """Announce a batch the contract refuses as a whole (``mlops.contract.violated``), then fail the run.

    The run ends FAILED under the state name ``Refused``: the refusal has its own event and message, so the
    automation that reports failed runs (``prefect.flow-run.Failed``) does not report it a second time.
    """
    problems = scoring.table_problems(batch.profile, specs)
    payload = lifecycle_events.contract_payload(
        ref.version,
        batch.batch_id,
        batch.uri,
        problems,
        batch.profile.rows,
        len(batch.profile.columns),
        ctx.registry().training_run(ref.run_id).run_url,
        current_flow_run_id(),
    )
    event = lifecycle_events.CONTRACT_VIOLATED_EVENT
    emit_lifecycle(ctx, event, ref.version, payload, batch.batch_id, labels={"mlops.batch": batch.batch_id})
    return Failed(name="Refused", message=str(refusal), data=refusal)


def _summary(
    ctx: Context,
    batch: InputBatch,
    ref: ModelRef,
    job: ScoringJob,
    total: PartitionResult,
    partitions: int,
    scored_at: datetime,
    flow_run_id: str,
) -> dict:
    spec = ctx.usecase.scoring
    return {
        "status": "ok",
        "usecase": ctx.usecase.name,
        "batch_id": batch.batch_id,
        "input_uri": batch.uri,
        "input_files": list(batch.files),
        "snapshot": batch.snapshot,
        "model": {**asdict(ref), "uri": f"models:/{ref.name}/{ref.version}"},
        "output_uri": job.output_uri,
        "scores_uri": job.scores_uri,
        "quarantine_uri": job.quarantine_uri,
        "manifest_uri": join_uri(job.scores_uri, MANIFEST),
        "rows_in": total.rows_in,
        "rows_scored": total.rows_scored,
        "rows_quarantined": total.rows_quarantined,
        "rows_outlier": total.rows_outlier,
        "quarantine_reasons": total.reasons,
        "outlier_features": total.outlier_features,
        "decision_threshold": ctx.usecase.model.decision_threshold,
        "files": list(total.files),
        "partitions": partitions,
        "runner": spec.runner if spec.runner == "default" else f"dask ({spec.dask_address or 'local cluster'})",
        "chunk_rows": spec.chunk_rows,
        "scored_at": scored_at.isoformat(),
        "flow_run_id": flow_run_id,
    }


def _publish(ctx: Context, s: dict) -> None:
    if runtime.flow_run.id is None:
        return
    rows_in = s["rows_in"] or 1
    reasons = [f"- `{k}`: {v:,} rows" for k, v in list(s["quarantine_reasons"].items())[:10]] or ["- none"]
    outliers = [f"- `{k}`: {v:,} rows" for k, v in list(s["outlier_features"].items())[:10]] or ["- none"]
    model = s["model"]
    markdown = "\n".join(
        [
            f"# Scores of batch `{s['batch_id']}`",
            "",
            f"Model **{model['name']}** version **{model['version']}** (@{model['alias']}, run `{model['run_id']}`)",
            "",
            "| rows | count | share |",
            "|---|---:|---:|",
            f"| in | {s['rows_in']:,} | 100% |",
            f"| scored | {s['rows_scored']:,} | {s['rows_scored'] / rows_in:.2%} |",
            f"| quarantined | {s['rows_quarantined']:,} | {s['rows_quarantined'] / rows_in:.2%} |",
            f"| flagged as outliers (scored) | {s['rows_outlier']:,} | {s['rows_outlier'] / rows_in:.2%} |",
            "",
            f"Throughput: **{s['rows_per_second']:,.0f} rows/s** end to end ({s['seconds']['total']:.1f} s; "
            f"{s['partitions']} partitions on the {s['runner']} runner)",
            "",
            f"Input: `{s['input_uri']}`",
            "",
            f"Scores: `{s['scores_uri']}` · quarantine: `{s['quarantine_uri']}`",
            "",
            "Quarantine reasons:",
            *reasons,
            "",
            "Outliers by feature (outside the training range or an unseen category):",
            *outliers,
        ]
    )
    create_markdown_artifact(
        key=f"score-{ctx.usecase.name}".replace("_", "-"), markdown=markdown, description="Batch scoring run"
    )
