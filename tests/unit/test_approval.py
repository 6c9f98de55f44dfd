"""Approval mode's pure rules: the form's description and what an answer, a timeout or a moved champion record."""

from __future__ import annotations

import pytest

from tasks import approval

RECORD = {
    "outcome": "promoted",
    "mode": "approval",
    "registered_model": "flight-delay-classifier",
    "challenger_version": "5",
    "champion_version": "3",
    "challenger": {"roc_auc": 0.71, "rows": 9000.0},
    "champion": {"roc_auc": 0.69, "rows": 9000.0},
    "bootstrap": {"diff": 0.02, "low": 0.004, "high": 0.035, "resamples": 1000},
    "window": {"start": "2013-02-20", "end": "2013-02-28", "rows": 9000},
    "reasons": ["passed the gate, promoted only once a person approves: every check passed"],
    "reason": "retrain: drift in window 2013-02",
}


def test_the_description_shows_metrics_interval_and_evidence():
    text = approval.approval_markdown(RECORD, "roc_auc", "runs:/abc/gate", "http://mlflow/#/runs/abc")
    assert text.startswith("## Promote version 5 of `flight-delay-classifier` to @champion?")
    assert "| roc_auc | 0.7100 | 0.6900 |" in text and "Current champion: **3**" in text
    assert "+0.0200** [+0.0040, +0.0350]" in text and "9,000 rows" in text
    assert "runs:/abc/gate" in text and "http://mlflow/#/runs/abc" in text and "retrain: drift" in text


def test_the_first_model_has_no_champion_column_values():
    first = {**RECORD, "champion_version": None, "champion": None, "bootstrap": None}
    text = approval.approval_markdown(first, "roc_auc", "runs:/abc/gate", "abc")
    assert "none (first model)" in text and "| roc_auc | 0.7100 |  |" in text and "bootstrap" not in text


@pytest.mark.parametrize(
    ("approve", "outcome", "verb"), [(True, "promoted", "approved"), (False, "not_promoted", "rejected")]
)
def test_an_answer_records_who_why_and_the_outcome(approve, outcome, verb):
    done = approval.answered(RECORD, approve, "alice", "lift holds", "2026-12-06T10:00:00+00:00")
    assert done["outcome"] == outcome and done["reasons"][0] == f"{verb} by alice: lift holds"
    assert done["approval"] == {
        "decision": verb,
        "by": "alice",
        "comment": "lift holds",
        "at": "2026-12-06T10:00:00+00:00",
    }
    assert RECORD["outcome"] == "promoted", "the input record is not changed"


def test_the_alias_move_names_the_approver():
    done = approval.answered(RECORD, True, "alice", "lift holds", "t")
    assert (
        approval.move_reason(done)
        == "promoted by gate, approved by alice: lift holds (retrain: drift in window 2013-02)"
    )
    assert approval.move_reason({**RECORD, "reason": "by hand"}) == "promoted by gate (by hand)"


def test_a_timeout_and_a_moved_champion_are_not_promoted():
    late = approval.timed_out(RECORD, 259200, "t")
    assert late["outcome"] == "not_promoted" and "within 259,200 s" in late["reasons"][0]
    moved = approval.superseded({**RECORD, "champion_version": "4"}, "3", "t")
    assert moved["outcome"] == "not_promoted" and "moved from 3 to 4" in moved["reasons"][0]
    assert moved["approval"]["decision"] == "superseded"
