"""infra/terraform/aws: validate, fmt, the mocked `terraform test` suite, and a real apply -> plan -> destroy on moto.

Every command runs on a copy of the module in a temporary directory, so no .terraform, lock file or state ever
lands in the repository. The aws provider comes from a local filesystem mirror (no registry is contacted); the
offline (mocked) suites run in the background while the moto round trip waits on the provider.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import threading
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MODULE = REPO / "infra" / "terraform" / "aws"
TERRAFORM = shutil.which("terraform")
NICE = shutil.which("nice")
PLUGIN_MIRROR = Path(os.environ.get("MLOPS_TF_PLUGIN_MIRROR", "/opt/tf-plugins"))
MIRRORED_AWS = PLUGIN_MIRROR / "registry.terraform.io" / "hashicorp" / "aws"
TEST_FILES = sorted(p.relative_to(MODULE).as_posix() for p in (MODULE / "tests").glob("*.tftest.hcl"))
ENVIRONMENTS = ("staging", "prod")
JUNIT_REPORT = "terraform-test.xml"

pytestmark = [
    pytest.mark.skipif(TERRAFORM is None, reason="terraform is not on PATH: the AWS module is checked where it is"),
    pytest.mark.skipif(
        TERRAFORM is not None and not MIRRORED_AWS.is_dir(),
        reason=f"no hashicorp/aws provider in the local mirror {PLUGIN_MIRROR} (set MLOPS_TF_PLUGIN_MIRROR)",
    ),
]

# filesystem_mirror accepts the unpacked layout found here: <host>/<namespace>/<type>/<version>/<os_arch>/
CLI_CONFIG = """\
provider_installation {{
  filesystem_mirror {{
    path    = "{mirror}"
    include = ["registry.terraform.io/hashicorp/*"]
  }}
  direct {{
    exclude = ["registry.terraform.io/hashicorp/*"]
  }}
}}
"""


def _copy_module(dest: Path) -> Path:
    """Copy the module's sources (never local state or provider installs) to ``dest``."""
    ignore = shutil.ignore_patterns(".terraform", ".terraform.lock.hcl", "*.tfstate", "*.tfstate.*", "*.tfplan")
    shutil.copytree(MODULE, dest, ignore=ignore)
    return dest


