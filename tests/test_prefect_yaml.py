"""Every deployment in prefect.yaml loads: its entrypoint is a flow and its parameters fit the flow."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest
import yaml
from prefect import Flow

from ops.runner import load_entrypoint

REPO = Path(__file__).resolve().parents[1]
SPEC = yaml.safe_load((REPO / "prefect.yaml").read_text())
DEPLOYMENTS = SPEC["deployments"]


@pytest.mark.parametrize("deployment", DEPLOYMENTS, ids=lambda d: d["name"])
def test_deployment_entrypoint_is_a_flow_and_parameters_fit(deployment):
    flow = load_entrypoint(deployment["entrypoint"])
    assert isinstance(flow, Flow)
    assert (REPO / deployment["entrypoint"].split(":")[0]).is_file()
    accepted = inspect.signature(flow.fn).parameters
    assert set(deployment.get("parameters") or {}) <= set(accepted)
    assert deployment["work_pool"]["name"]
    assert deployment["description"]


def test_every_flow_module_has_a_deployment():
    entry_modules = {d["entrypoint"].split(":")[0] for d in DEPLOYMENTS}
    flow_modules = {
        f"flows/{p.name}"
        for p in (REPO / "flows").glob("*.py")
        if re.search(r"^@flow\(", p.read_text(), re.MULTILINE) and p.stem != "demo"
    }
    assert flow_modules <= entry_modules


def test_no_secret_values_in_prefect_yaml():
    text = (REPO / "prefect.yaml").read_text()
    assert not re.search(r"(?i)(password|secret|token|access_key)\s*:\s*\S", text)
