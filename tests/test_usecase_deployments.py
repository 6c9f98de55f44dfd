"""Several use cases on one deployment set: each use case has scheduled deployments carrying its name."""

from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SCHEDULED_FLOWS = ("flows/score.py:score", "flows/drift.py:drift_check", "flows/performance.py:performance_check")
DEPLOYMENTS = yaml.safe_load((REPO / "prefect.yaml").read_text())["deployments"]
USECASES = sorted(p.stem for p in (REPO / "config" / "usecases").glob("*.yaml"))


@pytest.mark.parametrize("usecase", USECASES)
def test_every_use_case_has_its_own_scheduled_deployments(usecase):
    mine = [d for d in DEPLOYMENTS if (d.get("parameters") or {}).get("usecase") == usecase]
    assert sorted(d["entrypoint"] for d in mine) == sorted(SCHEDULED_FLOWS)
    assert all(d.get("schedules") for d in mine)


# flows whose work spans every use case: the backup copies the whole home (registry, Prefect, every use case's lake)
HOME_WIDE_FLOWS = {"flows/backup.py:backup"}


def test_no_scheduled_deployment_runs_an_implicit_use_case():
    implicit = [
        d["name"]
        for d in DEPLOYMENTS
        if d.get("schedules")
        and d["entrypoint"] not in HOME_WIDE_FLOWS
        and "usecase" not in (d.get("parameters") or {})
    ]
    assert implicit == []
