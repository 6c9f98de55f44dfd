"""Pure rules of the checks: window choice, debounce memory, label join accounting, performance verdicts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from flows.retrain import training_window
from tasks import monitoring
from tasks.errors import InputDataError, MlopsError
from tasks.monitoring import ScoredWindow
from tasks.usecase import KpiSpec, PerformanceSpec


def window(name: str, version: str, at: str, batch: str | None = None) -> ScoredWindow:
    return ScoredWindow(name, batch or f"{name}_v", version, at, f"s3://x/{name}/{version}/_manifest.json")


WINDOWS = [
    window("2013-05", "1", "2026-01-02"),
    window("2013-04", "1", "2026-01-01"),
    window("2013-05", "1", "2026-01-03", batch="2013-05_new"),  # a newer snapshot of May, scored again
    window("2013-06", "2", "2026-01-04"),
]


def test_pick_window_takes_the_latest_scoring_of_the_wanted_window_by_that_version():
    assert monitoring.pick_window(WINDOWS, "1", "2013-05").batch_id == "2013-05_new"
    assert monitoring.pick_window(WINDOWS, "1", None).batch_id == "2013-05_new"
    assert monitoring.pick_window(WINDOWS, "2", None).window == "2013-06"
    assert monitoring.pick_window(WINDOWS, "1", "2013-05_v").scored_at == "2026-01-02"  # by batch id


def test_pick_window_names_what_exists_when_the_version_never_scored_the_window():
    with pytest.raises(InputDataError, match=r"version 2 has not scored window '2013-04'.*2013-04 \(model 1\)"):
        monitoring.pick_window(WINDOWS, "2", "2013-04")
    with pytest.raises(InputDataError, match="has not scored any window; scored so far: nothing"):
        monitoring.pick_window([], "1", None)


def test_window_name_is_the_snapshot_period_else_the_batch_id():
    assert monitoring.window_name({"batch_id": "b", "snapshot": {"period": "2013-07"}}) == "2013-07"
    assert monitoring.window_name({"batch_id": "file-abc", "snapshot": None}) == "file-abc"


def test_drift_history_is_ordered_leaves_out_the_checked_window_and_finds_the_last_request():
    stored = [
        {"window": "2013-06", "drifted": True, "retrain_requested": True},
        {"window": "2013-04", "drifted": False},
        {"window": "2013-05", "drifted": None},
        {"window": "2013-07", "drifted": True},  # a rerun of 2013-07 itself: left out
        {"window": "2013-08", "drifted": True},  # later than the checked window: left out
    ]
    history, last = monitoring.drift_history(stored, "2013-07")
    assert history == [False, None, True]
    assert last == 2
    assert monitoring.drift_history([], "2013-01") == ([], None)


def test_event_ids_are_stable_per_event_model_version_and_window():
    a = monitoring.event_id(monitoring.DRIFT_EVENT, "m", "1", "2013-05")
    assert a == monitoring.event_id(monitoring.DRIFT_EVENT, "m", "1", "2013-05")
    others = {
        monitoring.event_id(monitoring.PERFORMANCE_EVENT, "m", "1", "2013-05"),
        monitoring.event_id(monitoring.DRIFT_EVENT, "m", "2", "2013-05"),
        monitoring.event_id(monitoring.DRIFT_EVENT, "m", "1", "2013-06"),
    }
    assert a not in others and len(others) == 3


def test_model_resource_carries_what_the_trigger_matches_and_keys_on():
    resource = monitoring.model_resource("clf", "uc", "3", "2013-05")
    assert resource["prefect.resource.id"] == "mlops.model.clf"
    assert resource["mlops.window"] == "2013-05" and resource["mlops.usecase"] == "uc"


SCORES = pd.DataFrame({"id": ["a", "b", "c", "d", "e"], "probability": [0.9, 0.2, 0.7, 0.4, 0.5]})


def test_join_labels_accounts_for_every_scored_row():
    labels = pd.DataFrame({"id": ["a", "b", "c", "d", "z"], "y": [1, 0, None, 0, 1]})
    labelled, counts = monitoring.join_labels(SCORES, labels, "id", "y")
    assert counts == {
        "rows_scored": 5,
        "rows_labelled": 3,
        "rows_unlabelled": 1,
        "rows_missing_label": 1,
        "labels_not_scored": 1,  # "z" was never scored
    }
    assert sorted(labelled["id"]) == ["a", "b", "d"]


def test_join_labels_refuses_repeated_ids_and_missing_columns():
    with pytest.raises(InputDataError, match=r"labels repeat 1 id.*'id', e.g. a"):
        monitoring.join_labels(SCORES, pd.DataFrame({"id": ["a", "a"], "y": [1, 1]}), "id", "y")
    with pytest.raises(InputDataError, match="labels have no column 'y'"):
        monitoring.join_labels(SCORES, pd.DataFrame({"id": ["a"]}), "id", "y")
    with pytest.raises(InputDataError, match="labels have no column 'id'"):
        monitoring.join_labels(SCORES, pd.DataFrame({"key": ["a"], "y": [1]}), "id", "y")


def test_realized_metrics_on_hand_checkable_rows():
    labelled = pd.DataFrame({"y": [1, 0, 1, 0], "p": [0.9, 0.1, 0.8, 0.3]})
    found = monitoring.realized_metrics(labelled, "y", "p", 0.5, KpiSpec(name="recall_top", top_fraction=0.5))
    assert found["roc_auc"] == 1.0 and found["kpi"] == 1.0 and found["rows"] == 4.0
    assert found["log_loss"] == pytest.approx(-np.mean(np.log([0.9, 0.9, 0.8, 0.7])))
    assert (
        monitoring.realized_metrics(labelled[labelled.y == 1], "y", "p", 0.5, KpiSpec(name="k", top_fraction=0.1)) == {}
    )


@pytest.mark.parametrize(
    ("realized", "rows", "holdout", "degraded", "reason"),
    [
        ({"roc_auc": 0.70}, 1000, 0.72, False, "roc_auc 0.7000 within floor 0.6200 and limit 0.6800"),
        ({"roc_auc": 0.61}, 1000, 0.62, True, "roc_auc 0.6100 < floor 0.6200"),
        ({"roc_auc": 0.67}, 1000, 0.72, True, "roc_auc 0.6700 < holdout 0.7200 - 0.0400"),
        ({"roc_auc": 0.60}, 1000, 0.72, True, "< floor 0.6200; roc_auc 0.6000 < holdout"),
        ({"roc_auc": 0.50}, 10, 0.72, None, "insufficient labels: 10 labelled rows (need 500"),
        ({}, 1000, 0.72, None, "insufficient labels"),
        ({"roc_auc": 0.66}, 1000, None, False, "within floor 0.6200"),
    ],
)
def test_performance_verdict(realized, rows, holdout, degraded, reason):
    spec = PerformanceSpec(metric="roc_auc", floor=0.62, max_drop=0.04, min_labelled_rows=500)
    verdict = monitoring.performance_verdict(realized, rows, holdout, spec)
    assert verdict.degraded is degraded
    assert reason in verdict.reason


def test_performance_verdict_needs_a_floor_or_a_margin():
    with pytest.raises(MlopsError, match=r"performance\.floor or performance\.max_drop"):
        monitoring.performance_verdict({"roc_auc": 0.7}, 1000, 0.7, PerformanceSpec())


AVAILABLE = ["2013-01", "2013-02", "2013-03", "2013-04", "2013-05"]


@pytest.mark.parametrize(
    ("months", "end", "trailing", "expected"),
    [
        (None, None, 3, ["2013-03", "2013-04", "2013-05"]),
        (None, "2013-04", 3, ["2013-02", "2013-03", "2013-04"]),
        (None, "2013-02", 3, ["2013-01", "2013-02"]),
        ("2013-01..2013-02", "2013-05", 3, ["2013-01", "2013-02"]),
    ],
)
def test_training_window(months, end, trailing, expected):
    assert training_window(AVAILABLE, months, end, trailing) == expected


def test_training_window_names_a_window_end_that_is_not_available():
    with pytest.raises(MlopsError, match="window end 2013-09 is neither landed nor curated"):
        training_window(AVAILABLE, None, "2013-09", 3)
    with pytest.raises(MlopsError, match="not a month"):
        training_window(AVAILABLE, None, "May", 3)
