"""Work pools and deployments on a Prefect API, from infra/work-pools/*.json and prefect.yaml (`mlops infra apply`).

A pool ``mlops-<type>`` is created from ``infra/work-pools/<type>.json``; an existing one is updated only when its
stored base job template differs from the file's (with the job-variable defaults given on the command line), so
applying twice changes nothing. Then ``prefect --no-prompt deploy --all`` runs from the repository root, and every
deployment of prefect.yaml is reported as created, updated or unchanged by comparing what the server holds before
and after (ids and timestamps aside: ``prefect deploy`` recreates schedules and trigger automations each time).
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from flows.settings import DEFAULT_PROFILE, REPO_ROOT
from tasks.errors import MlopsError

if TYPE_CHECKING:
    from prefect.client.orchestration import SyncPrefectClient

POOLS_DIR = REPO_ROOT / "infra" / "work-pools"
PREFECT_YAML = REPO_ROOT / "prefect.yaml"
POOL_TYPES = ("process", "docker", "kubernetes", "ecs")
# env names that would store a secret in a pool (flows get secrets at run time)
_SECRET_ENV = frozenset({"MLOPS_PII_KEY", "PREFECT_API_KEY", "PREFECT_API_AUTH_STRING"})
_SECRET_WORDS = ("PASSWORD", "TOKEN")
# keys whose values change on every `prefect deploy` or poll without any change of what was declared
_VOLATILE = frozenset({"id", "created", "updated", "created_by", "updated_by", "last_polled", "status", "active_slots"})


def pool_name(pool_type: str) -> str:
    return f"mlops-{pool_type}"


def parse_assignments(items: Sequence[str]) -> dict[str, Any]:
    """``NAME=VALUE`` pairs; a VALUE that parses as JSON is taken as JSON (numbers, objects), else as a string.

    Raises:
        MlopsError: an item has no ``=`` or an empty name.
    """
    values: dict[str, Any] = {}
    for item in items:
        name, sep, raw = item.partition("=")
        if not sep or not name.strip():
            raise MlopsError(f"--set expects NAME=VALUE, got '{item}'")
        try:
            values[name.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            values[name.strip()] = raw
    return values


def read_defaults_file(path: Path) -> dict[str, Any]:
    """Job-variable defaults from a JSON object file (e.g. ``terraform output -json work_pool_job_variables``)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise MlopsError(f"cannot read job-variable defaults from {path}: {exc}") from None
    if not isinstance(data, dict):
        raise MlopsError(f"{path}: expected a JSON object of job-variable names to values")
    return data


