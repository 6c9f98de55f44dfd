"""infra/work-pools: each template stays a superset of Prefect's default and renders the way its worker renders it.

Rendering goes through the workers' own code (``from_template_and_values`` + ``prepare_for_flow_run``, the ECS
worker's task-definition builder, the Docker worker's container settings) with no server, cluster or AWS account;
the results are checked offline: the Job with kubernetes-validate, the ECS calls with botocore's own parameter
validation, the container arguments with docker-py's.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
POOLS = REPO / "infra" / "work-pools"
TYPES = ("process", "docker", "kubernetes", "ecs")
CONTAINER_TYPES = ("docker", "kubernetes", "ecs")
TEMPLATES = {t: json.loads((POOLS / f"{t}.json").read_text()) for t in TYPES}

IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/mlops-worker:3f2c1a9b7d4e"
K8S_API_URL = "http://prefect-server.mlops-prod.svc.cluster.local:4200/api"
ECS_VALUES = {
    "image": IMAGE,
    "task_role_arn": "arn:aws:iam::123456789012:role/acme-mlops-prod-worker-task",
    "execution_role_arn": "arn:aws:iam::123456789012:role/acme-mlops-prod-worker-execution",
    "pii_key_secret_arn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:mlops/prod/pii-key-AbCdEf",
    "log_group_name": "/ecs/acme-mlops-prod-worker",
    "cluster": "arn:aws:ecs:us-east-1:123456789012:cluster/acme-mlops-prod",
    "vpc_id": "vpc-0123456789abcdef0",
    "network_configuration": {
        "subnets": ["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"],
        "securityGroups": ["sg-0123456789abcdef0"],
        "assignPublicIp": "DISABLED",
    },
    "env": {"MLOPS_LAKE_BUCKET": "acme-mlops-prod-lake", "MLFLOW_TRACKING_URI": "https://mlflow.example.internal"},
}
SECRETISH = re.compile(r"(?i)(password|secret|token|api_key|access_key|private)")


class NoClient:
    """Stands in for the Prefect client during rendering: the templates reference no block and no variable."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"rendering called the Prefect API (client.{name})")


def _worker_class(pool_type: str) -> type:
    if pool_type == "process":
        from prefect.workers.process import ProcessWorker

        return ProcessWorker
    if pool_type == "docker":
        from prefect_docker.worker import DockerWorker

        return DockerWorker
    if pool_type == "kubernetes":
        from prefect_kubernetes.worker import KubernetesWorker

        return KubernetesWorker
    from prefect_aws.workers.ecs_worker import ECSWorker

    return ECSWorker


def _render(pool_type: str, values: dict[str, Any], api_url: str) -> tuple[Any, Any]:
    """(job configuration prepared for a flow run, the flow run), as the worker of ``pool_type`` builds them."""
    from prefect.client.schemas.objects import FlowRun
    from prefect.settings import PREFECT_API_URL, temporary_settings

    config_class = _worker_class(pool_type).job_configuration
    flow_run = FlowRun(id=uuid.uuid4(), name="brave-otter", flow_id=uuid.uuid4())
    with temporary_settings({PREFECT_API_URL: api_url}):
        config = asyncio.run(config_class.from_template_and_values(TEMPLATES[pool_type], values, client=NoClient()))
        config.prepare_for_flow_run(flow_run)
    return config, flow_run


def _defaults(pool_type: str) -> dict[str, Any]:
    props = TEMPLATES[pool_type]["variables"]["properties"]
    return {name: p["default"] for name, p in props.items() if "default" in p}


def _dockerfile_workdir_and_user() -> tuple[str, str]:
    lines = (REPO / "infra" / "docker" / "Dockerfile").read_text().splitlines()
    workdir = [line.split()[1] for line in lines if line.startswith("WORKDIR ")][-1]
    user = [line.split()[1] for line in lines if line.startswith("USER ")][-1]
    return workdir, user


# --- every template -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("pool_type", TYPES)
def test_template_keeps_every_field_of_prefects_default(pool_type: str) -> None:
    """Derived from `prefect work-pool get-default-base-job-template`: an upgrade that adds a field shows up here."""
    default = _worker_class(pool_type).get_default_base_job_template()
    ours = TEMPLATES[pool_type]
    assert set(default["job_configuration"]) <= set(ours["job_configuration"])
    assert set(default["variables"]["properties"]) <= set(ours["variables"]["properties"])


@pytest.mark.parametrize("pool_type", TYPES)
def test_every_placeholder_is_a_declared_variable(pool_type: str) -> None:
    from prefect.utilities.templating import find_placeholders

    declared = set(TEMPLATES[pool_type]["variables"]["properties"])
    used = {p.name for p in find_placeholders(TEMPLATES[pool_type]["job_configuration"])}
    assert used - declared == set(), f"{pool_type}.json uses undeclared variables"
    assert declared - used - {"aws_credentials"} == set(), f"{pool_type}.json declares unused variables"


