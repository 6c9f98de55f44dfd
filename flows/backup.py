"""Back up the registry, Prefect's database and the lake's pointers and manifests; keep the newest few."""

from __future__ import annotations

import json
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from prefect import flow

from adapters import backup as store
from adapters.storage import is_s3, join_uri
from flows.context import Context, build_context
from flows.steps import io_step
from tasks import backup as logic

DATA_NOTE_S3 = (
    "lake data files are not copied: they live in versioned object storage (snapshot folders are content-"
    "addressed and never rewritten; keep bucket versioning on); their pointers and manifests are here"
)
DATA_NOTE_LOCAL = "the lake is a local folder (no versioned storage behind it): its data files are copied too"


def backup_root(ctx: Context, to: str | None = None) -> str:
    return to or ctx.settings.backup.root or str(Path(ctx.settings.home) / "backups")


def plan_for(ctx: Context, root: str, postgres: store.PostgresSource | None = None) -> store.BackupPlan:
    """Everything the profile keeps: the home (minus secrets, caches, backups), PostgreSQL, S3 prefixes."""
    settings, home = ctx.settings, Path(ctx.settings.home)
    # stack/state.json holds PIDs of this run of the stack; stack/s3-data is the S3 emulator's copy (taken as S3)
    skip = ["secrets", "models", "stack/postgres", "stack/s3-data", "stack/state.json"]
    if not is_s3(root) and Path(root).is_relative_to(home):
        skip.append(Path(root).relative_to(home).as_posix())
    prefixes = []
    if is_s3(settings.storage.lake_uri):
        prefixes.append((settings.storage.lake_uri, True))
    if settings.mlflow.artifact_uri and is_s3(settings.mlflow.artifact_uri):
        prefixes.append((settings.mlflow.artifact_uri, False))
    return store.BackupPlan(
        home=str(home),
        skip=tuple(skip),
        postgres=postgres,
        s3_prefixes=tuple(prefixes),
        s3_endpoint_url=settings.storage.s3_endpoint_url,
        notes=(DATA_NOTE_S3 if is_s3(settings.storage.lake_uri) else DATA_NOTE_LOCAL,),
    )


@io_step("take-backup")
def take_backup(plan: store.BackupPlan, root: str) -> dict:
    """Copy everything into a staging folder, write the manifest last, publish it under ``root``."""
    now = datetime.now(UTC)
    backup = logic.backup_id(now)
    local_root = None if is_s3(root) else Path(root)
    if local_root is not None:
        local_root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{backup}.", dir=local_root) as tmp:
        staged = Path(tmp, "staged")
        started = time.perf_counter()
        entries = store.take(plan, staged)
        about = {
            "notes": list(plan.notes),
            "postgres_databases": list(plan.postgres.databases) if plan.postgres else [],
            "s3_prefixes": [uri for uri, _ in plan.s3_prefixes],
            "seconds": round(time.perf_counter() - started, 2),
        }
        manifest = logic.build_manifest(backup, now.isoformat(timespec="seconds"), entries, about)
        (staged / "manifest.json").write_text(json.dumps(manifest, indent=2))
        uri = store.publish(staged, root, backup, plan.s3_endpoint_url)
    return {
        "uri": uri,
        **{k: manifest[k] for k in ("id", "created_at", "total_bytes", "seconds", "notes")},
        "files": len(entries),
    }


@io_step("prune-backups")
def prune_backups(root: str, keep: int, endpoint: str | None) -> list[str]:
    doomed = logic.to_prune(store.list_backups(root, endpoint), keep)
    for name in doomed:
        store.remove_backup(root, name, endpoint)
    return [join_uri(root, name) for name in doomed]


@flow(name="backup", log_prints=False)
def backup(
    to: str | None = None,
    postgres_url: str | None = None,
    postgres_bin_dir: str | None = None,
    profile: str | None = None,
    usecase: str | None = None,
) -> dict:
    """Take a consistent, checksummed backup of the registry, Prefect's state and the lake's pointers."""
    ctx = build_context(profile, usecase)
    root = backup_root(ctx, to)
    postgres = None
    if postgres_url:
        postgres = store.PostgresSource(postgres_url, ("prefect", "mlflow"), postgres_bin_dir or "")
    taken = take_backup(plan_for(ctx, root, postgres), root)
    pruned = prune_backups(root, ctx.settings.backup.keep, ctx.settings.storage.s3_endpoint_url)
    return {**taken, "pruned": pruned}
