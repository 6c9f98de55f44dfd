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

from ops import command_log
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


@app.callback()
def _options(
    debug: Annotated[
        bool,
        typer.Option("--debug", help="Show logs and the traceback of a failure on the terminal. Env: MLOPS_DEBUG=1."),
    ] = False,
) -> None:
    """Run the model lifecycle: land, ingest, train, register, score, monitor."""
    command_log.set_debug(debug)


def run_command(
    as_json: bool, label: str, work: Callable[[], Any], show: Callable[[Any], None], *, service: bool = False
) -> None:
    """Run ``work`` with a spinner, print its result as JSON or via ``show``; turn known errors into one line.

    Logs go to a log file of this run (``command_log``); on failure the line names it and it holds the traceback.
    An always-on ``service`` keeps logging on stderr, where container platforms and supervisors collect it.
    """
    started = time.perf_counter()
    log = command_log.new_log_file(label)
    logs = contextlib.nullcontext() if service else command_log.logs_to(log)
    try:
        with _quiet_stdout(as_json), logs, _spinner(label):
            result = work()
    except Exception as exc:  # a flow run re-raises what failed inside it; keep the one-line contract
        command_log.record_failure(log, exc)
        message = str(exc) if isinstance(exc, MlopsError) else f"{type(exc).__name__}: {exc}"
        first = message.splitlines()[0] if message.strip() else type(exc).__name__
        _fail(as_json, first if command_log.debug_enabled() else f"{first} (traceback and logs: {log})")
    elapsed = round(time.perf_counter() - started, 2)
    if as_json:
        sys.stdout.write(json.dumps({"ok": True, "seconds": elapsed, "result": result}, default=str) + "\n")
    else:
        show(result)
        err.print(f"[dim]done in {elapsed:.1f} s[/dim]")


