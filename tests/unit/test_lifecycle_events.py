"""Lifecycle events: their resource, stable ids, and payloads that say what, why and where."""

from __future__ import annotations

import pytest

from tasks import lifecycle_events as le

RECORD = {
    "outcome": "rejected",
    "mode": "enforce",
    "challenger_version": "7",
    "champion_version": "6",
    "reasons": ["rejected: 1 of 5 checks failed", "roc_auc 0.610 is below the floor 0.650"],
    "challenger": {"roc_auc": 0.61},
    "champion": {"roc_auc": 0.66},
    "bootstrap": None,
    "window": {"start": "a", "end": "b", "rows": 900},
    "reason": "retrain: drift in window 2013-06",
    "flow_run_id": "fr-1",
}


def test_the_resource_is_the_model_version_with_extra_labels():
    resource = le.version_resource("m", "uc", "7", {"mlops.batch": "2013-06"})
    assert resource == {
        "prefect.resource.id": "mlops.model.m",
        "prefect.resource.name": "m",
        "mlops.usecase": "uc",
        "mlops.model.version": "7",
        "mlops.batch": "2013-06",
    }


def test_ids_are_stable_per_subject_and_differ_between_events():
    assert le.lifecycle_event_id(le.PROMOTED_EVENT, "m", "7") == le.lifecycle_event_id(le.PROMOTED_EVENT, "m", "7")
    assert le.lifecycle_event_id(le.PROMOTED_EVENT, "m", "7") != le.lifecycle_event_id(le.GATE_REJECTED_EVENT, "m", "7")


@pytest.mark.parametrize(
    ("outcome", "event"),
    [
        ("promoted", le.PROMOTED_EVENT),
        ("rejected", le.GATE_REJECTED_EVENT),
        ("not_promoted", le.GATE_REJECTED_EVENT),
        ("awaiting_approval", le.APPROVAL_REQUESTED_EVENT),
        ("dry_run_promote", None),
    ],
)
def test_each_gate_outcome_has_its_event(outcome, event):
    assert le.gate_event({"outcome": outcome}) == event


def test_the_gate_payload_says_what_why_and_where():
    payload = le.gate_payload(RECORD, "run-1", None, "runs:/run-1/gate")
    assert payload["reason"] == "version 7 rejected by the gate; @champion stays 6: rejected: 1 of 5 checks failed"
    assert payload["reasons"][1] == "roc_auc 0.610 is below the floor 0.650" and payload["trigger"].startswith(
        "retrain"
    )
    assert payload["metrics"] == {"challenger": {"roc_auc": 0.61}, "champion": {"roc_auc": 0.66}}
    assert (payload["mlflow_run_id"], payload["evidence_uri"], payload["flow_run_id"]) == (
        "run-1",
        "runs:/run-1/gate",
        "fr-1",
    )


def test_the_contract_payload_counts_every_problem_and_shows_the_first():
    problems = [f"column 'c{i}' is missing" for i in range(25)]
    payload = le.contract_payload("3", "b-1", "s3://in/b-1", problems, 1000, 14, None, "fr-2")
    assert payload["counts"] == {"rows": 1000, "columns": 14, "problems": 25}
    assert len(payload["reasons"]) == 20 and payload["reason"].startswith(
        "batch b-1 refused by the contract of version 3"
    )
    assert "column 'c0' is missing" in payload["reason"]


def test_the_rollback_payload_names_both_versions_and_why():
    payload = le.rollback_payload("7", "6", "late labels", "http://mlflow/#/runs/r", "fr-3")
    assert (
        payload["reason"] == "@champion rolled back from version 7 to 6: late labels"
        and payload["why"] == "late labels"
    )