def _run(args: list[str], cwd: Path, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [TERRAFORM, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def _ok(result: subprocess.CompletedProcess[str]) -> str:
    command = " ".join(result.args[1:])
    assert result.returncode == 0, f"{command} failed:\n{result.stdout[-6000:]}\n{result.stderr[-6000:]}"
    return result.stdout


def _terraform_env(cli_config: str) -> dict[str, str]:
    """The current environment for terraform: our CLI config, no prompts, no version check, no stray TF_* input."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TF_VAR_", "TF_CLI_ARGS", "TF_LOG", "TF_DATA_DIR"))}
    return env | {"TF_CLI_CONFIG_FILE": cli_config, "TF_IN_AUTOMATION": "1", "TF_INPUT": "0", "CHECKPOINT_DISABLE": "1"}


@pytest.fixture(scope="module")
def tf_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment for the offline commands, with a CLI config that installs providers from the mirror only."""
    config = tmp_path_factory.mktemp("tf-home") / "terraform.rc"
    config.write_text(CLI_CONFIG.format(mirror=PLUGIN_MIRROR.as_posix()))
    return _terraform_env(str(config))


@pytest.fixture(scope="module")
def initialized_module(tmp_path_factory: pytest.TempPathFactory, tf_env: dict[str, str]) -> Path:
    """A copy of the module after `terraform init -backend=false` (providers linked from the mirror)."""
    work = _copy_module(tmp_path_factory.mktemp("tf") / "aws")
    _ok(_run(["init", "-backend=false", "-input=false", "-no-color"], work, tf_env, timeout=180))
    return work


class _Background:
    """Terraform commands run one after another in a thread, at low CPU priority, while the foreground tests run.

    The moto round trip spends most of its time waiting on the provider's own propagation checks: these
    offline suites fill that time instead of adding to the file's wall time.
    """

    def __init__(self, jobs: dict[str, list[str]], cwd: Path, env: dict[str, str]) -> None:
        self._jobs, self._cwd, self._env = jobs, cwd, env
        self._done = {name: threading.Event() for name in jobs}
        self._results: dict[str, subprocess.CompletedProcess[str]] = {}
        self._proc: subprocess.Popen[str] | None = None
        self._stopped = False
        self._thread = threading.Thread(target=self._run_all, daemon=True)

    def _run_all(self) -> None:
        for name, args in self._jobs.items():
            if self._stopped:
                break
            nice = [NICE, "-n", "10"] if NICE else []  # low priority: the foreground round trip keeps its CPU
            self._proc = subprocess.Popen(
                [*nice, TERRAFORM, *args],
                cwd=self._cwd,
                env=self._env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            output, _ = self._proc.communicate()
            self._results[name] = subprocess.CompletedProcess([TERRAFORM, *args], self._proc.returncode, output, "")
            self._done[name].set()

    def start(self) -> _Background:
        self._thread.start()
        return self

    def result(self, name: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        assert self._done[name].wait(timeout), f"background `terraform {' '.join(self._jobs[name])}` still running"
        return self._results[name]

    def stop(self) -> None:
        self._stopped = True
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
        self._thread.join(timeout=30)


@pytest.fixture(scope="module", autouse=True)
def offline_suites(
    tmp_path_factory: pytest.TempPathFactory, initialized_module: Path, tf_env: dict[str, str]
) -> Iterator[_Background]:
    """Start the mocked `terraform test` suites (offline) as soon as the module is initialized.

    They run on their own copy of the module; the tests at the end of this file collect their results.
    """
    work = tmp_path_factory.mktemp("tf-mocked") / "aws"
    shutil.copytree(initialized_module, work, symlinks=True)
    jobs = {"suite": ["test", "-no-color", f"-junit-xml={work.parent / JUNIT_REPORT}"]}
    for environment in ENVIRONMENTS:
        jobs[environment] = ["test", "-no-color", "-test-directory=tests/envs", f"-var-file=envs/{environment}.tfvars"]
    background = _Background(jobs, work, tf_env).start()
    try:
        yield background
    finally:
        background.stop()


def test_init_and_validate(initialized_module: Path, tf_env: dict[str, str]) -> None:
    out = _ok(_run(["validate", "-no-color"], initialized_module, tf_env))
    assert "The configuration is valid" in out


def test_fmt_is_clean(initialized_module: Path, tf_env: dict[str, str]) -> None:
    result = _run(["fmt", "-check", "-recursive", "-diff", "-no-color"], initialized_module, tf_env)
    assert result.returncode == 0, f"terraform fmt would change (run `terraform fmt -recursive`):\n{result.stdout}"


def test_module_declares_no_inbound_rule() -> None:
    """The worker is egress-only: no ingress anywhere in the module but the API's one rule on its own group."""
    inbound = re.compile(r'aws_vpc_security_group_ingress_rule|aws_security_group_rule"|^\s*ingress\s*\{', re.M)
    hits = [p.name for p in MODULE.glob("*.tf") if p.name != "api.tf" and inbound.search(p.read_text())]
    assert not hits, f"inbound rules declared in {hits}"
    api = (MODULE / "api.tf").read_text()
    assert len(inbound.findall(api)) == 1 and "security_group_id = aws_security_group.api[0].id" in api


# --- a real apply -> plan -> destroy against moto's server on 127.0.0.1 -------------------------------------------


def _moto_inputs(endpoint: str, prefix: str, log_bucket: str) -> dict[str, object]:
    import boto3

    ec2 = boto3.client("ec2", endpoint_url=endpoint)
    vpc = ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"][0]["VpcId"]
    subnets = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc]}])["Subnets"]
    return {
        "aws_endpoint_url": endpoint,
        "environment": "staging",
        "name_prefix": prefix,
        "usecases": ["uc_one", "uc_two"],
        "force_destroy": True,
        "access_logs_bucket": log_bucket,
        "pii_key_secret_arn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:mlops/pii-key-AbCdEf",
        "prefect_api_key_secret_arn": "arn:aws:ssm:us-east-1:123456789012:parameter/mlops/prefect-api-key",
        "prefect_api_url": "https://prefect.example.com/api",
        "mlflow_tracking_uri": "https://mlflow.example.com",
        "worker_image_repository": "123456789012.dkr.ecr.us-east-1.amazonaws.com/mlops-worker",
        "worker_image_ecr_repository_arn": "arn:aws:ecr:us-east-1:123456789012:repository/mlops-worker",
        "worker_image_tag": "0123abc",
        "eks_oidc_provider_arn": "arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/ABC",
        "vpc_id": vpc,
        "subnet_ids": [s["SubnetId"] for s in subnets[:2]],
        # moto 5.2's ECS does not echo a service's availabilityZoneRebalancing, so an ECS service never plans clean
        # there; everything else (cluster, task definition, log group, security group, ...) is applied for real.
        "enable_worker_service": False,
    }


def _create_access_log_bucket(endpoint: str, name: str) -> None:
    """The access-log target, with the bucket policy S3 (and moto) require before accepting log delivery."""
    import boto3

    s3 = boto3.client("s3", endpoint_url=endpoint)
    s3.create_bucket(Bucket=name)
    statement = {
        "Effect": "Allow",
        "Principal": {"Service": "logging.s3.amazonaws.com"},
        "Action": ["s3:PutObject"],
        "Resource": f"arn:aws:s3:::{name}/*",
    }
    s3.put_bucket_policy(Bucket=name, Policy=json.dumps({"Version": "2012-10-17", "Statement": [statement]}))


