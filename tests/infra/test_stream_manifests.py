"""The stream consumer's deployments, checked offline: the Kubernetes manifests against the API schemas
(kubernetes-validate, strict), and what they must say about the consumer; its compose service."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
MANIFEST = REPO / "infra" / "kubernetes" / "stream-consumer.yaml"
COMPOSE = REPO / "infra" / "docker" / "compose.yaml"


def _documents() -> dict[str, dict]:
    return {doc["kind"]: doc for doc in yaml.safe_load_all(MANIFEST.read_text()) if doc}


def test_every_manifest_is_valid_for_a_current_kubernetes_release() -> None:
    import kubernetes_validate
    from kubernetes_validate.utils import latest_version

    version = latest_version()
    docs = _documents()
    assert set(docs) == {"ServiceAccount", "Deployment", "PodDisruptionBudget"}
    for doc in docs.values():
        kubernetes_validate.validate(doc, version, strict=True)


def test_a_schema_error_is_caught() -> None:
    import kubernetes_validate
    from kubernetes_validate.utils import latest_version

    broken = _documents()["Deployment"]
    broken["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, latest_version(), strict=True)


def test_the_deployment_runs_the_consumer_as_the_product_expects() -> None:
    docs = _documents()
    spec = docs["Deployment"]["spec"]
    pod = spec["template"]["spec"]
    (container,) = pod["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert container["command"] == ["mlops", "stream"]
    assert spec["replicas"] >= 2 and docs["PodDisruptionBudget"]["spec"]["minAvailable"] == 1  # shards are shared
    assert env["MLOPS_PROFILE"] == "aws" and env["OMP_NUM_THREADS"] == "1"
    assert pod["serviceAccountName"] == docs["ServiceAccount"]["metadata"]["name"]
    assert "eks.amazonaws.com/role-arn" in docs["ServiceAccount"]["metadata"]["annotations"]
    # the probes read the file the consumer touches at each lease round, on a writable volume
    heartbeat = env["MLOPS_STREAM_HEARTBEAT_FILE"]
    assert heartbeat in " ".join(container["livenessProbe"]["exec"]["command"])
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert any(heartbeat.startswith(m + "/") for m in mounts)
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    # a clean stop finishes the batch in progress: the grace period is longer than a batch and a checkpoint
    assert pod["terminationGracePeriodSeconds"] >= 30
    assert not [n for n in env if any(w in n for w in ("SECRET", "PASSWORD", "ACCESS_KEY", "TOKEN"))]


def test_the_aws_profile_reads_what_the_deployment_sets() -> None:
    profile = (REPO / "config" / "profiles" / "aws.yaml").read_text()
    env = {e["name"] for e in _documents()["Deployment"]["spec"]["template"]["spec"]["containers"][0]["env"]}
    for name in ("MLOPS_STREAM_NAME", "MLOPS_STREAM_CHECKPOINT_TABLE", "MLOPS_STREAM_HEARTBEAT_FILE"):
        assert f"${{{name}" in profile and name in env


def test_compose_runs_the_consumer_against_the_stacks_s3_and_kinesis_api() -> None:
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    consumer = services["stream-consumer"]
    assert consumer["command"][:2] == ["mlops", "stream"]
    assert "ports" not in consumer  # nothing to listen on
    assert consumer["environment"]["MLOPS_PROFILE"] == "stack" and "s3" in consumer["depends_on"]
