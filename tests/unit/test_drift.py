"""Drift statistics against hand-computed values, window counting, verdicts, weighting and debounce."""

import json
import math

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError
from scipy.spatial.distance import jensenshannon
from scipy.stats import chi2_contingency

from tasks import drift
from tasks.contract import CategoricalSketch, NumericSketch, ReferenceSketch, numeric_sketch
from tasks.drift_stats import chi_square_two_sample, jensen_shannon, l_infinity, psi
from tasks.errors import MlopsError
from tasks.usecase import DriftSpec

LN3 = math.log(3.0)

# ---- statistics, by hand


def test_psi_textbook_value():
    # p = (.5, .5), q = (.25, .75): -.25 ln(.5/.5 * .5) ... = .25 (ln 1.5 - ln .5) = .25 ln 3
    assert psi([50, 50], [25, 75], pseudo_count=0) == pytest.approx(0.25 * LN3)


def test_psi_smooths_a_cell_empty_on_one_side():
    assert psi([1, 0], [0, 1], pseudo_count=0) == math.inf
    # +0.5 in both cells on both sides: p = (.75, .25), q = (.25, .75) -> .5 ln 3 + .5 ln 3
    assert psi([1, 0], [0, 1], pseudo_count=0.5) == pytest.approx(LN3)


def test_psi_ignores_cells_empty_on_both_sides():
    assert psi([50, 50, 0], [25, 75, 0]) == pytest.approx(psi([50, 50], [25, 75]))
    assert psi([700, 300], [7000, 3000], pseudo_count=0) == 0.0
    # equal shares, but +0.5 weighs more in 10 rows than in 100: p = (7.5, 3.5) / 11, q = (70.5, 30.5) / 101
    p, q = np.array([7.5, 3.5]) / 11, np.array([70.5, 30.5]) / 101
    assert psi([7, 3], [70, 30]) == pytest.approx(float(((q - p) * np.log(q / p)).sum()))


def test_jensen_shannon_distance_by_hand():
    assert jensen_shannon([1, 0], [0, 1]) == pytest.approx(1.0)
    assert jensen_shannon([5, 5], [5, 5]) == 0.0
    # p = (.5, .5), q = (1, 0), m = (.75, .25): KL(p|m) = .5 log2(2/3) + .5 log2 2, KL(q|m) = log2(4/3)
    kl_p = 0.5 * math.log2(2 / 3) + 0.5
    kl_q = math.log2(4 / 3)
    assert jensen_shannon([1, 1], [1, 0]) == pytest.approx(math.sqrt((kl_p + kl_q) / 2))
    assert jensen_shannon([1, 1], [1, 0]) == pytest.approx(jensenshannon([0.5, 0.5], [1, 0], base=2))


def test_l_infinity_is_the_largest_share_change():
    assert l_infinity([30, 70], [50, 50]) == pytest.approx(0.2)
    assert l_infinity([30, 70, 0], [45, 45, 10]) == pytest.approx(0.25)


def test_two_sample_chi_square_by_hand_and_against_the_contingency_table():
    # table [[10, 20], [20, 10]]: expected 15 everywhere, 4 * 25 / 15
    statistic, p_value = chi_square_two_sample([10, 20], [20, 10])
    assert statistic == pytest.approx(20 / 3)
    assert p_value == pytest.approx(0.009823, abs=1e-6)
    ref, cur = [100, 200, 300, 0], [10, 30, 20, 0]
    expected = chi2_contingency(np.array([ref[:3], cur[:3]]), correction=False)
    assert chi_square_two_sample(ref, cur) == pytest.approx((expected.statistic, expected.pvalue))


def test_two_sample_chi_square_treats_the_reference_as_a_sample():
    # equal sizes: sum((R - S)^2 / (R + S)) = 25/25 + 25/35; taking (15, 15) as exact expected counts would
    # give 25/15 + 25/15, twice as sure of a difference that two samples of 30 barely show
    statistic, p_value = chi_square_two_sample([15, 15], [10, 20])
    assert statistic == pytest.approx(1 + 25 / 35)
    assert statistic < 2 * 25 / 15
    assert p_value > 0.05


