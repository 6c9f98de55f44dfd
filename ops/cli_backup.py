"""`mlops backup create | verify | restore`: consistent, checksummed copies of the product's state."""

from __future__ import annotations

from typing import Annotated

import typer

from ops import backup as ops_backup
from ops.commands import JsonOpt, ProfileOpt, absolute_uri, app, run_command, show_mapping

backup_app = typer.Typer(help="Back up the registry, Prefect's database and the lake's pointers; verify; restore.")
app.add_typer(backup_app, name="backup")

UriArg = Annotated[str, typer.Argument(help="The backup: a folder or s3://bucket/prefix/<backup id>.")]


def _sized(r: dict) -> dict:
    return {**r, "size": f"{r['total_bytes'] / 1e6:.1f} MB"}


@backup_app.command("create")
def backup_create(
    to: Annotated[
        str | None, typer.Option("--to", help="Backups folder or s3://bucket/prefix (default: backup.root).")
    ] = None,
    profile: ProfileOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Take a backup; keep the newest `backup.keep` of them."""
    run_command(
        as_json,
        "backing up",
        lambda: _sized(ops_backup.create(absolute_uri(to), profile)),
        lambda r: show_mapping(
            f"Backup {r['id']}",
            {
                "where": r["uri"],
                "files": r["files"],
                "size": r["size"],
                "seconds to back up": r["seconds"],
                "pruned": len(r["pruned"]),
                **{f"note {i + 1}": n for i, n in enumerate(r["notes"])},
            },
        ),
    )


@backup_app.command("verify")
def backup_verify(uri: UriArg, profile: ProfileOpt = None, as_json: JsonOpt = False) -> None:
    """Check a backup without restoring it: checksums, SQLite integrity, readable dumps."""
    run_command(
        as_json,
        "verifying",
        lambda: _sized(ops_backup.verify(absolute_uri(uri) or uri, profile)),
        lambda r: show_mapping(f"Backup {r['id']}: intact", {"files": r["files"], "size": r["size"]}),
    )


@backup_app.command("restore")
def backup_restore(uri: UriArg, profile: ProfileOpt = None, as_json: JsonOpt = False) -> None:
    """Restore a verified backup into an empty home (or a fresh PostgreSQL stack)."""
    run_command(
        as_json,
        "restoring",
        lambda: _sized(ops_backup.restore(absolute_uri(uri) or uri, profile)),
        lambda r: show_mapping(
            f"Backup {r['id']} restored",
            {"into": r["restored_into"], "files": r["files"], "size": r["size"], "seconds to restore": r["seconds"]},
        ),
    )