@pytest.mark.parametrize("pool_type", TYPES)
def test_defaults_satisfy_their_schemas(pool_type: str) -> None:
    """What the server checks on `work-pool create`: every default fits its variable's schema."""
    from prefect.utilities.schema_tools import validate

    variables = TEMPLATES[pool_type]["variables"]
    errors = validate(_defaults(pool_type), variables, raise_on_error=False, ignore_required=True)
    assert not errors, [e.message for e in errors]


@pytest.mark.parametrize("pool_type", TYPES)
def test_no_secret_values_and_no_api_url(pool_type: str) -> None:
    """Secrets only by reference (ARN, Secret name); PREFECT_API_URL comes from the worker, never from the pool."""
    env = _defaults(pool_type).get("env") or {}
    assert not [k for k in env if SECRETISH.search(k)], env
    assert "PREFECT_API_URL" not in env and "PREFECT_API_KEY" not in env
    for name, prop in TEMPLATES[pool_type]["variables"]["properties"].items():
        if SECRETISH.search(name) and prop.get("default") is not None:
            assert re.fullmatch(r"[a-z0-9.-]+", prop["default"]), f"{name} must default to a reference, not a value"


# --- the container pools ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("pool_type", CONTAINER_TYPES)
def test_image_default_is_a_placeholder_and_moving_tags_are_refused(pool_type: str) -> None:
    import jsonschema

    image = TEMPLATES[pool_type]["variables"]["properties"]["image"]
    assert image["default"].startswith("registry.invalid/mlops-worker:"), "the default must be an obvious placeholder"
    check = jsonschema.Draft202012Validator({"type": "string", "pattern": image["pattern"]})
    for good in (image["default"], IMAGE, "ghcr.io/acme/mlops-worker:3f2c1a9", "mlops-worker:0123456789ab"):
        assert check.is_valid(good), good
    for bad in ("ghcr.io/acme/mlops-worker:latest", "ghcr.io/acme/mlops-worker", "mlops-worker:v1.2.3", ""):
        assert not check.is_valid(bad), bad


@pytest.mark.parametrize("pool_type", CONTAINER_TYPES)
def test_repo_dir_is_the_image_workdir_so_the_pull_step_works(pool_type: str) -> None:
    workdir, _ = _dockerfile_workdir_and_user()
    env = _defaults(pool_type)["env"]
    assert env["MLOPS_REPO_DIR"] == workdir == "/opt/mlops"
    assert env["MLOPS_PROFILE"] in {"aws", "stack"}
    pull = yaml.safe_load((REPO / "prefect.yaml").read_text())["pull"]
    assert pull == [{"prefect.deployments.steps.set_working_directory": {"directory": "{{ $MLOPS_REPO_DIR }}"}}]


# --- kubernetes ---------------------------------------------------------------------------------------------------


def _k8s_manifest() -> dict[str, Any]:
    values = {
        "image": IMAGE,
        "namespace": "mlops-prod",
        "service_account_name": "mlops-worker-irsa",
        "env": {"MLOPS_LAKE_BUCKET": "acme-mlops-prod-lake"},
    }
    config, _ = _render("kubernetes", values, K8S_API_URL)
    return config.job_manifest


def test_kubernetes_job_validates_against_a_recent_schema() -> None:
    import kubernetes_validate
    from kubernetes_validate.utils import latest_version

    version = latest_version()
    assert tuple(int(p) for p in version.split(".")[:2]) >= (1, 33), f"kubernetes-validate ships only {version}"
    kubernetes_validate.validate(_k8s_manifest(), version, strict=True)


def test_strict_validation_catches_what_prefects_default_gets_wrong() -> None:
    """The validator can fail: Prefect's default puts Job fields (completions, parallelism) in the pod spec."""
    import kubernetes_validate
    from kubernetes_validate.utils import latest_version
    from prefect.utilities.templating import apply_values

    default = _worker_class("kubernetes").get_default_base_job_template()
    manifest = apply_values(default["job_configuration"]["job_manifest"], {"image": IMAGE, "namespace": "mlops"})
    manifest = json.loads(json.dumps(manifest).replace('"{{', '"').replace('}}"', '"'))  # leftover placeholders
    with pytest.raises(kubernetes_validate.ValidationError, match="completions"):
        kubernetes_validate.validate(manifest, latest_version(), strict=True)