def load_template(pool_type: str, defaults: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The base job template of ``infra/work-pools/<pool_type>.json`` with ``defaults`` as variable defaults.

    An object default (``env``, ``labels``, ...) given as an object is merged into the file's (given keys win);
    any other value replaces the file's default. Every value is checked against its variable's schema. In a given
    ``env``, PREFECT_API_URL is dropped (the worker passes its own) and secrets are refused.

    Raises:
        MlopsError: unknown pool type, unknown variable, a secret in ``env``, or a value its schema refuses.
    """
    path = POOLS_DIR / f"{pool_type}.json"
    if pool_type not in POOL_TYPES or not path.is_file():
        raise MlopsError(f"unknown pool type '{pool_type}' (known: {', '.join(POOL_TYPES)})")
    template = json.loads(path.read_text(encoding="utf-8"))
    if not defaults:
        return template
    properties = template["variables"]["properties"]
    unknown = sorted(set(defaults) - set(properties))
    if unknown:
        raise MlopsError(f"pool {pool_name(pool_type)} has no job variable {', '.join(unknown)} (see {path.name})")
    for name, value in defaults.items():
        if name == "env" and isinstance(value, dict):
            value = _plain_env(pool_type, value)
        current = properties[name].get("default")
        merged = current | value if isinstance(current, dict) and isinstance(value, dict) else value
        properties[name]["default"] = copy.deepcopy(merged)
    _check_defaults(pool_type, template, sorted(defaults))
    return template


def _plain_env(pool_type: str, env: Mapping[str, Any]) -> dict[str, Any]:
    """``env`` without PREFECT_API_URL (the worker passes its own); secrets are refused, never stored in a pool."""
    secrets = sorted(name for name in env if name in _SECRET_ENV or any(w in name.upper() for w in _SECRET_WORDS))
    if secrets:
        raise MlopsError(
            f"pool {pool_name(pool_type)}: env {', '.join(secrets)} would store a secret in the pool; the flows get "
            "secrets at run time (the pool's secret references, the role, Prefect Secret blocks)"
        )
    return {name: value for name, value in env.items() if name != "PREFECT_API_URL"}


def _check_defaults(pool_type: str, template: dict[str, Any], names: list[str]) -> None:
    from prefect.utilities.schema_tools import validate

    variables = template["variables"]
    values = {name: variables["properties"][name]["default"] for name in names}
    errors = validate(values, variables, raise_on_error=False, preprocess=True, ignore_required=True)
    if errors:
        error = errors[0]
        where = ".".join(str(p) for p in error.path) or "?"
        why = f"{error.instance!r} does not match its pattern" if error.validator == "pattern" else error.message
        raise MlopsError(f"pool {pool_name(pool_type)}: job variable {where}: {why} (see {pool_type}.json)")


def resolve_api_url(profile: str | None) -> str:
    """The Prefect API to apply to: the local stack's for the ``stack`` profile, else the configured one.

    Raises:
        MlopsError: the stack is not running, or no Prefect API is configured.
    """
    chosen = profile or os.environ.get("MLOPS_PROFILE") or DEFAULT_PROFILE
    if chosen == "stack":
        from ops import stack  # imported here: ops.stack imports this module to apply the process pool

        report = stack.status()
        if not report["components"]["prefect"]["healthy"]:
            raise MlopsError("the local stack's Prefect server is not running: start it with `mlops stack up`")
        return report["env"]["PREFECT_API_URL"]
    from prefect.settings import get_current_settings

    url = get_current_settings().api.url
    if not url:
        raise MlopsError(
            f"no Prefect API for profile '{chosen}': set PREFECT_API_URL (and PREFECT_API_KEY for Prefect Cloud), "
            "or use --profile stack while `mlops stack up` runs"
        )
    return url


def apply(
    api_url: str,
    pool_types: Sequence[str] = POOL_TYPES,
    *,
    defaults: Mapping[str, Any] | None = None,
    deploy: bool = True,
    deploy_pool: str | None = None,
    env: Mapping[str, str] | None = None,
    notify: bool | None = None,
) -> dict[str, Any]:
    """Create or update the work pools, then `prefect deploy --all` and the notifications; report what changed.

    Args:
        api_url: the Prefect API (``.../api``).
        pool_types: pools to apply, by type (``process``, ``docker``, ``kubernetes``, ``ecs``).
        defaults: job-variable defaults set in every selected pool's template (see ``load_template``).
        deploy: also deploy every deployment of prefect.yaml.
        deploy_pool: deploy every deployment to this pool type instead of the pool prefect.yaml names.
        env: environment of the ``prefect deploy`` process (default: this process's).
        notify: apply infra/automations/notifications.yaml (ops/notifications.py): None applies it with deploy
            and skips it when no channel URL is configured; True requires the URL; False leaves it alone.

    Raises:
        MlopsError: a template or value is refused, a pool of another type has the name, prefect.yaml's pool is
            missing on the server, or ``prefect deploy`` fails.
    """
    started = time.perf_counter()
    templates = {pool_type: load_template(pool_type, defaults) for pool_type in dict.fromkeys(pool_types)}
    pools = apply_pools(api_url, templates)
    seconds = {"pools": round(time.perf_counter() - started, 2)}
    report: dict[str, Any] = {"api_url": api_url, "pools": pools, "deployments": {}, "seconds": seconds}
    if deploy:
        started = time.perf_counter()
        report["deployments"] = deploy_all(api_url, env, deploy_pool)
        seconds["deploy"] = round(time.perf_counter() - started, 2)
    if notify or (notify is None and deploy):
        from ops.notifications import apply_notifications

        report["notifications"] = apply_notifications(api_url, required=bool(notify))
    return report


def apply_pools(api_url: str, templates: Mapping[str, dict[str, Any]]) -> dict[str, str]:
    """Pool name → ``created`` / ``updated`` / ``unchanged`` (``templates`` is keyed by pool type)."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import PrefectHTTPStatusError

    outcome: dict[str, str] = {}
    with _api(api_url), get_client(sync_client=True) as client:
        for pool_type, template in templates.items():
            name = pool_name(pool_type)
            try:
                outcome[name] = _apply_pool(client, name, pool_type, template)
            except PrefectHTTPStatusError as exc:
                raise MlopsError(f"pool {name} refused by {api_url}: {_detail(exc)}") from None
    return outcome


def _apply_pool(client: SyncPrefectClient, name: str, pool_type: str, template: dict[str, Any]) -> str:
    from prefect.client.schemas.actions import WorkPoolCreate, WorkPoolUpdate
    from prefect.exceptions import ObjectNotFound

    try:
        stored = client.read_work_pool(name)
    except ObjectNotFound:
        client.create_work_pool(WorkPoolCreate(name=name, type=pool_type, base_job_template=template))
        return "created"
    if stored.type != pool_type:
        raise MlopsError(f"pool {name} exists with type '{stored.type}', not '{pool_type}': delete it first")
    if stored.base_job_template == template:
        return "unchanged"
    client.update_work_pool(name, WorkPoolUpdate(base_job_template=template))
    return "updated"


def deploy_all(api_url: str, env: Mapping[str, str] | None = None, deploy_pool: str | None = None) -> dict[str, str]:
    """Run `prefect --no-prompt deploy --all`; ``flow/deployment`` → ``created`` / ``updated`` / ``unchanged``.

    With ``deploy_pool`` (a pool type), every deployment goes to ``mlops-<deploy_pool>`` instead of the pool
    prefect.yaml names: a copy of prefect.yaml with only that changed is deployed, from the repository root.
    """
    if deploy_pool is not None and deploy_pool not in POOL_TYPES:
        raise MlopsError(f"unknown pool type '{deploy_pool}' to deploy to (known: {', '.join(POOL_TYPES)})")
    spec = yaml.safe_load(PREFECT_YAML.read_text(encoding="utf-8"))
    deployments = spec.get("deployments") or []
    if deploy_pool is not None:
        for deployment in deployments:
            deployment["work_pool"] = {**(deployment.get("work_pool") or {}), "name": pool_name(deploy_pool)}
    needed = sorted({d["work_pool"]["name"] for d in deployments if d.get("work_pool")})
    missing = [name for name in needed if not _pool_exists(api_url, name)]
    if missing:
        kinds = " ".join(f"--pool {n.removeprefix('mlops-')}" for n in missing)
        raise MlopsError(f"the deployments go to {', '.join(missing)}, not on {api_url}: apply it too ({kinds})")
    declared = {d["name"] for d in deployments}
    before = _deployment_state(api_url, declared)
    with tempfile.TemporaryDirectory(prefix="mlops-deploy-") as scratch:
        prefect_file = PREFECT_YAML
        if deploy_pool is not None:
            prefect_file = Path(scratch) / "prefect.yaml"
            prefect_file.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
        _prefect_deploy(prefect_file, {**(env if env is not None else os.environ), "PREFECT_API_URL": api_url})
    after = _deployment_state(api_url, declared)
    return {
        key: "created" if key not in before else "unchanged" if before[key] == state else "updated"
        for key, state in sorted(after.items())
    }


def _prefect_deploy(prefect_file: Path, env: Mapping[str, str]) -> None:
    prefect = str(Path(sys.executable).parent / "prefect")
    command = [prefect, "--no-prompt", "deploy", "--all", "--prefect-file", str(prefect_file)]
    done = subprocess.run(command, env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600, check=False)
    if done.returncode != 0:
        tail = " | ".join((done.stdout + done.stderr).strip().splitlines()[-3:])
        raise MlopsError(f"`prefect deploy --all` failed: {tail}")


def _pool_exists(api_url: str, name: str) -> bool:
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    with _api(api_url), get_client(sync_client=True) as client:
        try:
            client.read_work_pool(name)
        except ObjectNotFound:
            return False
    return True


def _deployment_state(api_url: str, names: set[str]) -> dict[str, str]:
    """``flow/deployment`` → canonical JSON of what the server holds for it, its trigger automations included."""
    from prefect.client.orchestration import get_client

    with _api(api_url), get_client(sync_client=True) as client:
        flows = {f.id: f.name for f in client.read_flows()}
        state = {}
        for deployment in client.read_deployments():
            if deployment.name not in names:
                continue
            held = deployment.model_dump(mode="json")
            automations = client.read_resource_related_automations(f"prefect.deployment.{deployment.id}")
            held["automations"] = sorted(
                (_canonical(a.model_dump(mode="json")) for a in automations),
                key=lambda a: json.dumps(a, sort_keys=True),
            )
            key = f"{flows.get(deployment.flow_id, deployment.flow_id)}/{deployment.name}"
            state[key] = json.dumps(_canonical(held), sort_keys=True)
    return state


def _canonical(value: Any) -> Any:
    """Drop ids, timestamps and counters; sort lists of strings (tags, for_each, expect are sets to Prefect)."""
    if isinstance(value, dict):
        return {k: _canonical(v) for k, v in value.items() if k not in _VOLATILE}
    if isinstance(value, list):
        items = [_canonical(v) for v in value]
        return sorted(items) if all(isinstance(v, str) for v in items) else items
    return value


def _detail(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    try:
        detail = response.json().get("detail") if response is not None else None
    except ValueError:
        detail = None
    return str(detail or exc).splitlines()[0][:400]


def _api(api_url: str) -> AbstractContextManager[Any]:
    """Point this process's Prefect client at ``api_url`` for the duration of a ``with`` block."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    return temporary_settings({PREFECT_API_URL: api_url})
