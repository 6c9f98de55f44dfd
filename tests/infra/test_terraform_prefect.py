"""infra/terraform/prefect mirrors prefect.yaml and infra/work-pools.

The PrefectHQ/prefect provider cannot be installed here, so the configuration is read with python-hcl2 and
compared with prefect.yaml as it is at test time (a difference is named: deployment, field, both values). The
provider-free part (data.tf, derived.tf) is also evaluated by terraform itself, which checks the expressions that
build the work-pool templates, schedules and automations. `terraform fmt -check` covers the whole directory.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import hcl2
import pytest
import yaml
from hcl2 import SerializationOptions

REPO = Path(__file__).resolve().parents[2]
MODULE = REPO / "infra" / "terraform" / "prefect"
TERRAFORM = shutil.which("terraform")
FIELDS = (
    "flow",
    "entrypoint",
    "description",
    "work_pool",
    "work_queue",
    "tags",
    "concurrency_limit",
    "parameters",
    "schedules",
    "triggers",
)
# attributes of the provider's resources, from its registry docs (registry.terraform.io/providers/PrefectHQ/prefect,
# docs/resources/{work_pool,flow,deployment,deployment_schedule,automation}.md): nothing else may be set
PROVIDER_ATTRIBUTES = {
    "prefect_work_pool": {
        "name", "type", "base_job_template", "paused", "description", "concurrency_limit", "account_id", "workspace_id",
    },
    "prefect_flow": {"name", "tags", "account_id", "workspace_id"},
    "prefect_deployment": {
        "name", "flow_id", "description", "entrypoint", "work_pool_name", "work_queue_name", "tags", "parameters",
        "concurrency_limit", "concurrency_options", "enforce_parameter_schema", "pull_steps", "job_variables",
        "parameter_openapi_schema", "path", "paused", "storage_document_id", "version", "account_id", "workspace_id",
    },
    "prefect_deployment_schedule": {
        "deployment_id", "active", "cron", "timezone", "day_or", "interval", "anchor_date", "rrule",
        "max_scheduled_runs", "account_id", "workspace_id",
    },
    "prefect_automation": {
        "name", "description", "enabled", "trigger", "actions", "actions_on_trigger", "actions_on_resolve",
        "account_id", "workspace_id",
    },
    "prefect_block": {"name", "type_slug", "data", "ref", "account_id", "workspace_id"},
}  # fmt: skip
EVENT_TRIGGER_ATTRIBUTES = {"posture", "match", "match_related", "after", "expect", "for_each", "threshold", "within"}
ACTION_ATTRIBUTES = {
    "type", "source", "deployment_id", "parameters", "job_variables", "block_document_id", "subject", "body",
}  # fmt: skip
META_ARGUMENTS = {"for_each", "count", "depends_on", "lifecycle", "provider"}


def _unquote(value: Any) -> Any:
    if isinstance(value, dict):
        return {_unquote(k): _unquote(v) for k, v in value.items() if k != "__is_block__"}
    if isinstance(value, list):
        return [_unquote(v) for v in value]
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def _parse(path: Path) -> dict[str, Any]:
    options = SerializationOptions(strip_string_quotes=True, with_comments=False)
    with path.open() as handle:
        return _unquote(hcl2.load(handle, serialization_options=options))


@pytest.fixture(scope="module")
def hcl() -> dict[str, Any]:
    """Every .tf file of the module, parsed: locals merged, resources by type and name."""
    merged: dict[str, Any] = {"locals": {}, "resource": {}, "terraform": [], "provider": []}
    for path in sorted(MODULE.glob("*.tf")):
        parsed = _parse(path)
        for block in parsed.get("locals", []):
            merged["locals"] |= block
        for block in parsed.get("resource", []):
            for kind, named in block.items():
                merged["resource"].setdefault(kind, {}).update(named)
        merged["terraform"] += parsed.get("terraform", [])
        merged["provider"] += parsed.get("provider", [])
    return merged


def _flow_name(entrypoint: str) -> str:
    path, name = entrypoint.split(":")
    return getattr(importlib.import_module(path.removesuffix(".py").replace("/", ".")), name).name


def _declared() -> dict[str, dict[str, Any]]:
    """prefect.yaml's deployments, as read right now, in the shape of data.tf's entries."""
    spec = yaml.safe_load((REPO / "prefect.yaml").read_text())
    declared = {}
    for d in spec["deployments"]:
        declared[d["name"]] = {
            "flow": _flow_name(d["entrypoint"]),
            "entrypoint": d["entrypoint"],
            "description": d.get("description"),
            "work_pool": (d.get("work_pool") or {}).get("name"),
            "work_queue": (d.get("work_pool") or {}).get("work_queue_name"),
            "tags": d.get("tags") or [],
            "concurrency_limit": d.get("concurrency_limit"),
            "parameters": d.get("parameters") or {},
            "schedules": d.get("schedules") or [],
            "triggers": d.get("triggers") or [],
        }
    return declared


@pytest.fixture(scope="module")
def declared() -> dict[str, dict[str, Any]]:
    return _declared()


def test_same_deployment_names(hcl: dict[str, Any], declared: dict[str, dict[str, Any]]) -> None:
    mirrored = set(hcl["locals"]["deployments"])
    assert mirrored == set(declared), (
        f"only in prefect.yaml: {sorted(set(declared) - mirrored)}; only in data.tf: {sorted(mirrored - set(declared))}"
    )


@pytest.mark.parametrize("field", FIELDS)
def test_same_field_for_every_deployment(hcl: dict[str, Any], declared: dict[str, dict[str, Any]], field: str) -> None:
    mirrored = hcl["locals"]["deployments"]
    differences = [
        line
        for name in sorted(set(declared) & set(mirrored))
        for line in _differences(declared[name][field], mirrored[name].get(field), f"{name}.{field}")
    ]
    assert not differences, "\n".join(differences)


def _differences(yaml_value: Any, tf_value: Any, where: str) -> list[str]:
    """Leaf by leaf: `retrain.triggers[1].threshold: prefect.yaml has 1, data.tf has 2`."""
    if isinstance(yaml_value, dict) and isinstance(tf_value, dict):
        return [
            line
            for key in sorted(set(yaml_value) | set(tf_value))
            for line in _differences(yaml_value.get(key, "<absent>"), tf_value.get(key, "<absent>"), f"{where}.{key}")
        ]
    if isinstance(yaml_value, list) and isinstance(tf_value, list) and len(yaml_value) == len(tf_value):
        pairs = enumerate(zip(yaml_value, tf_value, strict=True))
        return [line for i, (a, b) in pairs for line in _differences(a, b, f"{where}[{i}]")]
    if yaml_value == tf_value:
        return []
    return [f"{where}: prefect.yaml has {yaml_value!r}, data.tf has {tf_value!r}"]


def test_same_pull_steps(hcl: dict[str, Any]) -> None:
    pull = yaml.safe_load((REPO / "prefect.yaml").read_text())["pull"]
    as_yaml = [
        {f"prefect.deployments.steps.{step['type']}": {k: v for k, v in step.items() if k != "type"}}
        for step in hcl["locals"]["pull_steps"]
    ]
    assert as_yaml == pull


def test_crons_and_trigger_windows_are_what_prefect_expects(hcl: dict[str, Any]) -> None:
    from prefect.client.schemas.schedules import CronSchedule
    from prefect.events.schemas.deployment_triggers import DeploymentEventTrigger

    for name, deployment in hcl["locals"]["deployments"].items():
        for schedule in deployment["schedules"]:
            CronSchedule(cron=schedule["cron"], timezone=schedule["timezone"])  # raises on a bad cron or zone
        for trigger in deployment["triggers"]:
            parsed = DeploymentEventTrigger(**{k: v for k, v in trigger.items() if k != "type"})
            assert parsed.posture.value == "Reactive" and parsed.within.total_seconds() > 0, name


def test_resources_set_only_documented_attributes(hcl: dict[str, Any]) -> None:
    resources = hcl["resource"]
    assert set(resources) == set(PROVIDER_ATTRIBUTES), f"resource types: {sorted(resources)}"
    for kind, named in resources.items():
        for name, body in named.items():
            unknown = set(body) - PROVIDER_ATTRIBUTES[kind] - META_ARGUMENTS
            assert not unknown, f"{kind}.{name} sets {sorted(unknown)}, not in the provider's schema"
    kinds = {"this": "run-deployment", "notify": "send-notification"}
    assert set(resources["prefect_automation"]) == set(kinds)
    for name, automation in resources["prefect_automation"].items():
        assert set(automation["trigger"]) == {"event"}
        assert set(automation["trigger"]["event"]) <= EVENT_TRIGGER_ATTRIBUTES
        for action in automation["actions"]:
            assert set(action) <= ACTION_ATTRIBUTES and action["type"] == kinds[name]


def test_resources_take_every_field_from_the_mirrored_data(hcl: dict[str, Any]) -> None:
    """Each prefect.yaml field reaches its provider attribute (the values are compared above)."""
    (deployment,) = hcl["resource"]["prefect_deployment"].values()
    assert deployment["for_each"] == "${local.deployments}"
    wiring = {
        "entrypoint": "each.value.entrypoint",
        "description": "each.value.description",
        "work_pool_name": "each.value.work_pool",
        "work_queue_name": "each.value.work_queue",
        "tags": "each.value.tags",
        "concurrency_limit": "each.value.concurrency_limit",
        "parameters": "jsonencode(each.value.parameters)",
        "pull_steps": "local.pull_steps",
    }
    for attribute, expression in wiring.items():
        assert expression in deployment[attribute], f"prefect_deployment.{attribute} = {deployment[attribute]}"
    (schedule,) = hcl["resource"]["prefect_deployment_schedule"].values()
    assert schedule["for_each"] == "${local.schedules}" and "each.value.cron" in schedule["cron"]
    assert "each.value.timezone" in schedule["timezone"]
    automation = hcl["resource"]["prefect_automation"]["this"]
    assert automation["for_each"] == "${local.automations}"
    for key, value in automation["trigger"]["event"].items():
        assert f"each.value.{key}" in value, f"trigger.event.{key} = {value}"
    (action,) = automation["actions"]
    assert "jsonencode(each.value.parameters)" in action["parameters"] and action["source"] == "selected"
    (pool,) = hcl["resource"]["prefect_work_pool"].values()
    assert pool["for_each"] == "${local.work_pool_templates}" and "jsonencode(each.value)" in pool["base_job_template"]


def test_provider_is_pinned_and_takes_no_secret(hcl: dict[str, Any]) -> None:
    (terraform,) = hcl["terraform"]
    (providers,) = terraform["required_providers"]
    prefect = providers["prefect"]
    assert prefect["source"].lower() == "prefecthq/prefect"
    assert ">=" in prefect["version"] and "<" in prefect["version"].replace("<=", ""), prefect["version"]
    (provider,) = hcl["provider"]
    assert set(provider["prefect"]) <= {"endpoint", "account_id", "workspace_id"}, "the API key comes from the env"
    variables = {name for path in MODULE.glob("*.tf") for block in _parse(path).get("variable", []) for name in block}
    assert not [v for v in variables if "key" in v or "secret" in v or "password" in v], variables


# --- terraform itself -----------------------------------------------------------------------------------------------

needs_terraform = pytest.mark.skipif(TERRAFORM is None, reason="terraform is not on PATH: HCL parsing covers the rest")


def _terraform(args: list[str], cwd: Path, cli_config: Path, ok: bool = True) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TF_VAR_", "TF_CLI_ARGS", "TF_LOG", "TF_DATA_DIR"))}
    env |= {"TF_CLI_CONFIG_FILE": str(cli_config), "TF_IN_AUTOMATION": "1", "TF_INPUT": "0", "CHECKPOINT_DISABLE": "1"}
    assert TERRAFORM is not None
    done = subprocess.run([TERRAFORM, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    if ok:
        assert done.returncode == 0, f"terraform {' '.join(args)} failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    return done


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """data.tf + derived.tf evaluated by terraform (no provider), once as they are and once with pool overrides."""
    root = tmp_path_factory.mktemp("tf-prefect")
    shutil.copytree(REPO / "infra" / "work-pools", root / "infra" / "work-pools")
    work = root / "infra" / "terraform" / "prefect"
    work.mkdir(parents=True)
    shutil.copytree(REPO / "infra" / "automations", root / "infra" / "automations")
    for name in ("variables.tf", "data.tf", "derived.tf", "notifications_data.tf"):
        shutil.copy(MODULE / name, work / name)
    outputs = (
        "deployments", "pull_steps", "work_pool_templates", "schedules", "automations", "notification_automations",
        "notification_block_data", "notification_type",
    )  # fmt: skip
    (work / "outputs_under_test.tf").write_text(
        "".join(f'output "{o}" {{\n  value = local.{o}\n  sensitive = true\n}}\n' for o in outputs)
    )
    cli_config = root / "terraform.rc"
    cli_config.write_text("")  # no provider is needed: nothing to install
    _terraform(["init", "-backend=false", "-no-color"], work, cli_config)
    results: dict[str, Any] = {}
    cases = (
        ("as_is", {}),
        ("overridden", {"job_variable_defaults": OVERRIDES}),
        ("notify", {"notification_url": NOTIFY_URL}),
        ("notify_slack", {"notification_url": NOTIFY_URL, "notification_type": "slack-webhook"}),
    )
    for label, tfvars in cases:
        (work / "case.tfvars.json").write_text(json.dumps(tfvars))
        _terraform(["apply", "-auto-approve", "-no-color", "-var-file=case.tfvars.json"], work, cli_config)
        output = json.loads(_terraform(["output", "-json"], work, cli_config).stdout)
        results[label] = {name: value["value"] for name, value in output.items()}
    secret = {"job_variable_defaults": {"kubernetes": {"env": {"PREFECT_API_KEY": "pnu_not_a_real_key"}}}}
    (work / "case.tfvars.json").write_text(json.dumps(secret))
    results["secret_plan"] = _terraform(["plan", "-no-color", "-var-file=case.tfvars.json"], work, cli_config, ok=False)
    return results


NOTIFY_URL = "https://hooks.example.com/services/T000/B000/not-a-real-hook"
OVERRIDES = {
    "kubernetes": {"image": "ghcr.io/acme/mlops-worker:3f2c1a9b7d4e", "namespace": "mlops-prod", "cpu_limit": "4"},
    "ecs": {
        "task_role_arn": "arn:aws:iam::123456789012:role/acme-mlops-prod-worker-task",
        "env": {"MLOPS_LAKE_BUCKET": "acme-mlops-prod-lake", "PREFECT_API_URL": "https://prefect.example.com/api"},
        "network_configuration": {
            "subnets": ["subnet-0123456789abcdef0"], "securityGroups": [], "assignPublicIp": "DISABLED",
        },
    },
}  # fmt: skip


@needs_terraform
def test_terraform_reads_the_data_as_hcl2_does(evaluated: dict[str, Any], hcl: dict[str, Any]) -> None:
    assert evaluated["as_is"]["deployments"] == hcl["locals"]["deployments"]
    assert evaluated["as_is"]["pull_steps"] == hcl["locals"]["pull_steps"]


@needs_terraform
def test_pool_templates_are_the_json_files(evaluated: dict[str, Any]) -> None:
    templates = evaluated["as_is"]["work_pool_templates"]
    assert set(templates) == {"process", "docker", "kubernetes", "ecs"}
    for pool_type, template in templates.items():
        assert template == json.loads((REPO / "infra" / "work-pools" / f"{pool_type}.json").read_text()), pool_type


@needs_terraform
def test_pool_overrides_mean_what_mlops_infra_apply_set_means(evaluated: dict[str, Any]) -> None:
    from ops.infra import load_template

    templates = evaluated["overridden"]["work_pool_templates"]
    for pool_type in ("process", "docker", "kubernetes", "ecs"):
        assert templates[pool_type] == load_template(pool_type, OVERRIDES.get(pool_type)), pool_type


@needs_terraform
def test_a_secret_in_a_pool_env_is_refused_at_plan(evaluated: dict[str, Any]) -> None:
    refused = evaluated["secret_plan"]
    assert refused.returncode != 0 and "holds a secret" in refused.stderr, refused.stderr[-2000:]


@needs_terraform
def test_one_schedule_per_cron_and_one_automation_per_trigger_named_as_prefect_deploy_does(
    evaluated: dict[str, Any], declared: dict[str, dict[str, Any]]
) -> None:
    schedules = evaluated["as_is"]["schedules"]
    expected = {
        f"{n}/{i}": (d["schedules"][i]["cron"], n) for n, d in declared.items() for i in range(len(d["schedules"]))
    }
    assert {k: (v["cron"], v["deployment"]) for k, v in schedules.items()} == expected
    automations = evaluated["as_is"]["automations"]
    names = {f"{n}__automation_{i + 1}": n for n, d in declared.items() for i in range(len(d["triggers"]))}
    assert {k: v["deployment"] for k, v in automations.items()} == names


@needs_terraform
def test_terraform_fmt_is_clean(tmp_path: Path) -> None:
    cli_config = tmp_path / "terraform.rc"
    cli_config.write_text("")
    assert TERRAFORM is not None
    done = subprocess.run(
        [TERRAFORM, "fmt", "-check", "-recursive", "-diff", "-no-color", str(MODULE)],
        env=os.environ | {"TF_CLI_CONFIG_FILE": str(cli_config)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, f"run `terraform fmt -recursive infra/terraform/prefect`:\n{done.stdout}"


# --- notifications (infra/automations/notifications.yaml) ------------------------------------------------------------


def test_notification_resources_take_every_field_from_the_file(hcl: dict[str, Any]) -> None:
    (block,) = hcl["resource"]["prefect_block"].values()
    assert "local.notify" in block["count"] and "local.notification_type" in block["type_slug"]
    assert "local.notification_block_data[local.notification_type]" in block["data"]
    automation = hcl["resource"]["prefect_automation"]["notify"]
    assert automation["for_each"] == "${local.notification_automations}"
    for key, value in automation["trigger"]["event"].items():
        assert f"each.value.trigger.{key}" in value, f"notify trigger.event.{key} = {value}"
    (action,) = automation["actions"]
    assert action["subject"] == "${each.value.subject}" and action["body"] == "${each.value.body}"
    assert "prefect_block.notify[0].id" in action["block_document_id"]
    variable = next(b for p in MODULE.glob("*.tf") for b in _parse(p).get("variable", []) if "notification_url" in b)
    assert variable["notification_url"]["sensitive"] is True and variable["notification_url"]["default"] is None


@needs_terraform
def test_terraform_sends_the_automations_mlops_infra_apply_sends(evaluated: dict[str, Any]) -> None:
    from uuid import UUID

    from ops.notifications import automation_payload, load_spec

    assert evaluated["as_is"]["notification_automations"] == {}, "no URL: no automation"
    mirrored = evaluated["notify"]["notification_automations"]
    spec = load_spec()
    assert set(mirrored) == {a.name for a in spec.automations}
    for automation in spec.automations:
        sent = automation_payload(automation, UUID(int=1))
        tf = mirrored[automation.name]
        trigger = {**tf["trigger"], "match_related": tf["trigger"].get("match_related", {})}
        assert (
            sent["trigger"]["match"] == trigger["match"]
            and sent["trigger"]["match_related"] == trigger["match_related"]
        ), automation.name
        assert sorted(sent["trigger"]["expect"]) == sorted(trigger["expect"]), automation.name
        assert sorted(sent["trigger"]["for_each"]) == sorted(trigger["for_each"]), automation.name
        assert sent["trigger"]["posture"] == trigger["posture"] and sent["trigger"]["threshold"] == trigger["threshold"]
        assert sent["trigger"]["within"] == float(trigger["within"]), automation.name
        (action,) = sent["actions"]
        assert (action["subject"], action["body"]) == (tf["subject"], tf["body"]), automation.name
        assert (sent["description"], sent["enabled"]) == (tf["description"], tf["enabled"]), automation.name


@needs_terraform
def test_terraform_builds_the_block_mlops_infra_apply_saves(evaluated: dict[str, Any]) -> None:
    from ops.notifications import block_data, load_spec

    channel = load_spec().channel
    for label, kind in (("notify", channel.type), ("notify_slack", "slack-webhook")):
        assert evaluated[label]["notification_type"] == kind
        assert evaluated[label]["notification_block_data"][kind] == block_data(channel, NOTIFY_URL, kind), label
    webhook = block_data(channel, NOTIFY_URL, "custom-webhook")
    assert webhook["url"] == "{{url}}" and webhook["secrets"] == {"url": NOTIFY_URL}, "the URL is a secret value"