def _fail(as_json: bool, message: str) -> None:
    if as_json:
        sys.stdout.write(json.dumps({"ok": False, "error": message}) + "\n")
    err.print("[bold red]error:[/bold red] ", end="")
    err.print(message, highlight=False, soft_wrap=True, markup=False)  # [brackets] in a message stay as they are
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
    month: Annotated[
        str,
        typer.Option(
            "--month",
            "--period",
            help="Period to land: YYYY-MM, or YYYY-Www / YYYY-MM-DD for weekly / daily use cases.",
        ),
    ],
    to: Annotated[
        str | None,
        typer.Option("--to", help="Landing folder or s3://bucket/prefix (default: the profile's)."),
    ] = None,
    raw_format: Annotated[str | None, typer.Option("--format", help="csv (default) or parquet.")] = None,
    profile: ProfileOpt = None,
    usecase: UsecaseOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Land one period of raw source data as an upstream delivery."""
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
        str | None,
        typer.Option("--month", "--period", help="Batch period (e.g. 2013-01), when the batch has no _batch.json."),
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
    from ops.demo import run_demo

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
            "First model",
            {
                "training run": r["training"]["run_id"],
                "holdout": " · ".join(
                    f"{k} {holdout[k]:.3f}" for k in ("roc_auc", "kpi", "brier", "calibration_error")
                ),
                "version": r["decision"]["version"],
                "gate": r["decision"]["outcome"],
            },
        )
        for check in r["drift_checks"]:
            status = "insufficient data" if check["drifted"] is None else ("DRIFTED" if check["drifted"] else "stable")
            show_mapping(
                f"Drift check {check['window']}",
                {
                    "verdict": f"{status}: {check['reason']}",
                    "retraining": check["decision"],
                    "report": check["report_uri"],
                },
            )
        retrain = r["retrain"]
        if retrain:
            gate = retrain["gate"]
            show_mapping(
                "Retraining started by the event trigger",
                {
                    "flow run": f"{retrain['flow_run']} ({retrain['state']}, {retrain['seconds_in_run']:.1f} s)",
                    "window": retrain["parameters"].get("window_end"),
                    "gate": f"version {gate.get('version')}: {gate.get('outcome')}",
                    "why": gate.get("reasons", ""),
                    "champion now": gate.get("champion"),
                },
            )
        else:
            err.print("no retraining was requested by the drift checks")
        err.print(f"total {r['total_seconds']:.1f} s in phases; Prefect UI was at {r['prefect']['api_url']}")

    def on_progress(line: str) -> None:  # a triggered run that takes long is shown moving, not silently awaited
        err.print(f"  … {line}", highlight=False, markup=False)

    run_command(as_json, "demo", lambda: run_demo(profile=profile, on_phase=on_phase, on_progress=on_progress), show)


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
    window_end: Annotated[
        str | None, typer.Option("--window-end", help="Last month of the trailing window (default: the latest).")
    ] = None,
    reason: Annotated[str, typer.Option("--reason", help="Why retraining runs.")] = "manual retraining",
    profile: ProfileOpt = None,
    usecase: UsecaseOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Ingest landed batches, train on the trailing months, register behind the gate (once per data window)."""
    from flows.retrain import retrain as retrain_flow

    def show(r: dict) -> None:
        if r["status"] == "already_retrained":
            show_mapping(
                "Already retrained on this data window",
                {"months": ", ".join(r["window"]), "version": r["version"], "gate": r.get("outcome", "")},
            )
        else:
            show_decision(r["decision"])

    run_command(
        as_json,
        "retraining",
        lambda: retrain_flow(
            months=months,
            trailing_months=trailing,
            window_end=window_end,
            reason=reason,
            profile=profile,
            usecase=usecase,
        ),
        show,
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
    postgres_port: Annotated[int, typer.Option(help="PostgreSQL port, with --postgres (0: a free one).")] = 15432,
    postgres: Annotated[
        bool | None,
        typer.Option(
            "--postgres/--sqlite",
            help="Prefect and MLflow data in PostgreSQL (a cluster in var/stack/postgres, from the server binaries "
            "on this machine) or in SQLite files. Default: what the stack already uses, SQLite for a new one.",
        ),
    ] = None,
    deploy: Annotated[bool, typer.Option(help="Apply the work pool and `prefect deploy --all`.")] = True,
    as_json: JsonOpt = False,
) -> None:
    """Start the stack (what already runs is kept), apply pools and deployments, start the worker."""
    from adapters.processes import free_port
    from ops import stack

    def work() -> dict:
        state = stack.read_state()
        given = (prefect_port, mlflow_port, s3_port, postgres_port)
        ports = None
        if "ports" not in state or given != (4200, 5000, 9000, 15432):
            ports = stack.Ports(*(p or free_port() for p in given))
        backend = None if postgres is None else "postgres" if postgres else "sqlite"
        return stack.up(ports, deploy=deploy, backend=backend)

    def show(r: dict) -> None:
        show_mapping("Stack up", {**r["urls"], **{f"{k} s": v for k, v in r["seconds"].items()}})
        err.print("[dim]point a shell at it: eval $(mlops stack env)[/dim]")

    run_command(as_json, "starting the stack", work, show)


@stack_app.command("status")
def stack_status(as_json: JsonOpt = False) -> None:
    """PIDs, health and URLs of the stack's processes."""
    from ops import stack

    def show(r: dict) -> None:
        rows = {
            name: f"pid {c['pid']} · {'healthy' if c['healthy'] else 'running' if c['running'] else 'stopped'}"
            for name, c in r["components"].items()
        }
        api = r.get("api") or {}
        served = {"api serves": f"version {api['version']} at {api['url']}" if api.get("version") else "no model yet"}
        show_mapping(
            "Stack", {"backend": r["backend"], **rows, **{f"url {k}": v for k, v in r["urls"].items()}, **served}
        )

    run_command(as_json, "reading the stack", stack.status, show)


@stack_app.command("down")
def stack_down(as_json: JsonOpt = False) -> None:
    """Save the S3 buckets to disk and stop every process of the stack by its PID."""
    from ops import stack

    run_command(as_json, "stopping the stack", stack.down, lambda r: show_mapping("Stack down", r))