def _assert_applied_as_declared(endpoint: str, outputs: dict[str, object]) -> None:
    """What moto now holds, read back with boto3 rather than through terraform's own state."""
    import boto3

    s3 = boto3.client("s3", endpoint_url=endpoint)
    key_arn = outputs["data_kms_key_arn"]
    for bucket in (outputs["landing_bucket"], outputs["lake_bucket"], outputs["mlflow_artifacts_bucket"]):
        sse = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
        assert sse["ApplyServerSideEncryptionByDefault"] == {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key_arn}
        assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
        assert all(s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"].values())
        assert "aws:SecureTransport" in s3.get_bucket_policy(Bucket=bucket)["Policy"]
    rules = s3.get_bucket_lifecycle_configuration(Bucket=outputs["lake_bucket"])["Rules"]
    expiring = {r["Filter"].get("Prefix"): r["Expiration"]["Days"] for r in rules if "Days" in r.get("Expiration", {})}
    quarantine = [f"{u}/{p}" for u in ("uc_one", "uc_two") for p in ("scores/_quarantine/", "rejected/")]
    assert expiring == dict.fromkeys(quarantine, 30)

    policy = boto3.client("iam", endpoint_url=endpoint).get_role_policy(
        RoleName=str(outputs["worker_task_role_arn"]).rsplit("/", 1)[1], PolicyName="data-access"
    )["PolicyDocument"]
    listed = [s["Resource"] for s in policy["Statement"]]
    resources = {r for item in listed for r in ([item] if isinstance(item, str) else item)}
    assert f"arn:aws:s3:::{outputs['lake_bucket']}/uc_one/*" in resources and "*" not in resources

    family = str(outputs["worker_task_definition_arn"]).rsplit("/", 1)[1]
    container = boto3.client("ecs", endpoint_url=endpoint).describe_task_definition(taskDefinition=family)
    assert container["taskDefinition"]["containerDefinitions"][0]["image"].endswith(":0123abc")


@pytest.mark.slow
def test_apply_plan_destroy_round_trip_on_moto(
    initialized_module: Path, tf_env: dict[str, str], s3_server: str, tmp_path: Path
) -> None:
    """apply builds the module on moto (all but the ECS service), a second plan is empty, destroy removes it."""
    import boto3

    work = tmp_path / "aws"
    shutil.copytree(initialized_module, work, symlinks=True)
    prefix = f"tf{uuid.uuid4().hex[:10]}"
    log_bucket = f"{prefix}-access-logs"
    _create_access_log_bucket(s3_server, log_bucket)
    (work / "moto.auto.tfvars.json").write_text(json.dumps(_moto_inputs(s3_server, prefix, log_bucket)))
    env = _terraform_env(tf_env["TF_CLI_CONFIG_FILE"])  # now with the fake AWS credentials of s3_server
    destroyed = None
    try:
        _ok(_run(["apply", "-auto-approve", "-input=false", "-no-color", "-parallelism=20"], work, env))
        plan = _run(["plan", "-detailed-exitcode", "-input=false", "-no-color", "-parallelism=20"], work, env)
        assert plan.returncode == 0, f"a second plan wants changes (exit {plan.returncode}):\n{plan.stdout}"
        outputs = {k: v["value"] for k, v in json.loads(_ok(_run(["output", "-json"], work, env))).items()}
        _assert_applied_as_declared(s3_server, outputs)
    finally:  # also after a failed apply: remove whatever it created (the state records it; no refresh needed)
        if (work / "terraform.tfstate").exists():
            destroy = ["destroy", "-auto-approve", "-input=false", "-no-color", "-refresh=false", "-parallelism=20"]
            destroyed = _run(destroy, work, env)
    assert destroyed is not None
    _ok(destroyed)
    names = {b["Name"] for b in boto3.client("s3", endpoint_url=s3_server).list_buckets()["Buckets"]}
    assert not {n for n in names if n.startswith(f"{prefix}-staging-")}, "destroy left buckets behind"


# --- the offline suites started in the background, collected last (pytest runs tests in file order) -------------


@pytest.mark.parametrize("test_file", TEST_FILES)
def test_mocked_terraform_test(offline_suites: _Background, test_file: str) -> None:
    """Every run block of one .tftest.hcl file passed under `mock_provider "aws"`."""
    result = offline_suites.result("suite")
    report = Path(result.args[-1].removeprefix("-junit-xml="))
    assert report.exists(), f"terraform test wrote no report (exit {result.returncode}):\n{result.stdout}"
    root = ET.parse(report).getroot()  # noqa: S314 - a report terraform just wrote in our own temp dir
    suites = {s.get("name"): s for s in root.iter("testsuite")}
    assert test_file in suites, f"{test_file} did not run; suites: {sorted(suites)}\n{result.stdout}"
    cases = list(suites[test_file].iter("testcase"))
    problems = [
        f"{case.get('name')}: {child.tag}: {child.get('message', '')}\n{child.text or ''}"
        for case in cases
        for child in case
        if child.tag in {"failure", "error", "skipped"}
    ]
    assert cases, f"{test_file} holds no run block"
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_environment_tfvars_plan(offline_suites: _Background, environment: str) -> None:
    """envs/<env>.tfvars passes every validation and the environment's guard rails (mocked provider)."""
    result = offline_suites.result(environment)
    assert result.returncode == 0 and "1 passed, 0 failed" in result.stdout, result.stdout
