"""The pure parts of the closed-loop replay: months, policy comparison, recovered share, violations, report."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from tasks import plots
from tasks import replay as rules
from tasks.errors import MlopsError
from tasks.training import model_inputs

# three months where every policy has a value, one where ours has none (left out of every mean)
TABLE = [
    {"month": "2013-04", "static": 0.60, "oracle": 0.60, "ours": 0.60},
    {"month": "2013-05", "static": 0.70, "oracle": 0.74, "ours": 0.73},
    {"month": "2013-06", "static": 0.65, "oracle": 0.69, "ours": 0.66},
    {"month": "2013-07", "static": 0.50, "oracle": 0.90, "ours": None},
]
CHECKS = [
    rules.PromotionCheck("2013-04", "2013-05", "2", "1", new_auc=0.73, previous_auc=0.70),
    rules.PromotionCheck("2013-05", "2013-06", "3", "2", new_auc=0.66, previous_auc=0.67),
    rules.PromotionCheck("2013-07", None, "4", "3", new_auc=None, previous_auc=None),
]


@pytest.mark.parametrize(
    ("month", "count", "expected"),
    [
        ("2013-04", 3, ["2013-01", "2013-02", "2013-03"]),
        ("2014-02", 3, ["2013-11", "2013-12", "2014-01"]),
        ("2013-01", 1, ["2012-12"]),
    ],
)
def test_months_before(month, count, expected):
    assert rules.months_before(month, count) == expected


@pytest.mark.parametrize(("month", "count"), [("2013-04", 0), ("2013-13", 3)])
def test_months_before_refuses_no_month_or_a_malformed_one(month, count):
    with pytest.raises(MlopsError):
        rules.months_before(month, count)


@pytest.mark.parametrize(("month", "expected"), [("2013-04", "2013-05"), ("2013-12", "2014-01")])
def test_next_month(month, expected):
    assert rules.next_month(month) == expected


@pytest.mark.parametrize(
    ("ours", "static", "oracle", "expected"),
    [
        (0.71, 0.70, 0.72, 0.5),  # half of the oracle's +0.02
        (0.73, 0.70, 0.72, 1.5),  # better than the oracle
        (0.69, 0.70, 0.72, -0.5),  # worse than never retraining
        (0.71, 0.70, 0.70, None),  # the oracle gained nothing: nothing to recover
        (0.71, 0.70, 0.69, None),
    ],
)
def test_recovered_share(ours, static, oracle, expected):
    assert rules.recovered_share(ours, static, oracle) == pytest.approx(expected)


def test_promotion_check_is_worse_only_when_strictly_below_the_replaced_champion():
    assert CHECKS[0].delta == pytest.approx(0.03) and CHECKS[0].worse is False
    assert CHECKS[1].delta == pytest.approx(-0.01) and CHECKS[1].worse is True
    assert CHECKS[2].delta is None and CHECKS[2].worse is None
    tie = rules.PromotionCheck("2013-04", "2013-05", "2", "1", new_auc=0.7, previous_auc=0.7)
    assert tie.worse is False
    assert CHECKS[1].to_dict()["worse"] is True and CHECKS[1].to_dict()["delta"] == pytest.approx(-0.01)


def test_summary_compares_the_same_months_and_finds_the_violation():
    s = rules.summarize(TABLE, {"oracle": 4, "ours": 2}, CHECKS)
    # by hand over 04..06: static 0.65, oracle 2.03/3, ours 1.99/3; gains 0.08/3 and 0.04/3
    assert s["months_compared"] == ["2013-04", "2013-05", "2013-06"]
    assert s["months_left_out"] == ["2013-07"]
    assert s["mean_auc"]["static"] == pytest.approx(0.65)
    assert s["mean_auc"]["oracle"] == pytest.approx(2.03 / 3)
    assert s["mean_auc"]["ours"] == pytest.approx(1.99 / 3)
    assert s["oracle_gain"] == pytest.approx(0.08 / 3)
    assert s["ours_gain"] == pytest.approx(0.04 / 3)
    assert s["recovered_share"] == pytest.approx(0.5)
    assert s["retrain_ratio"] == pytest.approx(0.5)
    assert s["promotions"] == 3 and s["promotions_unchecked"] == 1
    assert [(v["after_month"], v["new_version"]) for v in s["violations"]] == [("2013-05", "3")]
    met = {g["goal"]: g["met"] for g in s["goals"]}
    assert met == {
        "recovered share of the oracle's gain": False,
        "retrainings / oracle's": True,
        "promotions worse on the next month": False,
    }


def test_summary_meets_every_goal_when_ours_recovers_enough_with_few_retrains():
    table = [{"month": "m1", "static": 0.70, "oracle": 0.72, "ours": 0.719}]
    s = rules.summarize(table, {"oracle": 10, "ours": 6}, CHECKS[:1])
    assert s["recovered_share"] == pytest.approx(0.95)
    assert all(g["met"] for g in s["goals"]), s["goals"]


def test_summary_without_an_oracle_gain_says_the_share_is_not_measurable():
    table = [{"month": "m1", "static": 0.72, "oracle": 0.70, "ours": 0.71}]
    s = rules.summarize(table, {"oracle": 1, "ours": 0}, [])
    assert s["recovered_share"] is None and s["retrain_ratio"] == 0.0
    assert [g["met"] for g in s["goals"]] == [None, True, True]


class _ScoreIsFirstInput:
    """A stand-in model whose probability is the first model input (so the AUC can be worked out by hand)."""

    def __init__(self, column: str) -> None:
        self.column = column

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        p = frame[self.column].to_numpy(dtype=float)
        return np.c_[1 - p, p]


def _frame(usecase, scores: list[float], labels: list[float | None]) -> pd.DataFrame:
    frame = pd.DataFrame({c: [0.0] * len(scores) for c in model_inputs(usecase)})
    frame[usecase.features.numeric[0]] = scores
    return frame.assign(**{usecase.target.name: pd.array(labels, dtype="Int64")})


def test_labelled_auc_uses_only_rows_with_a_known_label(usecase):
    model = _ScoreIsFirstInput(usecase.features.numeric[0])
    frame = _frame(usecase, [0.9, 0.2, 0.5, 0.3, 0.4], [1, 0, None, 1, 0])
    # pairs (positive, negative): 0.9>0.2, 0.9>0.4, 0.3>0.2 ordered right, 0.3<0.4 wrong -> 3/4
    assert rules.labelled_auc(model, frame, usecase) == pytest.approx(0.75)


def test_labelled_auc_of_a_single_class_is_none(usecase):
    model = _ScoreIsFirstInput(usecase.features.numeric[0])
    assert rules.labelled_auc(model, _frame(usecase, [0.9, 0.2, 0.5], [1, 1, None]), usecase) is None


def test_fit_window_model_refuses_an_empty_window(usecase):
    with pytest.raises(MlopsError, match="empty"):
        rules.fit_window_model(pd.DataFrame(), usecase)


def _result() -> dict:
    outcome = {
        "status": "retrained",
        "version": "2",
        "gate": {"outcome": "promoted", "bootstrap": {"diff": 0.04, "low": 0.03, "high": 0.05}},
    }
    table = [
        {
            "month": "2013-04",
            "scored_by": "1",
            "auc": {"static": 0.6, "oracle": 0.6, "ours": 0.6},
            "performance": {"degraded": True},
            "drift": {"drifted": True, "score": 0.2, "retrain_requested": False},
            "retrain_runs": [outcome],
            "champion_after": "2",
        },
        {
            "month": "2013-05",
            "scored_by": "2",
            "auc": {"static": 0.7, "oracle": 0.74, "ours": 0.73},
            "performance": {"degraded": False},
            "drift": {"drifted": None, "score": None, "retrain_requested": False},
            "retrain_runs": [],
            "champion_after": "2",
        },
    ]
    rows = [{"month": r["month"], **r["auc"]} for r in table]
    return {
        "table": table,
        "summary": rules.summarize(rows, {"oracle": 2, "ours": 1}, CHECKS[:1]),
        "promotion_checks": [CHECKS[0].to_dict()],
        "timings": {"total_seconds": 100.0, "month_seconds": {"2013-04": 30.0, "2013-05": 10.0}},
        "files": {"json": "replay.json", "plot": "replay.png"},
    }


def test_month_table_has_one_row_per_month_with_the_gate_decision():
    header, april, may = rules.month_table(_result())
    assert header[:5] == ["month", "scored by", "static", "oracle", "ours"]
    assert april == [
        "2013-04",
        "v1",
        "0.6000",
        "0.6000",
        "0.6000",
        "degraded",
        "drifted 0.20",
        "retrained",
        "v2 promoted (diff +0.0400 [+0.0300, +0.0500])",
        "v2",
    ]
    assert may[5:9] == ["ok", "no verdict", "-", "-"]


def test_month_table_shows_a_refused_batch_instead_of_checks():
    result = _result()
    result["table"][1] |= {"refused": "column 'x' is 85% null", "performance": None, "drift": None}
    result["table"][1]["auc"]["ours"] = None
    may = rules.month_table(result)[2]
    assert may[4:7] == ["refused", "batch refused", "batch refused"]


def test_summary_rows_name_goals_checks_and_timings():
    rows = dict(rules.summary_rows(_result()))
    assert rows["retrains ours / oracle"] == "1 / 2"
    assert rows["goal: retrainings / oracle's"] == "50.0% (target <= 60%) MET"
    assert rows["promotion after 2013-04"] == "v2 vs v1 on 2013-05: 0.7300 vs 0.7000 -> not worse"
    assert rows["seconds per month (mean, max)"] == "20, 30"
    assert rows["months compared"] == "2 of 2" and rows["months left out (a policy has no value)"] == "none"


def test_summary_rows_say_when_the_new_champion_refused_the_next_month():
    result = _result()
    refused = rules.PromotionCheck("2013-04", "2013-05", "2", "1", new_auc=0.6, previous_auc=0.7, next_refused=True)
    result["promotion_checks"] = [refused.to_dict()]
    text = dict(rules.summary_rows(result))["promotion after 2013-04"]
    assert text == "v2 vs v1 on 2013-05: 0.6000 vs 0.7000 -> WORSE, and its contract refused 2013-05"


def test_replay_plot_is_a_deterministic_png_and_shows_the_markers():
    months = ["2013-04", "2013-05", "2013-06"]
    values = {"static": [0.6, 0.7, 0.65], "oracle": [0.6, 0.74, 0.69], "ours": [0.6, None, 0.66]}
    first = plots.replay_png(months, values, ["2013-04"], ["2013-04"])
    assert first.startswith(b"\x89PNG\r\n\x1a\n") and first == plots.replay_png(
        months, values, ["2013-04"], ["2013-04"]
    )
    assert first != plots.replay_png(months, values, [], [])
    assert first != plots.replay_png(months, values, ["2013-04"], ["2013-04"], refused=["2013-05"])
    width, height = Image.open(io.BytesIO(first)).size
    assert 600 <= width <= 1000 and 300 <= height <= 600