@pytest.mark.parametrize(
    ("ref", "cur"), [([0, 0], [1, 2]), ([3, 4], [0, 0]), ([5, 0], [7, 0])], ids=["empty ref", "empty cur", "1 cell"]
)
def test_two_sample_chi_square_without_evidence_is_nan(ref, cur):
    assert all(math.isnan(v) for v in chi_square_two_sample(ref, cur))


def test_statistics_are_vectorized_over_draws():
    ref = np.array([40, 30, 20, 10])
    draws = np.array([[10, 20, 30, 40], [40, 30, 20, 10], [0, 0, 50, 50]])
    for statistic in (psi, jensen_shannon, l_infinity):
        assert np.allclose(statistic(ref, draws), [statistic(ref, row) for row in draws])


# ---- counting a window on the sketch's cells


def sketch_of(**columns) -> ReferenceSketch:
    numeric = {k: v for k, v in columns.items() if isinstance(v, NumericSketch)}
    categorical = {k: v for k, v in columns.items() if isinstance(v, CategoricalSketch)}
    prediction = columns.get(drift.PREDICTION)
    numeric.pop(drift.PREDICTION, None)
    rows = max(s.n for s in columns.values()) if columns else 0
    return ReferenceSketch(numeric, categorical, prediction, rows)


def test_numeric_values_fall_in_the_sketch_bins_like_at_training():
    sketch = sketch_of(x=NumericSketch((0.0, 1.0, 2.0, 3.0), (3, 1, 2), 0.0, 0.0, 3.0, 6))
    frame = pd.DataFrame({"x": [-5.0, 0.5, 1.0, 1.5, 2.5, 99.0, np.nan]})
    counts = drift.current_profile(frame, sketch).numeric["x"]
    # 1.0 lies on an inner edge: lower bin; beyond the edges: end bins; NaN: nulls
    assert counts == drift.ColumnCounts((3, 1, 2), nulls=1, unseen=0)


def test_nullable_integers_count_like_floats():
    sketch = sketch_of(x=NumericSketch((0.0, 10.0, 20.0), (1, 1), 0.0, 0.0, 20.0, 2))
    frame = pd.DataFrame({"x": pd.array([5, 15, None, 25], dtype="Int64")})
    assert drift.current_profile(frame, sketch).numeric["x"] == drift.ColumnCounts((1, 2), 1, 0)


def test_categories_unseen_in_the_reference_are_pooled_and_named():
    sketch = sketch_of(c=CategoricalSketch({"a": 5, "b": 5}, 0.0, 10))
    frame = pd.DataFrame({"c": pd.Series(["a", "a", "d", "c", "d", None], dtype="str")})
    counts = drift.current_profile(frame, sketch).categorical["c"]
    assert counts == drift.ColumnCounts((2, 0), nulls=1, unseen=3, unseen_values={"c": 1, "d": 2})


def test_a_window_in_chunks_counts_like_the_whole_window():
    rng = np.random.default_rng(0)
    values = rng.normal(size=1000)
    sketch = sketch_of(
        x=numeric_sketch(values, 10),
        c=CategoricalSketch({"a": 50, "b": 50}, 0.0, 100),
        prediction=numeric_sketch(rng.uniform(size=1000), 5),
    )
    frame = pd.DataFrame(
        {
            "x": np.where(rng.uniform(size=1000) < 0.1, np.nan, values + 0.3),
            "c": rng.choice(["a", "b", "z"], size=1000),
            "score": rng.uniform(size=1000),
        }
    )
    whole = drift.current_profile(frame, sketch, score_column="score")
    chunks = drift.current_profile((frame.iloc[i : i + 300] for i in range(0, 1000, 300)), sketch, "score")
    assert chunks == whole
    assert whole.rows == 1000
    assert whole.prediction is not None
    assert sum(whole.numeric["x"].cells) + whole.numeric["x"].nulls == 1000


def test_an_empty_stream_is_a_window_of_no_rows():
    sketch = sketch_of(x=NumericSketch((0.0, 1.0, 2.0), (1, 1), 0.0, 0.0, 2.0, 2))
    profile = drift.current_profile(iter(()), sketch)
    assert profile.rows == 0
    assert profile.numeric["x"] == drift.ColumnCounts((0, 0), 0, 0)


