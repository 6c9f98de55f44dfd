import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from tasks import metrics
from tasks.errors import MlopsError
from tasks.usecase import KpiSpec

Y = np.array([1, 0, 1, 0, 0, 1, 0, 0, 0, 0])
P = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05])
KPI = KpiSpec(name="caught_in_top_20pct", top_fraction=0.2)


@pytest.mark.parametrize(
    ("fraction", "expected"),
    [
        (0.1, 1 / 3),  # top 1 row: one of three positives
        (0.2, 1 / 3),  # top 2 rows: 1 and 0
        (0.25, 2 / 3),  # ceil(2.5) = 3 rows
        (0.6, 3 / 3),
        (1.0, 1.0),
    ],
)
def test_recall_at_top_counts_positives_among_the_highest_scores(fraction, expected):
    assert metrics.recall_at_top(Y, P, fraction) == pytest.approx(expected)


def test_recall_at_top_is_undefined_without_positives():
    with pytest.raises(MlopsError, match="without positive rows"):
        metrics.recall_at_top(np.zeros(5), np.linspace(0, 1, 5), 0.2)


def test_calibration_error_is_zero_when_every_bin_matches_its_rate():
    # ten bins of ten rows scored k/10, k of them positive: the observed rate equals the score in each bin
    proba = np.repeat(np.arange(10) / 10, 10)
    y = np.concatenate([np.r_[np.ones(k), np.zeros(10 - k)] for k in range(10)])
    assert metrics.expected_calibration_error(y, proba, bins=10) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize(
    ("proba", "positives", "expected"),
    [
        (0.9, 50, 0.4),  # over-confident: scores 0.9, half positive
        (0.1, 50, 0.4),  # under-confident
        (0.5, 50, 0.0),
    ],
)
def test_calibration_error_measures_the_gap_of_a_constant_score(proba, positives, expected):
    # tied scores share one bin whatever the row order, so a constant scorer's error is its single gap
    y = np.r_[np.ones(positives), np.zeros(100 - positives)]
    rng = np.random.default_rng(0)
    assert metrics.expected_calibration_error(rng.permutation(y), np.full(100, proba)) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("threshold", "expected"),
    [
        (0.5, {"tn": 4, "fp": 3, "fn": 1, "tp": 2}),  # a score equal to the threshold is flagged
        (0.0, {"tn": 0, "fp": 7, "fn": 0, "tp": 3}),
        (0.95, {"tn": 7, "fp": 0, "fn": 3, "tp": 0}),
    ],
)
def test_confusion_counts_the_thresholded_decision(threshold, expected):
    assert metrics.confusion(Y, P, threshold) == expected


def test_evaluate_matches_hand_computed_and_reference_values():
    result = metrics.evaluate(Y, P, threshold=0.5, kpi=KPI)
    assert set(result) == {
        "roc_auc",
        "average_precision",
        "log_loss",
        "brier",
        "precision",
        "recall",
        "positive_rate",
        "calibration_error",
        "kpi",
        "rows",
        "positives",
    }
    assert result["roc_auc"] == pytest.approx(roc_auc_score(Y, P))
    assert result["roc_auc"] == pytest.approx(17 / 21)  # 7 + 6 + 4 of 21 positive/negative pairs ordered right
    assert result["average_precision"] == pytest.approx(average_precision_score(Y, P))
    assert result["precision"] == pytest.approx(2 / 5)
    assert result["recall"] == pytest.approx(2 / 3)
    assert result["positive_rate"] == pytest.approx(5 / 10)
    assert result["brier"] == pytest.approx(np.mean((P - Y) ** 2))
    assert result["log_loss"] == pytest.approx(-np.mean(Y * np.log(P) + (1 - Y) * np.log(1 - P)))
    assert result["kpi"] == pytest.approx(1 / 3)
    assert (result["rows"], result["positives"]) == (10.0, 3.0)
    assert all(isinstance(v, float) for v in result.values())


def test_calibration_bins_hold_about_equal_rows_and_cover_all():
    rng = np.random.default_rng(1)
    proba = rng.beta(1, 4, size=1000)
    mean_score, rate, counts = metrics.calibration_bins(rng.random(1000) < proba, proba, bins=10)
    assert counts.sum() == 1000 and len(counts) == 10
    assert counts.min() >= 99 and counts.max() <= 101
    assert np.all(np.diff(mean_score) > 0) and np.all((rate >= 0) & (rate <= 1))


def test_evaluate_reports_zero_precision_when_nothing_is_flagged():
    result = metrics.evaluate(Y, P, threshold=0.99, kpi=KPI)
    assert (result["precision"], result["recall"], result["positive_rate"]) == (0.0, 0.0, 0.0)


@pytest.mark.parametrize(
    ("y", "proba", "message"),
    [
        (np.zeros(10), P, "have class 0"),
        (np.ones(10), P, "have class 1"),
        (Y[:5], P, "one length"),
        (np.array([]), np.array([]), "zero rows"),
        (np.full(10, 2), P, "0 or 1"),
        (np.r_[Y[:9], 0.5], P, "0 or 1"),
    ],
    ids=["all-negative", "all-positive", "length-mismatch", "empty", "not-binary", "fractional"],
)
def test_evaluate_refuses_undefined_inputs(y, proba, message):
    with pytest.raises(MlopsError, match=message):
        metrics.evaluate(y, proba, threshold=0.5, kpi=KPI)