@stack_app.command("env")
def stack_env(as_json: JsonOpt = False) -> None:
    """Print `export` lines that point the `stack` profile and the Prefect CLI at the running stack."""
    from ops import stack

    if as_json:
        sys.stdout.write(json.dumps({"ok": True, "result": stack.status()["env"]}) + "\n")
        return
    for key, value in stack.status()["env"].items():
        sys.stdout.write(f"export {key}={value}\n")


infra_app = typer.Typer(help="Work pools (infra/work-pools) and deployments (prefect.yaml) on a Prefect API.")
app.add_typer(infra_app, name="infra")


@infra_app.command("apply")
def infra_apply(
    pool: Annotated[
        list[str] | None,
        typer.Option("--pool", help="Pool type to apply (repeatable): process, docker, kubernetes, ecs. Default: all."),
    ] = None,
    assignments: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="Job-variable default NAME=VALUE for the selected pools (repeatable); VALUE is read as JSON when it "
            "parses, an object is merged into the template's (env, labels).",
        ),
    ] = None,
    defaults_file: Annotated[
        Path | None,
        typer.Option(
            "--defaults-file",
            help="JSON object of job-variable defaults, e.g. `terraform output -json work_pool_job_variables`; "
            "--set wins over it.",
        ),
    ] = None,
    deploy: Annotated[bool, typer.Option(help="Then `prefect deploy --all` (prefect.yaml).")] = True,
    deploy_pool: Annotated[
        str | None,
        typer.Option(
            "--deploy-pool",
            help="Deploy every deployment to this pool type (e.g. kubernetes) instead of the pool in prefect.yaml.",
        ),
    ] = None,
    profile: ProfileOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create or update the work pools from infra/work-pools, then deploy prefect.yaml; twice changes nothing."""
    from ops import infra

    def work() -> dict:
        defaults = infra.read_defaults_file(defaults_file) if defaults_file else {}
        defaults |= infra.parse_assignments(assignments or [])
        pools = tuple(pool or infra.POOL_TYPES)
        api_url = infra.resolve_api_url(profile)
        return infra.apply(api_url, pools, defaults=defaults, deploy=deploy, deploy_pool=deploy_pool)

    def show(r: dict) -> None:
        rows = {f"pool {name}": outcome for name, outcome in r["pools"].items()}
        rows |= {f"deployment {name}": outcome for name, outcome in r["deployments"].items()}
        rows |= dict(r.get("notifications", {}))
        show_mapping(f"Applied to {r['api_url']}", rows)

    run_command(as_json, "applying work pools and deployments", work, show)


@app.command()
def score(
    input_uri: Annotated[
        str | None,
        typer.Option("--input", help="Curated snapshot, month folder, parquet file or folder (default: latest month)."),
    ] = None,
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
        f"scoring {input_uri or 'the latest curated month'}",
        lambda: score_flow(
            input_uri=absolute_uri(input_uri),
            output_uri=absolute_uri(output),
            model_alias=model_alias,
            profile=profile,
            usecase=usecase,
        ),
        show,
    )


WindowOpt = Annotated[
    str | None, typer.Option("--window", help="Window: a month (YYYY-MM) or batch id (default: the latest scored).")
]


@app.command("drift-check")
def drift_check(
    window: WindowOpt = None,
    model_alias: Annotated[str, typer.Option("--model-alias", help="Model whose reference is compared.")] = "champion",
    profile: ProfileOpt = None,
    usecase: UsecaseOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Compare a scored window with the model's training reference; emit mlops.drift.detected when warranted."""
    from flows.drift import drift_check as drift_flow

    def show(r: dict) -> None:
        status = "insufficient data" if r["drifted"] is None else ("DRIFTED" if r["drifted"] else "stable")
        rows = {
            "window": r["window"],
            "model": f"{r['model']['name']} v{r['model']['version']}",
            "verdict": f"{status}: {r['reason']}",
            "retraining": f"{'requested' if r['retrain_requested'] else 'not requested'} ({r['decision']})",
            "event": r["event"]["id"] if r.get("event") else "none",
            "report": r["report_uri"],
        }
        show_mapping("Drift check", rows)

    run_command(
        as_json,
        "checking drift",
        lambda: drift_flow(window=window, model_alias=model_alias, profile=profile, usecase=usecase),
        show,
    )


