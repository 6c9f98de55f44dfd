"""infra/kubernetes/api.yaml: every object validates strictly against a recent Kubernetes schema, offline, and
the Deployment has the probes, security and resources the service needs."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
MANIFEST = REPO / "infra" / "kubernetes" / "api.yaml"


def _objects() -> dict[str, dict]:
    return {d["kind"]: d for d in yaml.safe_load_all(MANIFEST.read_text()) if d}


def test_every_object_validates_strictly() -> None:
    import kubernetes_validate
    from kubernetes_validate.utils import latest_version

    objects = _objects()
    assert set(objects) == {"Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget", "NetworkPolicy"}
    for manifest in objects.values():
        kubernetes_validate.validate(manifest, latest_version(), strict=True)


def test_strict_validation_catches_a_misplaced_field() -> None:
    import kubernetes_validate
    from kubernetes_validate.utils import latest_version

    deployment = _objects()["Deployment"]
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessprobe"] = {"httpGet": {"path": "/ready"}}
    with pytest.raises(kubernetes_validate.ValidationError, match="readinessprobe"):
        kubernetes_validate.validate(deployment, latest_version(), strict=True)


def test_deployment_probes_security_and_resources() -> None:
    objects = _objects()
    pod = objects["Deployment"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == 10001
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert container["resources"]["requests"] and container["resources"]["limits"]
    assert container["command"][:2] == ["mlops", "api"]
    assert {m["mountPath"] for m in container["volumeMounts"]} == {"/tmp", "/var/mlops"}
    assert not [e for e in container["env"] if "KEY" in e["name"] or "SECRET" in e["name"]]  # no secret in the pod
    selector = objects["Deployment"]["spec"]["selector"]["matchLabels"]
    assert (
        objects["Service"]["spec"]["selector"]
        == selector
        == objects["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"]
    )
    assert (
        objects["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]["name"]
        == objects["Deployment"]["metadata"]["name"]
    )
    assert (
        objects["HorizontalPodAutoscaler"]["spec"]["minReplicas"]
        > objects["PodDisruptionBudget"]["spec"]["minAvailable"]
    )
