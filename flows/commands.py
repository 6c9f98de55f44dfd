"""Typer commands of ``mlops``. Each accepts ``--json`` and then prints exactly one JSON object on stdout.

Errors exit with status 1 and one line naming the problem (on stderr; with ``--json`` also as
``{"ok": false, "error": ...}`` on stdout).
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from tasks.errors import MlopsError

app = typer.Typer(
    name="mlops",
    help="Run the model lifecycle: land, ingest, train, register, score, monitor.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print exactly one JSON object with the result on stdout.")]
ProfileOpt = Annotated[
    str | None,
    typer.Option("--profile", help="Config profile: local (default), stack, aws. Env: MLOPS_PROFILE."),
]
UsecaseOpt = Annotated[str | None, typer.Option("--usecase", help="Use case in config/usecases/. Env: MLOPS_USECASE.")]


def run_command(as_json: bool, label: str, work: Callable[[], Any], show: Callable[[Any], None]) -> None:
    """Run ``work`` with a spinner, print its result as JSON or via ``show``; turn known errors into one line."""
    started = time.perf_counter()
    try:
        with _quiet_stdout(as_json), _spinner(label):
            result = work()
    except MlopsError as exc:
        _fail(as_json, str(exc))
    except Exception as exc:  # a flow run re-raises what failed inside it; keep the one-line contract
        _fail(as_json, f"{type(exc).__name__}: {exc}".splitlines()[0])
    elapsed = round(time.perf_counter() - started, 2)
    if as_json:
        sys.stdout.write(json.dumps({"ok": True, "seconds": elapsed, "result": result}, default=str) + "\n")
    else:
        show(result)
        err.print(f"[dim]done in {elapsed:.1f} s[/dim]")


def _fail(as_json: bool, message: str) -> None:
    if as_json:
        sys.stdout.write(json.dumps({"ok": False, "error": message}) + "\n")
    err.print(f"[bold red]error:[/bold red] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code=1)


@contextlib.contextmanager
def _quiet_stdout(as_json: bool) -> Iterator[None]:
    """With --json, anything a library prints goes to stderr so stdout holds only the one JSON object."""
    if not as_json:
        yield
        return
    with contextlib.redirect_stdout(sys.stderr):
        yield


@contextlib.contextmanager
def _spinner(label: str) -> Iterator[None]:
    columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    with Progress(*columns, console=err, transient=True, disable=not err.is_terminal) as progress:
        progress.add_task(label, total=None)
        yield


def absolute_uri(uri: str | None) -> str | None:
    """Local paths given on the command line are made absolute: a flow may run in another folder."""
    if uri is None or uri.startswith(("s3://", "file://")):
        return uri
    return str(Path(uri).expanduser().resolve())


def show_mapping(title: str, rows: dict[str, Any]) -> None:
    table = Table(title=title, show_header=False, title_justify="left")
    for key, value in rows.items():
        table.add_row(key, str(value))
    Console().print(table)


@app.command()
def land(
    month: Annotated[str, typer.Option("--month", help="Month to land, YYYY-MM (e.g. 2013-01).")],
    to: Annotated[
        str | None,
        typer.Option("--to", help="Landing folder or s3://bucket/prefix (default: the profile's)."),
    ] = None,
    raw_format: Annotated[str | None, typer.Option("--format", help="csv (default) or parquet.")] = None,
    profile: ProfileOpt = None,
    usecase: UsecaseOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Land one month of raw source data as an upstream delivery."""
    from flows.land import land as land_flow

    if raw_format not in (None, "csv", "parquet"):
        _fail(as_json, f"--format must be csv or parquet, not '{raw_format}'")

    def show(r: dict) -> None:
        rows = {"batch": r["batch_uri"], "batch id": r["batch_id"]}
        rows |= {f"rows {name}": f"{t['rows']:,}" for name, t in r["tables"].items()}
        show_mapping(f"Landed {r['period']}", rows)

    run_command(
        as_json,
        f"landing {month}",
        lambda: land_flow(
            period=month, to_uri=absolute_uri(to), raw_format=raw_format, profile=profile, usecase=usecase
        ),
        show,
    )


@app.command()
def ingest(
    input_uri: Annotated[str, typer.Option("--input", help="Raw batch folder (local path or s3://...).")],
    month: Annotated[
        str | None, typer.Option("--month", help="Batch month YYYY-MM, when the batch has no _batch.json.")
    ] = None,
    profile: ProfileOpt = None,
    usecase: UsecaseOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Validate a raw batch, quarantine bad rows, and write a versioned curated snapshot."""
    from flows.ingest import ingest as ingest_flow

    run_command(
        as_json,
        f"ingesting {input_uri}",
        lambda: ingest_flow(input_uri=absolute_uri(input_uri), period=month, profile=profile, usecase=usecase),
        show_ingest,
    )


def show_ingest(r: dict) -> None:
    rows = {
        "snapshot": r["snapshot_uri"],
        "version": f"{r['version']} ({'new' if r.get('created') else 'already there: nothing written'})",
        "rows in": f"{r['rows_in']:,}",
        "curated": f"{r['rows_curated']:,}",
        "quarantined": f"{r['rows_quarantined']:,}",
        "unlabelled": f"{r['rows_unlabelled']:,}",
        "data docs": r["data_docs_uri"],
    }
    rows |= {f"reason {q['reason']}": f"{q['rows']:,} rows" for q in r["quarantine_reasons"][:5]}
    show_mapping(f"Ingested {r['period']}", rows)


@app.command()
def demo(
    profile: ProfileOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Run the lifecycle end to end on the embedded defaults and print the time of each phase."""
    from flows.demo import run_demo

    def on_phase(name: str, seconds: float, result: Any) -> None:
        err.print(f"[green]✓[/green] {name:<20} {seconds:6.1f} s")

    def show(r: dict) -> None:
        table = Table(title="Curated snapshots", title_justify="left")
        for column in ("period", "rows in", "curated", "quarantined", "snapshot"):
            table.add_column(column)
        for s in r["snapshots"]:
            table.add_row(
                s["period"],
                f"{s['rows_in']:,}",
                f"{s['rows_curated']:,}",
                f"{s['rows_quarantined']:,}",
                s["snapshot_uri"],
            )
        Console().print(table)
        err.print(f"total {r['total_seconds']:.1f} s in phases")

    run_command(as_json, "demo", lambda: run_demo(profile=profile, on_phase=on_phase), show)
