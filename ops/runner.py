"""Serve the deployments of prefect.yaml from this process (a Prefect runner): no work pool, no worker.

The runner registers each deployment with the same entrypoint, parameters, concurrency limit, triggers and
(optionally) schedules as `prefect deploy --all` would, then polls the API and runs their flow runs in
subprocesses. It is what the embedded demo and the event tests run; production uses the work pools of
infra/work-pools with the same prefect.yaml.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import yaml

from tasks.errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parents[1]
PREFECT_YAML = REPO_ROOT / "prefect.yaml"


def deployment_specs(path: Path = PREFECT_YAML, names: list[str] | None = None) -> list[dict]:
    """The deployments of prefect.yaml (only ``names``, in that order, when given)."""
    specs = yaml.safe_load(path.read_text())["deployments"]
    if not names:
        return specs
    by_name = {s["name"]: s for s in specs}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise ConfigError(f"{path.name}: no deployment named {', '.join(unknown)} (have: {', '.join(by_name)})")
    return [by_name[n] for n in names]


def load_entrypoint(entrypoint: str) -> Any:
    """The flow object of ``path/to/module.py:flow_name`` (the module imported from the repository root)."""
    path, name = entrypoint.split(":")
    module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
    return getattr(module, name)


def runner_deployment(spec: dict, with_schedules: bool = True) -> Any:
    """A RunnerDeployment with the spec's parameters, concurrency limit, triggers and schedules."""
    from prefect.events import DeploymentEventTrigger

    flow = load_entrypoint(spec["entrypoint"])
    schedules = spec.get("schedules") if with_schedules else None
    return flow.to_deployment(
        name=spec["name"],
        description=spec.get("description"),
        tags=spec.get("tags"),
        parameters=spec.get("parameters") or {},
        concurrency_limit=spec.get("concurrency_limit"),
        triggers=[DeploymentEventTrigger(**t) for t in spec.get("triggers") or []],
        cron=[s["cron"] for s in schedules or [] if "cron" in s] or None,
    )


def serve_deployments(names: list[str] | None = None, with_schedules: bool = True, limit: int | None = None) -> None:
    """Register the deployments and run their flow runs until interrupted (SIGTERM / Ctrl-C)."""
    from prefect import serve

    deployments = [runner_deployment(s, with_schedules) for s in deployment_specs(names=names)]
    serve(*deployments, limit=limit, print_starting_message=False)