def test_a_missing_column_is_named():
    sketch = sketch_of(x=NumericSketch((0.0, 1.0), (1,), 0.0, 0.0, 1.0, 1))
    with pytest.raises(MlopsError, match=r"lacks column.*x"):
        drift.current_profile(pd.DataFrame({"y": [1.0]}), sketch)


def test_values_of_a_column_the_reference_never_saw_filled_are_unseen():
    sketch = sketch_of(x=NumericSketch((), (), 1.0, None, None, 0), y=NumericSketch((0.0, 1.0), (4,), 0.0, 0.0, 1.0, 4))
    frame = pd.DataFrame({"x": [1.0, np.nan, 3.0], "y": [0.1, 0.2, 0.3]})
    assert drift.current_profile(frame, sketch).numeric["x"] == drift.ColumnCounts((), 1, 2)


def test_cell_table_labels_the_cells_of_both_sides_for_histograms():
    sketch = sketch_of(
        x=NumericSketch((0.0, 1.0, 2.5, 3.0), (3, 1, 2), 0.25, 0.0, 3.0, 6),
        c=CategoricalSketch({"a": 6, "b": 2}, 0.0, 8),
    )
    frame = pd.DataFrame({"x": [0.5, 2.0, 9.0, np.nan], "c": pd.Series(["a", "z", "z", "b"], dtype="str")})
    profile = drift.current_profile(frame, sketch)
    assert drift.cell_table(profile, sketch, "x") == (
        ("null", "<= 1", "(1, 2.5]", "> 2.5", "unseen"),
        (2, 3, 1, 2, 0),  # 2 nulls: a null rate of 0.25 beside 6 values
        (1, 1, 1, 1, 0),
    )
    assert drift.cell_table(profile, sketch, "c") == (("null", "a", "b", "unseen"), (0, 6, 2, 0), (0, 1, 1, 2))
    with pytest.raises(MlopsError, match="no drift counts"):
        drift.cell_table(profile, sketch, drift.PREDICTION)


# ---- verdicts


NO_FLOOR = DriftSpec(min_effect={}, min_rows=100)


