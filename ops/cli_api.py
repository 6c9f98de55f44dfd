"""``mlops api``: the REST scoring service (services/api.py) wired from the settings and run by uvicorn.

The command execs uvicorn (``--factory ops.cli_api:app_from_env``) with N workers; every worker builds its
own app from the settings named in its environment (profile, use case, overrides of ``api:``). Thread
policy: each worker's OpenMP / BLAS pools are limited to one thread (environment set before any worker
imports numpy or scikit-learn, threadpoolctl in the worker as well), so N workers use N cores, not N x cores.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from typing import Annotated, Any

import typer

from adapters import compute
from ops.commands import JsonOpt, app

OVERRIDES_ENV = "MLOPS_API_OVERRIDES"


def build_services(profile: str | None = None, usecase: str | None = None, overrides: dict | None = None) -> Any:
    """Holders, prediction logs and settings of the API, from the config (and ``overrides`` of ``api:``)."""
    from adapters.model_holder import ModelHolder
    from adapters.prediction_log import PredictionLog
    from adapters.storage import join_uri
    from flows.context import build_context
    from services.api import ApiServices
    from tasks import serving
    from tasks.serving import ApiSettings
    from tasks.training import model_inputs

    ctx = build_context(profile, usecase)
    api = ApiSettings.model_validate({**ctx.settings.api.model_dump(), **(overrides or {})})
    uc, registry = ctx.usecase, ctx.registry()
    holder_args = {"download_root": f"{ctx.settings.home}/models", "poll_seconds": api.poll_seconds}

    def holder(alias: str, version: str | None) -> ModelHolder:
        return ModelHolder(registry, uc, alias=alias, version=version, check_rows=api.check_rows, **holder_args)

    pii_key = ctx.pii_key(model_inputs(uc))  # only the inputs a request carries are hashed on the way in

    def prediction_log(name: str) -> PredictionLog | None:
        if not api.log_predictions:
            return None
        root = join_uri(ctx.lake_root, name)
        return PredictionLog(
            ctx.storage(root),
            root,
            uc.name,
            window=api.log_window,
            flush_rows=api.log_flush_rows,
            flush_seconds=api.log_flush_seconds,
            combine=lambda requests: serving.prediction_rows(requests, uc, pii_key),
        )

    return ApiServices(
        usecase=uc,
        settings=api,
        holder=holder(api.alias, api.version),
        log=prediction_log("predictions"),
        shadow=holder(api.shadow_alias, None) if api.shadow_alias else None,
        shadow_log=prediction_log("predictions_shadow") if api.shadow_alias else None,
        pii_key=pii_key,
    )


def app_from_env() -> Any:
    """uvicorn's factory: the app of this worker, from ``MLOPS_PROFILE``, ``MLOPS_USECASE``, overrides."""
    from threadpoolctl import threadpool_limits

    from services.api import create_app

    # one worker, one core (the product's thread policy, adapters/compute.py): this thread here, the threadpool's
    # threads through the environment `mlops api` set before the workers started
    threadpool_limits(compute.DEFAULT_MODEL_THREADS)
    overrides = json.loads(os.environ.get(OVERRIDES_ENV) or "{}")
    return create_app(build_services(os.environ.get("MLOPS_PROFILE"), os.environ.get("MLOPS_USECASE"), overrides))


def uvicorn_command(host: str, port: int, workers: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "uvicorn",
        "ops.cli_api:app_from_env",
        "--factory",
        "--host",
        host,
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--no-access-log",
        "--timeout-graceful-shutdown",
        "20",
    ]


def api_environment(
    base: dict[str, str], profile: str | None, usecase: str | None, overrides: dict, workers: int
) -> dict[str, str]:
    """The workers' environment: settings to build from, one OpenMP thread each, shared metrics folder."""
    env = {**base, OVERRIDES_ENV: json.dumps(overrides), **compute.thread_env(compute.DEFAULT_MODEL_THREADS)}
    if profile:
        env["MLOPS_PROFILE"] = profile
    if usecase:
        env["MLOPS_USECASE"] = usecase
    if workers > 1 and not env.get("PROMETHEUS_MULTIPROC_DIR"):
        env["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="mlops-api-metrics-")
    return env


@app.command("api")
def api_command(
    host: Annotated[str | None, typer.Option(help="Address to bind (default from config: 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default from config: 8000; 0 is not allowed).")] = None,
    workers: Annotated[int | None, typer.Option(help="uvicorn worker processes (default from config: 1).")] = None,
    alias: Annotated[str | None, typer.Option(help="Alias to follow (default: champion).")] = None,
    version: Annotated[
        str | None, typer.Option(help="Serve this fixed version instead of following the alias.")
    ] = None,
    shadow_alias: Annotated[
        str | None, typer.Option("--shadow-alias", help="Also score every request with this alias, off the path.")
    ] = None,
    no_log: Annotated[bool, typer.Option("--no-log", help="Do not write the prediction log.")] = False,
    profile: Annotated[str | None, typer.Option("--profile", help="Config profile. Env: MLOPS_PROFILE.")] = None,
    usecase: Annotated[str | None, typer.Option("--usecase", help="Use case. Env: MLOPS_USECASE.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Serve online predictions (REST) with the version behind an alias; swaps versions without a restart.

    With --json, one JSON object (URL, workers, what it follows) is printed before uvicorn takes over; uvicorn
    itself logs to stderr.
    """
    from flows.settings import load_settings

    given = {"host": host, "port": port, "workers": workers, "alias": alias, "version": version}
    overrides: dict[str, Any] = {k: v for k, v in given.items() if v is not None}
    if shadow_alias:
        overrides["shadow_alias"] = shadow_alias
    if no_log:
        overrides["log_predictions"] = False
    try:
        from tasks.serving import ApiSettings

        api = ApiSettings.model_validate({**load_settings(profile).api.model_dump(), **overrides})
    except Exception as exc:
        _refuse(as_json, f"{exc}".splitlines()[0])
    if api.workers < 1 or not 0 < api.port < 65536:
        _refuse(as_json, "--workers must be >= 1 and --port in 1..65535")
    env = api_environment(dict(os.environ), profile, usecase, overrides, api.workers)
    follows = f"version {api.version}" if api.version else f"@{api.alias}"
    if as_json:
        result = {"url": f"http://{api.host}:{api.port}", "workers": api.workers, "follows": follows}
        sys.stdout.write(json.dumps({"ok": True, "result": result}) + "\n")
    typer.echo(
        f"serving {follows} on http://{api.host}:{api.port} with {api.workers} worker(s), OpenMP 1 thread each",
        err=True,
    )
    sys.stdout.flush()
    # exec, not a child: signals (SIGTERM from compose / Kubernetes) reach uvicorn, which drains and flushes
    os.execve(sys.executable, uvicorn_command(api.host, api.port, api.workers), env)  # noqa: S606


def _refuse(as_json: bool, message: str) -> None:
    if as_json:
        sys.stdout.write(json.dumps({"ok": False, "error": message}) + "\n")
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(1)
