"""Flow runs started outside the `mlops` command (work-pool jobs, containers) get the thread policy too."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from adapters.compute import THREAD_ENV_VARS
from flows.settings import ComputeSettings

REPO = Path(__file__).resolve().parents[2]
DEFAULT = str(ComputeSettings().model_threads)
POLICY = ("MLOPS_MODEL_THREADS", *THREAD_ENV_VARS)


@pytest.mark.parametrize("pool", sorted(p.stem for p in (REPO / "infra" / "work-pools").glob("*.json")))
def test_every_work_pool_runs_flows_under_the_default_thread_policy(pool):
    template = json.loads((REPO / "infra" / "work-pools" / f"{pool}.json").read_text())
    env = template["variables"]["properties"]["env"]["default"]
    assert {k: env.get(k) for k in POLICY} == dict.fromkeys(POLICY, DEFAULT)


def test_the_image_sets_the_thread_policy_from_the_start():
    dockerfile = (REPO / "infra" / "docker" / "Dockerfile").read_text()
    for name in POLICY:
        assert re.search(rf"^\s+{name}={DEFAULT}\b", dockerfile, re.MULTILINE), name