def uniform_sketch(bins: int = 10, n: int = 10_000) -> NumericSketch:
    return NumericSketch(tuple(float(e) for e in range(bins + 1)), (n // bins,) * bins, 0.0, 0.0, float(bins), n)


def profile_of(rows: int, **counts: drift.ColumnCounts) -> drift.CurrentProfile:
    numeric = {k: v for k, v in counts.items() if k.startswith("x")}
    categorical = {k: v for k, v in counts.items() if k.startswith("c")}
    return drift.CurrentProfile(rows, numeric, categorical, counts.get(drift.PREDICTION))


def test_a_window_below_min_rows_has_no_decision():
    sketch = sketch_of(x1=uniform_sketch())
    profile = profile_of(99, x1=drift.ColumnCounts((99,) + (0,) * 9, 0, 0))
    window = drift.check_drift(profile, sketch, NO_FLOOR, {})
    assert window.drifted is None
    assert window.features[0].drifted is None
    assert window.features[0].threshold is None
    assert window.features[0].value > 1.0  # the statistic is still reported
    assert "insufficient data" in window.reason


def test_a_shifted_numeric_input_drifts_and_an_unshifted_one_does_not():
    sketch = sketch_of(x1=uniform_sketch(), x2=uniform_sketch())
    profile = profile_of(
        1000,
        x1=drift.ColumnCounts((100,) * 10, 0, 0),
        x2=drift.ColumnCounts((0,) * 5 + (200,) * 5, 0, 0),
    )
    window = drift.check_drift(profile, sketch, NO_FLOOR, {})
    verdicts = {r.feature: r.drifted for r in window.features}
    assert verdicts == {"x1": False, "x2": True}
    assert window.score == pytest.approx(0.5)
    assert window.drifted is True


def test_a_null_rate_jump_is_drift():
    sketch = sketch_of(x1=uniform_sketch())
    profile = profile_of(1000, x1=drift.ColumnCounts((50,) * 10, 500, 0))
    [result] = drift.check_drift(profile, sketch, DriftSpec(), {}).features
    assert result.null_rate == 0.5
    assert result.reference_null_rate == 0.0
    assert result.drifted is True


def test_unseen_categories_are_counted_and_drift():
    sketch = sketch_of(c1=CategoricalSketch({"a": 5000, "b": 5000}, 0.0, 10_000))
    profile = profile_of(1000, c1=drift.ColumnCounts((400, 400), 0, 200, {"new": 150, "other": 50}))
    [result] = drift.check_drift(profile, sketch, DriftSpec(), {}).features
    assert result.statistic == "l_infinity"
    assert result.unseen_share == pytest.approx(0.2)
    assert result.value == pytest.approx(0.2)  # the pooled unseen cell went from 0 % to 20 %
    assert result.unseen_examples == ("new", "other")
    assert result.drifted is True


def test_thresholds_come_from_the_override_then_the_floor_then_calibration():
    sketch = sketch_of(x1=uniform_sketch(), x2=uniform_sketch(), x3=uniform_sketch())
    counts = drift.ColumnCounts((100,) * 10, 0, 0)
    profile = profile_of(1000, x1=counts, x2=counts, x3=counts)
    spec = DriftSpec(thresholds={"x1": 0.5}, min_effect={"psi": 0.2}, min_rows=100)
    calibrated = {"x2": 0.01, "x3": 0.3}
    results = {r.feature: r for r in drift.compare(profile, sketch, spec, calibrated)}
    assert (results["x1"].threshold, results["x1"].threshold_source) == (0.5, "override")
    assert (results["x2"].threshold, results["x2"].threshold_source) == (0.2, "min_effect")
    assert (results["x3"].threshold, results["x3"].threshold_source) == (0.3, "calibrated")


def test_an_override_for_an_unknown_column_is_an_error():
    sketch = sketch_of(x1=uniform_sketch())
    profile = profile_of(1000, x1=drift.ColumnCounts((100,) * 10, 0, 0))
    with pytest.raises(MlopsError, match=r"unknown column.*ghost"):
        drift.compare(profile, sketch, DriftSpec(thresholds={"ghost": 0.1}), {})


def test_drift_of_the_scores_alone_makes_the_window_drifted_when_configured():
    sketch = sketch_of(x1=uniform_sketch(), prediction=uniform_sketch())
    profile = profile_of(
        1000, x1=drift.ColumnCounts((100,) * 10, 0, 0), prediction=drift.ColumnCounts((500, 500) + (0,) * 8, 0, 0)
    )
    window = drift.check_drift(profile, sketch, DriftSpec(), {})
    assert window.prediction.drifted is True
    assert window.score == 0.0
    assert window.drifted is True
    assert "scores drifted" in window.reason
    assert drift.check_drift(profile, sketch, DriftSpec(prediction_triggers=False), {}).drifted is False


def test_the_report_payload_is_json_safe():
    sketch = sketch_of(x1=uniform_sketch(), c1=CategoricalSketch({"a": 10}, 0.0, 10))
    profile = profile_of(600, x1=drift.ColumnCounts((60,) * 10, 0, 0), c1=drift.ColumnCounts((600,), 0, 0))
    payload = drift.check_drift(profile, sketch, DriftSpec(), {}).to_dict()
    text = json.dumps(payload, allow_nan=False)  # the chi-square of a one-category column is NaN -> null
    feature = json.loads(text)["features"][0]
    assert set(feature) >= {"feature", "kind", "statistic", "value", "threshold", "drifted", "p_value", "rows"}
    assert set(feature) >= {"unseen_share", "weight"}
    assert json.loads(text)["features"][1]["p_value"] is None


# ---- importance weighting


def test_weights_follow_importance_of_the_monitored_inputs_only():
    importances = {"x1": 0.3, "x2": 0.1, "time": 0.6, "x3": -0.02}
    assert drift.feature_weights(importances, ["x1", "x2", "x3"]) == pytest.approx({"x1": 0.75, "x2": 0.25, "x3": 0})


@pytest.mark.parametrize(
    ("importances", "expected"),
    [({}, {"x1": 0.5, "x2": 0.5}), ({"x1": -0.1, "time": 0.5}, {"x1": 0.0, "x2": 0.0})],
    ids=["none logged: equal", "no monitored input matters: zero"],
)
def test_weights_without_usable_importances(importances, expected):
    assert drift.feature_weights(importances, ["x1", "x2"]) == expected


def test_drift_in_an_unused_input_does_not_make_the_window_drifted():
    sketch = sketch_of(x1=uniform_sketch(), x2=uniform_sketch())
    stable, shifted = drift.ColumnCounts((100,) * 10, 0, 0), drift.ColumnCounts((0,) * 5 + (200,) * 5, 0, 0)
    importances = {"x1": 0.2, "x2": 0.0}
    unused_drifts = drift.check_drift(profile_of(1000, x1=stable, x2=shifted), sketch, DriftSpec(), importances)
    used_drifts = drift.check_drift(profile_of(1000, x1=shifted, x2=stable), sketch, DriftSpec(), importances)
    assert [r.drifted for r in unused_drifts.features] == [False, True]
    assert (unused_drifts.score, unused_drifts.drifted) == (0.0, False)
    assert (used_drifts.score, used_drifts.drifted) == (1.0, True)
    assert {r.feature: r.weight for r in used_drifts.features} == {"x1": 1.0, "x2": 0.0}


def test_drift_score_is_the_drifted_weight_share_among_decided_inputs():
    def result(name, drifted):
        return drift.FeatureDrift(name, "numeric", "psi", 0.0, 0.1, drifted, None, 1, 0.0, 0.0, 0.0)

    results = [result("a", True), result("b", False), result("c", True)]
    assert drift.drift_score(results, {"a": 0.5, "b": 0.3, "c": 0.2}) == pytest.approx(0.7)
    assert drift.drift_score([result("a", None)], {"a": 1.0}) is None


# ---- debounce

T, F, N = True, False, None


@pytest.mark.parametrize(
    ("history", "k", "n", "last", "cooldown", "retrain"),
    [
        ([], 2, 3, None, 0, False),
        ([T], 1, 1, None, 0, True),
        ([T], 2, 3, None, 0, False),
        ([T, F, T], 2, 3, None, 0, True),
        ([T, T, F], 2, 3, None, 0, False),  # the latest window did not drift
        ([T, T, N], 2, 3, None, 0, False),  # the latest window could not be judged
        ([T, N, T], 2, 3, None, 0, True),
        ([T, F, F, T], 2, 3, None, 0, False),  # the older drift is out of the last 3
        ([T, T, T, T], 2, 3, 1, 2, False),  # window 3 is 2 windows after the retrain: cooling down
        ([T, T, T, T, T], 2, 3, 1, 2, True),
        ([T, T, F, T], 2, 3, 1, 0, False),  # windows up to the retrain do not count again
        ([T, T], 1, 1, 1, 0, False),  # the window that requested a retrain never requests another
    ],
)
def test_debounce_table(history, k, n, last, cooldown, retrain):
    decision = drift.should_retrain(history, k, n, last_retrain_at_index=last, cooldown_windows=cooldown)
    assert decision.retrain is retrain
    assert decision.reason


@pytest.mark.parametrize(("k", "n", "last"), [(3, 2, None), (0, 2, None), (1, 2, 5)])
def test_debounce_rejects_impossible_settings(k, n, last):
    with pytest.raises(MlopsError):
        drift.should_retrain([T, T], k, n, last_retrain_at_index=last)


# ---- config


def test_the_use_case_has_a_usable_drift_section(usecase):
    spec = usecase.drift
    assert spec.debounce.k <= spec.debounce.n
    assert set(spec.thresholds) <= {*usecase.features.numeric, *usecase.features.categorical, drift.PREDICTION}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"debounce": {"k": 4, "n": 3}}, "larger than"),
        ({"thresholds": {"x": -0.1}}, "negative"),
        ({"min_effect": {"psi": -1}}, "negative"),
        ({"false_alarm_rate": 0.0}, "greater than"),
        ({"numeric_statistic": "l_infinity"}, "psi"),
    ],
)
def test_impossible_drift_settings_are_rejected(change, message):
    with pytest.raises(ValidationError, match=message):
        DriftSpec.model_validate(change)
