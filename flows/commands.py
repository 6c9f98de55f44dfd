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
        holdout = r["training"]["metrics"]["holdout"]
        show_mapping(
            "Model",
            {
                "training run": r["training"]["run_id"],
                "holdout": " · ".join(
                    f"{k} {holdout[k]:.3f}" for k in ("roc_auc", "kpi", "brier", "calibration_error")
                ),
                "top features": ", ".join(r["training"]["top_features"]),
                "version": r["decision"]["version"],
                "gate": r["decision"]["outcome"],
                "champion before": r["decision"]["champion_version"] or "none",
                "why": (r["decision"]["reasons"] or [""])[0],
            },
        )
        sc = r["scoring"]
        show_mapping(
            f"Scored {sc['batch_id']} with the champion",
            {
                "rows in": f"{sc['rows_in']:,}",
                "scored": f"{sc['rows_scored']:,}",
                "quarantined": f"{sc['rows_quarantined']:,}",
                "outliers flagged": f"{sc['rows_outlier']:,}",
                "scores": sc["scores_uri"],
            },
        )
        err.print(f"total {r['total_seconds']:.1f} s in phases")

    run_command(as_json, "demo", lambda: run_demo(profile=profile, on_phase=on_phase), show)


@app.command()
def train(
    snapshot: Annotated[list[str] | None, typer.Option("--snapshot", help="Curated snapshot URI (repeatable).")] = None,
    months: Annotated[
        str | None, typer.Option("--months", help="Month range of latest snapshots, e.g. 2013-01..2013-03.")
    ] = None,
    profile: ProfileOpt = None,
    usecase: UsecaseOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Train the pipeline on curated snapshots (time split) and log it to MLflow."""
    from flows.train import train as train_flow

    def show(r: dict) -> None:
        rows = {"run id": r["run_id"], "model": r["model_uri"], "rows": r["rows"], "split": r["split"]}
        for part in ("validation", "holdout"):
            m = r["metrics"][part]
            shown = ("roc_auc", "kpi", "brier", "calibration_error")
            rows[part] = " · ".join(f"{name} {m[name]:.3f}" for name in shown)
        rows["seconds"] = r["seconds"]
        show_mapping("Trained", rows)

    snapshots = [absolute_uri(s) for s in snapshot] if snapshot else None
    run_command(
        as_json,
        "training",
        lambda: train_flow(snapshots=snapshots, months=months, profile=profile, usecase=usecase),
        show,
    )


def show_decision(r: dict) -> None:
    rows = {"version": r["version"], "outcome": r["outcome"], "champion before": r.get("champion_version")}
    for name in ("roc_auc", "kpi", "brier", "calibration_error"):
        if r.get("challenger"):
            champ = (r.get("champion") or {}).get(name)
            rows[name] = f"{r['challenger'][name]:.4f}" + ("" if champ is None else f" vs champion {champ:.4f}")
    if r.get("bootstrap"):
        b = r["bootstrap"]
        rows["difference (CI)"] = f"{b['diff']:+.4f} [{b['low']:+.4f}, {b['high']:+.4f}]"
    rows |= {f"reason {i + 1}": reason for i, reason in enumerate(r.get("reasons", []))}
    show_mapping("Gate decision", rows)


@app.command()
def register(
    run: Annotated[str, typer.Option("--run", help="MLflow run id of a training run.")],
    reason: Annotated[str, typer.Option("--reason", help="Why this model is proposed.")] = "new training run",
    profile: ProfileOpt = None,
    usecase: UsecaseOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Register a training run as @challenger; the gate decides on @champion."""
    from flows.register import register as register_flow

    run_command(
        as_json,
        "registering",
        lambda: register_flow(run_id=run, reason=reason, profile=profile, usecase=usecase),
        show_decision,
    )


@app.command()
def retrain(
    months: Annotated[
        str | None, typer.Option("--months", help="Months to train on (default: the trailing ones).")
    ] = None,
    trailing: Annotated[int, typer.Option("--trailing", help="How many latest landed months to train on.")] = 3,
    reason: Annotated[str, typer.Option("--reason", help="Why retraining runs.")] = "manual retraining",
    profile: ProfileOpt = None,
    usecase: UsecaseOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Ingest landed batches, train on the trailing months, register behind the gate."""
    from flows.retrain import retrain as retrain_flow

    run_command(
        as_json,
        "retraining",
        lambda: retrain_flow(months=months, trailing_months=trailing, reason=reason, profile=profile, usecase=usecase),
        lambda r: show_decision(r["decision"]),
    )


@app.command()
def history(profile: ProfileOpt = None, usecase: UsecaseOpt = None, as_json: JsonOpt = False) -> None:
    """Every move of the model's aliases: when, from which version to which, why, by which flow run."""
    from flows.context import build_context

    def work() -> dict:
        ctx = build_context(profile, usecase)
        name = ctx.usecase.registered_model
        registry = ctx.registry()
        current = {a: (v.version if (v := registry.get_alias(name, a)) else None) for a in ("champion", "challenger")}
        return {"model": name, "aliases": current, "moves": [m.__dict__ for m in registry.alias_history(name)]}

    def show(r: dict) -> None:
        table = Table(
            title=f"{r['model']}: champion {r['aliases']['champion']}, challenger {r['aliases']['challenger']}"
        )
        for column in ("at", "alias", "from", "to", "reason", "flow run"):
            table.add_column(column)
        for m in r["moves"]:
            table.add_row(
                m["at"],
                m["alias"],
                str(m["from_version"]),
                str(m["to_version"]),
                m["reason"],
                str(m["flow_run_id"] or ""),
            )
        Console().print(table)

    run_command(as_json, "reading history", work, show)


@app.command()
def rollback(
    reason: Annotated[str, typer.Option("--reason", help="Why the current champion is withdrawn.")],
    profile: ProfileOpt = None,
    usecase: UsecaseOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Move @champion back to the previous champion and record why."""
    from flows.register import rollback as rollback_flow

    run_command(
        as_json,
        "rolling back",
        lambda: rollback_flow(reason=reason, profile=profile, usecase=usecase),
        lambda r: show_mapping("Rolled back", {"from": r["from_version"], "to": r["to_version"], "reason": reason}),
    )


stack_app = typer.Typer(help="The local stack: S3 API, Prefect server, MLflow server, process worker on 127.0.0.1.")
app.add_typer(stack_app, name="stack")


@stack_app.command("up")
def stack_up(
    prefect_port: Annotated[int, typer.Option(help="Prefect server port (0: a free one).")] = 4200,
    mlflow_port: Annotated[int, typer.Option(help="MLflow server port (0: a free one).")] = 5000,
    s3_port: Annotated[int, typer.Option(help="S3 API port (0: a free one).")] = 9000,
    deploy: Annotated[bool, typer.Option(help="Apply the work pool and `prefect deploy --all`.")] = True,
    as_json: JsonOpt = False,
) -> None:
    """Start the stack (what already runs is kept), apply pools and deployments, start the worker."""
    from adapters.processes import free_port
    from flows import stack

    def work() -> dict:
        state = stack.read_state()
        ports = None
        if "ports" not in state or any(p != d for p, d in ((prefect_port, 4200), (mlflow_port, 5000), (s3_port, 9000))):
            ports = stack.Ports(*(p or free_port() for p in (prefect_port, mlflow_port, s3_port)))
        return stack.up(ports, deploy=deploy)

    def show(r: dict) -> None:
        show_mapping("Stack up", {**r["urls"], **{f"{k} s": v for k, v in r["seconds"].items()}})
        err.print("[dim]point a shell at it: eval $(mlops stack env)[/dim]")

    run_command(as_json, "starting the stack", work, show)


@stack_app.command("status")
def stack_status(as_json: JsonOpt = False) -> None:
    """PIDs, health and URLs of the stack's processes."""
    from flows import stack

    def show(r: dict) -> None:
        rows = {
            name: f"pid {c['pid']} · {'healthy' if c['healthy'] else 'running' if c['running'] else 'stopped'}"
            for name, c in r["components"].items()
        }
        show_mapping("Stack", {**rows, **{f"url {k}": v for k, v in r["urls"].items()}})

    run_command(as_json, "reading the stack", stack.status, show)


@stack_app.command("down")
def stack_down(as_json: JsonOpt = False) -> None:
    """Save the S3 buckets to disk and stop every process of the stack by its PID."""
    from flows import stack

    run_command(as_json, "stopping the stack", stack.down, lambda r: show_mapping("Stack down", r))


@stack_app.command("env")
def stack_env(as_json: JsonOpt = False) -> None:
    """Print `export` lines that point the `stack` profile and the Prefect CLI at the running stack."""
    from flows import stack

    if as_json:
        sys.stdout.write(json.dumps({"ok": True, "result": stack.status()["env"]}) + "\n")
        return
    for key, value in stack.status()["env"].items():
        sys.stdout.write(f"export {key}={value}\n")


@app.command()
def score(
    input_uri: Annotated[str, typer.Option("--input", help="Curated snapshot, month folder, parquet file or folder.")],
    output: Annotated[
        str | None, typer.Option("--output", help="Output root (default: <lake>/<usecase>/scores).")
    ] = None,
    model_alias: Annotated[str, typer.Option("--model-alias", help="Registry alias to score with.")] = "champion",
    profile: ProfileOpt = None,
    usecase: UsecaseOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Score a batch with the model behind an alias; lineage on every row, bad rows quarantined."""
    from flows.score import score as score_flow

    def show(r: dict) -> None:
        rows = {
            "model": f"{r['model']['name']} v{r['model']['version']} (@{r['model']['alias']})",
            "batch": r["batch_id"],
            "rows in": f"{r['rows_in']:,}",
            "scored": f"{r['rows_scored']:,}",
            "quarantined": f"{r['rows_quarantined']:,}",
            "outliers flagged": f"{r['rows_outlier']:,}",
            "throughput": f"{r['rows_per_second']:,.0f} rows/s",
            "scores": r["scores_uri"],
        }
        show_mapping("Scored", rows)

    run_command(
        as_json,
        f"scoring {input_uri}",
        lambda: score_flow(
            input_uri=absolute_uri(input_uri),
            output_uri=absolute_uri(output),
            model_alias=model_alias,
            profile=profile,
            usecase=usecase,
        ),
        show,
    )
