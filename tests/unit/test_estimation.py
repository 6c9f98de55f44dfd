"""Label-free performance estimation (CBPE) and the business value of a window."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from tasks import estimation, metrics
from tasks.errors import MlopsError
from tasks.usecase import KpiSpec

KPI = KpiSpec(name="top", top_fraction=0.1)
PAYOFF = {"tp": 400.0, "fp": -60.0, "fn": -150.0, "tn": 0.0}


def calibrated(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Scores that are true probabilities, and labels drawn from them."""
    rng = np.random.default_rng(seed)
    p = rng.beta(2, 5, n)
    return (rng.random(n) < p).astype("int64"), p


def identity() -> estimation.CalibrationMap:
    return estimation.CalibrationMap(knots_x=(0.0, 1.0), knots_y=(0.0, 1.0), rows=2)


def test_expected_auc_matches_the_mean_auc_over_labels_drawn_from_the_probabilities():
    rng = np.random.default_rng(1)
    s = rng.random(300)
    p = rng.random(300)
    draws = [(rng.random(300) < p).astype(int) for _ in range(500)]
    mean = np.mean([roc_auc_score(y, s) for y in draws])
    assert estimation.expected_auc(s, p) == pytest.approx(mean, abs=0.01)


def test_expected_auc_counts_ties_one_half():
    s = np.array([0.5, 0.5, 0.5, 0.5])
    assert estimation.expected_auc(s, np.array([0.9, 0.1, 0.8, 0.2])) == pytest.approx(0.5)


def test_perfectly_calibrated_scores_give_the_true_metrics_within_the_interval():
    y, p = calibrated(20_000, seed=2)
    est = estimation.estimate_performance(p, identity(), 0.3, KPI, payoff=PAYOFF, resamples=300, seed=3)
    true = metrics.evaluate(y, p, 0.3, KPI)
    for name in ("roc_auc", "precision", "recall", "kpi"):
        low, high = est.intervals[name]
        assert low <= true[name] <= high, (name, low, true[name], high)
        assert est.metrics[name] == pytest.approx(true[name], abs=0.02)
    realized = estimation.window_value(metrics.confusion(y, p, 0.3), PAYOFF)["total"]
    assert est.value_interval[0] <= realized <= est.value_interval[1]


def test_intervals_cover_the_truth_about_as_often_as_their_confidence():
    inside = 0
    for seed in range(40):
        y, p = calibrated(3000, seed=100 + seed)
        est = estimation.estimate_performance(p, identity(), 0.3, KPI, resamples=200, confidence=0.9, seed=seed)
        low, high = est.intervals["roc_auc"]
        inside += low <= roc_auc_score(y, p) <= high
    assert 30 <= inside <= 40  # 90 % nominal: 36 expected


def test_a_miscalibrated_model_is_corrected_by_the_calibration_map():
    y_val, p_val = calibrated(20_000, seed=4)
    y, p = calibrated(20_000, seed=5)
    skew = lambda q: q**3  # noqa: E731 - an overconfident-low scorer: same ranking, wrong probabilities
    raw = estimation.estimate_performance(skew(p), identity(), 0.3**3, KPI, resamples=50)
    fitted = estimation.fit_calibration(y_val, skew(p_val))
    corrected = estimation.estimate_performance(skew(p), fitted, 0.3**3, KPI, resamples=200)
    true = metrics.evaluate(y, skew(p), 0.3**3, KPI)
    assert abs(raw.metrics["recall"] - true["recall"]) > 0.05  # taken at face value the scores mislead
    assert abs(raw.metrics["base_rate"] - y.mean()) > 0.1
    assert corrected.metrics["roc_auc"] == pytest.approx(true["roc_auc"], abs=0.01)
    assert corrected.metrics["recall"] == pytest.approx(true["recall"], abs=0.02)
    assert corrected.metrics["base_rate"] == pytest.approx(y.mean(), abs=0.01)


def test_expected_confusion_sums_to_the_rows_and_splits_by_the_threshold():
    s = np.array([0.1, 0.4, 0.6, 0.9])
    cells = estimation.expected_confusion(s, s, 0.5)
    assert cells == pytest.approx({"tp": 1.5, "fp": 0.5, "fn": 0.5, "tn": 1.5})


def test_calibration_map_round_trips_and_rejects_bad_maps():
    y, p = calibrated(2000, seed=6)
    fitted = estimation.fit_calibration(y, p)
    again = estimation.calibration_from_dict(fitted.to_dict())
    assert again == fitted
    assert np.all(np.diff(again.apply(np.linspace(0, 1, 50))) >= 0)  # monotone
    with pytest.raises(MlopsError, match="unknown calibration method 'platt'"):
        estimation.calibration_from_dict({**fitted.to_dict(), "method": "platt"})
    with pytest.raises(MlopsError, match="sorted"):
        estimation.calibration_from_dict({"method": "isotonic", "knots_x": [0.5, 0.1], "knots_y": [0.1, 0.2]})
    with pytest.raises(MlopsError, match="both classes"):
        estimation.fit_calibration(np.zeros(10), np.linspace(0, 1, 10))


def test_estimate_refuses_empty_or_non_finite_scores():
    with pytest.raises(MlopsError, match="finite score"):
        estimation.estimate_performance(np.array([]), identity(), 0.3, KPI)
    with pytest.raises(MlopsError, match="finite score"):
        estimation.estimate_performance(np.array([0.2, np.nan]), identity(), 0.3, KPI)


def test_window_value_multiplies_each_cell_by_its_payoff():
    value = estimation.window_value({"tp": 10, "fp": 5, "fn": 2, "tn": 83}, PAYOFF)
    assert value["total"] == 4000 - 300 - 300
    assert value["per_row"] == pytest.approx(34.0)
    assert value["value_fp"] == -300
    with pytest.raises(MlopsError, match="missing: tn"):
        estimation.window_value({"tp": 1, "fp": 1, "fn": 1}, PAYOFF)


@pytest.mark.parametrize(("value", "holdout", "dropped"), [(0.60, 0.68, True), (0.66, 0.68, False), (0.60, None, None)])
def test_estimated_drop_against_the_holdout(value, holdout, dropped):
    found, reason = estimation.estimated_drop({"roc_auc": value}, holdout, "roc_auc", 0.05)
    assert found is dropped
    assert "roc_auc" in reason


def test_estimate_history_reads_the_trigger_marks_of_earlier_windows_only():
    results = [
        {"window": "2013-05", "estimate": {"trigger": {"dropped": True, "retrain_requested": True}}},
        {"window": "2013-04", "estimate": {"trigger": {"dropped": False}}},
        {"window": "2013-06", "estimate": {"trigger": {"dropped": True}}},
        {"window": "2013-03", "estimate": {"available": False, "reason": "no map"}},
    ]
    history, last = estimation.estimate_history(results, "2013-06")
    assert history == [None, False, True]
    assert last == 2


def test_estimation_errors_are_realized_minus_estimated_on_shared_metrics():
    errors = estimation.estimation_errors({"roc_auc": 0.70, "recall": 0.5}, {"roc_auc": 0.68, "brier": 0.1})
    assert errors == pytest.approx({"roc_auc": -0.02})