@app.command("performance-check")
def performance_check(
    window: WindowOpt = None,
    labels: Annotated[
        str | None, typer.Option("--labels", help="Parquet with id and target (default: the window's snapshot).")
    ] = None,
    model_alias: Annotated[str, typer.Option("--model-alias", help="Model whose scores are judged.")] = "champion",
    profile: ProfileOpt = None,
    usecase: UsecaseOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Realized metrics of a scored window once its labels arrived; emit mlops.performance.degraded when low."""
    from flows.performance import performance_check as performance_flow

    def show(r: dict) -> None:
        status = {None: "no verdict", True: "DEGRADED", False: "ok"}[r["degraded"]]
        rows = {
            "window": r["window"],
            "model": f"{r['model']['name']} v{r['model']['version']}",
            "verdict": f"{status}: {r['reason']}",
            **{
                k: f"{v:.4f}"
                for k, v in r["metrics"].items()
                if k in ("roc_auc", "log_loss", "calibration_error", "kpi")
            },
            "labelled rows": f"{r['counts']['rows_labelled']:,} of {r['counts']['rows_scored']:,}",
            "event": r["event"]["id"] if r.get("event") else "none",
        }
        show_mapping("Performance check", rows)

    run_command(
        as_json,
        "checking performance",
        lambda: performance_flow(
            window=window, labels_uri=absolute_uri(labels), model_alias=model_alias, profile=profile, usecase=usecase
        ),
        show,
    )


@app.command()
def serve(
    deployment: Annotated[
        list[str] | None, typer.Option("--deployment", help="Deployment of prefect.yaml to serve (default: all).")
    ] = None,
    schedules: Annotated[bool, typer.Option("--schedules/--no-schedules", help="Register the cron schedules.")] = True,
    limit: Annotated[int | None, typer.Option("--limit", help="Most flow runs at once.")] = None,
) -> None:
    """Serve prefect.yaml's deployments from this process (triggers, schedules, limits) until stopped."""
    from ops.runner import serve_deployments

    serve_deployments(names=deployment or None, with_schedules=schedules, limit=limit)


@app.command()
def replay(
    first: Annotated[str, typer.Option("--first", help="First replayed month, YYYY-MM.")] = "2013-04",
    last: Annotated[str, typer.Option("--last", help="Last replayed month, YYYY-MM.")] = "2013-12",
    base: Annotated[
        str, typer.Option("--base", help="Months of the first champion (before --first).")
    ] = "2013-01..2013-03",
    home: Annotated[
        Path | None,
        typer.Option("--home", help="The replay's own MLOPS_HOME, emptied first (default: <MLOPS_HOME>/replay)."),
    ] = None,
    usecase: UsecaseOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Replay months through the real loop (events, triggered retrains, gate) against static and oracle policies."""
    from ops.replay import run_replay
    from tasks.replay import month_table, summary_rows

    def on_month(record: dict) -> None:
        err.print(f"[green]✓[/green] {record['month']}  {record['seconds']['total']:6.1f} s")

    def on_progress(line: str) -> None:
        err.print(f"  … {line}", highlight=False, markup=False)

    def show(r: dict) -> None:
        lines = month_table(r)
        table = Table(title=f"Replay {r['months'][0]}..{r['months'][-1]} (first champion on {', '.join(r['base'])})")
        for column in lines[0]:
            table.add_column(column)
        for row in lines[1:]:
            table.add_row(*row)
        Console().print(table)
        show_mapping("Summary", dict(summary_rows(r)))

    run_command(
        as_json,
        f"replaying {first}..{last}",
        lambda: run_replay(
            first=first, last=last, base=base, home=home, usecase=usecase, on_month=on_month, on_progress=on_progress
        ),
        show,
    )


# each module registers its commands on ``app``
from ops import cli_api, cli_approval, cli_backup, cli_dashboard, cli_data, cli_stream  # noqa: E402,F401