def test_kubernetes_job_runs_non_root_read_only_with_resources_and_the_irsa_account() -> None:
    manifest = _k8s_manifest()
    _, user = _dockerfile_workdir_and_user()
    pod = manifest["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert manifest["metadata"]["namespace"] == "mlops-prod"
    assert pod["serviceAccountName"] == "mlops-worker-irsa"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert f"{pod['securityContext']['runAsUser']}:{pod['securityContext']['runAsGroup']}" == user == "10001:10001"
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True and security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    tmp = {v["name"]: v for v in pod["volumes"]}[{m["mountPath"]: m for m in container["volumeMounts"]}["/tmp"]["name"]]
    assert "emptyDir" in tmp and tmp["emptyDir"]["sizeLimit"]
    resources = container["resources"]
    assert set(resources) == {"requests", "limits"}
    assert all(resources[kind].get(r) for kind in ("requests", "limits") for r in ("cpu", "memory")), resources
    assert container["image"] == IMAGE and not container["image"].endswith(":latest")
    assert manifest["spec"]["activeDeadlineSeconds"] > 0 and manifest["spec"]["ttlSecondsAfterFinished"] > 0


def test_kubernetes_job_env_is_wired_and_holds_no_secret_value() -> None:
    (container,) = _k8s_manifest()["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e for e in container["env"]}
    assert env["PREFECT_API_URL"]["value"] == K8S_API_URL, "the worker passes its own API URL"
    assert env["MLOPS_REPO_DIR"]["value"] == "/opt/mlops" and env["MLOPS_PROFILE"]["value"] == "aws"
    assert env["MLOPS_LAKE_BUCKET"]["value"] == "acme-mlops-prod-lake", "a deployment's env merges over the pool's"
    assert env["TMPDIR"]["value"] == "/tmp" and env["PREFECT_HOME"]["value"].startswith("/tmp/")
    assert "value" not in env["MLOPS_PII_KEY"]
    assert env["MLOPS_PII_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "mlops-pii-key"


# --- ecs ----------------------------------------------------------------------------------------------------------


def _ecs() -> tuple[dict[str, Any], dict[str, Any]]:
    """(task definition, run-task request) as the ECS worker builds them for a flow run."""
    from prefect_aws.workers.ecs_worker import ECSWorker

    config, flow_run = _render("ecs", ECS_VALUES, "https://prefect.example.com/api")
    worker = ECSWorker(work_pool_name="mlops-ecs")
    task_definition = worker._prepare_task_definition(config, region="us-east-1", flow_run=flow_run)
    arn = "arn:aws:ecs:us-east-1:123456789012:task-definition/mlops-flow-run:1"
    # the worker checks the subnets against EC2 here; with no AWS account, accept the configured ones as they are
    worker._custom_network_configuration = lambda vpc_id, network, configuration: {"awsvpcConfiguration": network}
    run_request = worker._prepare_task_run_request(config, task_definition, arn)
    return task_definition, run_request


def _botocore_validates(operation: str, params: dict[str, Any]) -> None:
    import botocore.session
    from botocore.validate import validate_parameters

    model = botocore.session.get_session().get_service_model("ecs")
    validate_parameters(params, model.operation_model(operation).input_shape)  # raises ParamValidationError


def test_ecs_task_definition_and_run_request_are_valid_ecs_calls() -> None:
    task_definition, run_request = _ecs()
    _botocore_validates("RegisterTaskDefinition", task_definition)
    _botocore_validates("RunTask", run_request)


def test_ecs_task_is_fargate_awsvpc_sized_with_roles_from_variables() -> None:
    task_definition, run_request = _ecs()
    raw = TEMPLATES["ecs"]["job_configuration"]["task_definition"]
    assert raw["taskRoleArn"] == "{{ task_role_arn }}" and raw["executionRoleArn"] == "{{ execution_role_arn }}"
    assert task_definition["taskRoleArn"] == ECS_VALUES["task_role_arn"]
    assert task_definition["executionRoleArn"] == ECS_VALUES["execution_role_arn"]
    assert task_definition["requiresCompatibilities"] == ["FARGATE"]
    assert task_definition["networkMode"] == "awsvpc"
    assert (task_definition["cpu"], task_definition["memory"]) == ("1024", "4096")
    (container,) = task_definition["containerDefinitions"]
    assert container["image"] == IMAGE and container["readonlyRootFilesystem"] is True
    assert container["user"] == _dockerfile_workdir_and_user()[1]
    assert container["logConfiguration"]["options"]["awslogs-group"] == ECS_VALUES["log_group_name"]
    network = run_request["networkConfiguration"]["awsvpcConfiguration"]
    assert (
        network["assignPublicIp"] == "DISABLED" and network["subnets"] == ECS_VALUES["network_configuration"]["subnets"]
    )
    assert run_request["cluster"] == ECS_VALUES["cluster"]
    assert run_request["overrides"]["taskRoleArn"] == ECS_VALUES["task_role_arn"]


def test_ecs_secrets_are_arn_references_and_env_holds_none() -> None:
    task_definition, run_request = _ecs()
    (container,) = task_definition["containerDefinitions"]
    assert container["secrets"] == [{"name": "MLOPS_PII_KEY", "valueFrom": ECS_VALUES["pii_key_secret_arn"]}]
    (override,) = run_request["overrides"]["containerOverrides"]
    env = {e["name"]: e["value"] for e in override["environment"]}
    assert env["PREFECT_API_URL"] == "https://prefect.example.com/api", "the worker passes its own API URL"
    assert env["MLOPS_REPO_DIR"] == "/opt/mlops" and env["MLOPS_LAKE_BUCKET"] == "acme-mlops-prod-lake"
    assert "MLOPS_PII_KEY" not in env and not [k for k in env if SECRETISH.search(k)]


def test_ecs_flow_runs_refuse_to_start_without_roles_or_network() -> None:
    """Required variables: without them Prefect would use the default VPC with a public IP and no task role."""
    from prefect.utilities.schema_tools import validate

    variables = TEMPLATES["ecs"]["variables"]
    errors = validate(_defaults("ecs") | {"image": IMAGE}, variables, raise_on_error=False, ignore_required=False)
    missing = {m.group(1) for e in errors if (m := re.match(r"'(\w+)' is a required property", e.message))}
    expected = {"task_role_arn", "execution_role_arn", "pii_key_secret_arn", "cluster", "vpc_id"}
    assert expected | {"network_configuration", "log_group_name"} == missing
    assert not validate(_defaults("ecs") | ECS_VALUES, variables, raise_on_error=False, ignore_required=False)


# --- docker -------------------------------------------------------------------------------------------------------


def test_docker_container_settings_are_valid_docker_create_arguments() -> None:
    from docker.models.containers import _create_container_args
    from prefect_docker.worker import DockerWorker

    values = {"image": IMAGE, "env": {"AWS_DEFAULT_REGION": "eu-west-1"}}
    config, _ = _render("docker", values, "http://prefect-server:4200/api")
    settings = DockerWorker(work_pool_name="mlops-docker")._build_container_settings(NoClient(), config)
    assert settings["image"] == IMAGE
    env = settings["environment"]
    assert env["PREFECT_API_URL"] == "http://prefect-server:4200/api", "the worker passes its own API URL"
    assert env["MLOPS_REPO_DIR"] == "/opt/mlops" and env["MLOPS_PROFILE"] == "stack"
    assert env["AWS_DEFAULT_REGION"] == "eu-west-1", "a deployment's env merges over the pool's"
    assert settings["mem_limit"] == settings["memswap_limit"] == "4g" and settings["nano_cpus"] > 0
    assert settings["user"] == _dockerfile_workdir_and_user()[1] and settings["read_only"] is True
    assert settings["network"] == "mlops_default"
    create_args = _create_container_args({**settings, "version": "1.43"})  # raises TypeError on unknown arguments
    assert create_args["host_config"]["ReadonlyRootfs"] is True
    assert create_args["host_config"]["CapDrop"] == ["ALL"]


# --- values given to `mlops infra apply --set / --defaults-file` ---------------------------------------------------


def test_given_values_are_checked_and_merged_before_anything_is_sent() -> None:
    from ops.infra import load_template, parse_assignments
    from tasks.errors import MlopsError

    given = parse_assignments(
        ["image=" + IMAGE, 'env={"MLOPS_LAKE_BUCKET": "acme-lake", "PREFECT_API_URL": "https://x/api"}', "cpu=2048"]
    )
    assert given["cpu"] == 2048 and given["image"] == IMAGE
    ecs = load_template("ecs", given)["variables"]["properties"]
    assert ecs["image"]["default"] == IMAGE and ecs["cpu"]["default"] == 2048
    env = ecs["env"]["default"]
    assert env["MLOPS_LAKE_BUCKET"] == "acme-lake" and env["MLOPS_REPO_DIR"] == "/opt/mlops", "merged into the file's"
    assert "PREFECT_API_URL" not in env, "the worker passes its own API URL"
    assert load_template("ecs") == TEMPLATES["ecs"], "the file itself is never changed"
    refused = {
        "moving tag": ("kubernetes", {"image": "ghcr.io/acme/mlops-worker:latest"}, "image"),
        "not a Fargate size": ("ecs", {"cpu": 1000}, "cpu"),
        "unknown variable": ("docker", {"task_role_arn": "arn"}, "no job variable task_role_arn"),
        "secret in env": ("kubernetes", {"env": {"PREFECT_API_KEY": "x"}}, "secret"),
        "unknown pool": ("nomad", {}, "unknown pool type"),
    }
    for case, (pool_type, values, message) in refused.items():
        with pytest.raises(MlopsError, match=message):
            load_template(pool_type, values)
            pytest.fail(case)
    with pytest.raises(MlopsError, match="NAME=VALUE"):
        parse_assignments(["image"])
