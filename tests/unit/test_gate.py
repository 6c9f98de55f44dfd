import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import average_precision_score, roc_auc_score

from tasks import gate
from tasks.errors import MlopsError
from tasks.metrics import evaluate
from tasks.usecase import GateSpec, KpiSpec

SKLEARN = {"roc_auc": roc_auc_score, "average_precision": average_precision_score}
KPI = KpiSpec(name="top_decile", top_fraction=0.1)
# only non-inferiority decides under this gate, so the property below tests exactly that rule
BARE = GateSpec(non_inferiority_margin=0.005, min_evaluation_rows=1, bootstrap_resamples=200, seed=1)
FULL = GateSpec(
    floors={"roc_auc": 0.65, "kpi": 0.25},
    max_brier=0.22,
    non_inferiority_margin=0.005,
    max_calibration_error=0.08,
    max_model_megabytes=50,
    min_evaluation_rows=500,
)
GOOD = {"roc_auc": 0.72, "average_precision": 0.45, "kpi": 0.3, "brier": 0.15, "calibration_error": 0.02, "rows": 900}


def scored(n: int, seed: int, separation: float = 1.5) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.3).astype(int)
    return y, separation * y + rng.normal(size=n)


@pytest.mark.parametrize("metric", gate.METRICS)
def test_metric_with_counts_equals_the_metric_on_explicit_resamples(metric):
    y, score = scored(500, 0)
    score = np.round(score, 1)  # plenty of ties
    rng = np.random.default_rng(7)
    draws = rng.integers(0, 500, size=(4, 500))
    counts = np.stack([np.bincount(d, minlength=500) for d in draws])
    got = gate.metric_with_counts(metric, y, score, counts)
    expected = [SKLEARN[metric](y[d], score[d]) for d in draws]
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)


def test_metric_with_counts_is_nan_for_a_one_class_resample():
    y, score = np.array([0, 1, 1]), np.array([0.1, 0.5, 0.9])
    assert np.isnan(gate.metric_with_counts("roc_auc", y, score, np.array([[3, 0, 0]])))[0]


@pytest.mark.parametrize("metric", gate.METRICS)
def test_bootstrap_diff_is_the_full_sample_difference_and_ci_brackets_it(metric):
    y, champion = scored(2000, 1)
    challenger = champion + np.random.default_rng(2).normal(scale=1.0, size=2000)
    result = gate.paired_bootstrap(y, challenger, champion, metric, resamples=300, confidence=0.9, seed=5)
    assert result.diff == pytest.approx(SKLEARN[metric](y, challenger) - SKLEARN[metric](y, champion))
    assert result.low < result.diff < result.high < 0
    assert result.resamples == 300
    again = gate.paired_bootstrap(y, challenger, champion, metric, resamples=300, confidence=0.9, seed=5)
    assert again == result


def test_identical_models_differ_by_exactly_zero():
    y, score = scored(1000, 3)
    result = gate.paired_bootstrap(y, score, score, "roc_auc", resamples=200, confidence=0.95, seed=0)
    assert (result.diff, result.low, result.high) == (0.0, 0.0, 0.0)


def test_pairing_makes_the_interval_narrow_for_nearly_equal_models():
    # resampling the models independently would add the row noise of each (CI width ~0.05 at 2000 rows)
    y, champion = scored(2000, 4)
    challenger = champion + np.random.default_rng(5).normal(scale=0.05, size=2000)
    result = gate.paired_bootstrap(y, challenger, champion, "roc_auc", resamples=300, confidence=0.95, seed=0)
    assert result.high - result.low < 0.01


@pytest.mark.parametrize(
    ("y", "challenger", "champion", "metric", "message"),
    [
        (np.array([0, 1]), np.array([0.2, 0.8]), np.array([0.1, 0.9]), "log_loss", "not one of"),
        (np.array([1, 1]), np.array([0.2, 0.8]), np.array([0.1, 0.9]), "roc_auc", "one class"),
        (np.array([0, 1]), np.array([0.2]), np.array([0.1, 0.9]), "roc_auc", "differ"),
    ],
    ids=["unknown-metric", "one-class", "length-mismatch"],
)
def test_bootstrap_refuses_undefined_comparisons(y, challenger, champion, metric, message):
    with pytest.raises(MlopsError, match=message):
        gate.paired_bootstrap(y, challenger, champion, metric, resamples=100, confidence=0.95, seed=0)


def test_first_model_passing_every_check_is_promoted():
    decision = gate.decide(FULL, GOOD, None, None, model_megabytes=3.2)
    assert decision.promote and decision.would_promote and decision.applied
    assert all(decision.checks.values())
    assert "non_inferior" not in decision.checks
    assert decision.reasons[0] == "promoted: every check passed"
    assert "roc_auc 0.720 meets the floor 0.650" in decision.reasons
    assert any(r.startswith("no champion yet") for r in decision.reasons)


@pytest.mark.parametrize(
    ("changes", "megabytes", "check", "reason"),
    [
        ({"roc_auc": 0.612}, 1.0, "floor_roc_auc", "roc_auc 0.612 is below the floor 0.650"),
        ({"kpi": 0.2}, 1.0, "floor_kpi", "kpi 0.200 is below the floor 0.250"),
        ({"brier": 0.25}, 1.0, "max_brier", "brier 0.250 is above the maximum 0.220"),
        ({"calibration_error": 0.1}, 1.0, "max_calibration_error", "calibration_error 0.100 is above the maximum"),
        ({}, 61.5, "max_model_megabytes", "model size 61.500 MB is above the maximum 50.000 MB"),
        ({"rows": 420}, 1.0, "min_evaluation_rows", "evaluated on 420 rows, fewer than the minimum 500"),
        ({"roc_auc": float("nan")}, 1.0, "floor_roc_auc", "roc_auc nan is below the floor"),
    ],
)
def test_each_failing_check_rejects_with_a_sentence(changes, megabytes, check, reason):
    decision = gate.decide(FULL, {**GOOD, **changes}, None, None, model_megabytes=megabytes)
    assert not decision.promote
    assert [name for name, ok in decision.checks.items() if not ok] == [check]
    assert decision.reasons[0] == f"rejected: 1 of {len(decision.checks)} checks failed"
    assert any(r.startswith(reason) for r in decision.reasons)


@pytest.mark.parametrize(
    ("low", "promote"),
    [(-0.004, True), (-0.005, True), (-0.0051, False), (0.01, True)],
)
def test_non_inferiority_is_the_lower_bound_against_the_margin(low, promote):
    bootstrap = gate.BootstrapResult(diff=low + 0.01, low=low, high=low + 0.02, resamples=1000)
    decision = gate.decide(FULL, GOOD, dict(GOOD), bootstrap, model_megabytes=1.0)
    assert decision.promote is promote
    assert decision.checks["non_inferior"] is promote
    sentence = next(r for r in decision.reasons if r.startswith("roc_auc challenger - champion"))
    assert f"CI {low:+.4f}" in sentence and "-margin -0.0050" in sentence


def test_dry_run_reports_what_enforce_would_do_but_applies_nothing():
    failing = {**GOOD, "roc_auc": 0.6}
    for metrics, expected in ((GOOD, True), (failing, False)):
        decision = gate.decide(FULL.model_copy(update={"mode": "dry_run"}), metrics, None, None, 1.0)
        assert (decision.promote, decision.would_promote, decision.applied) == (expected, expected, False)
        assert decision.reasons[0].startswith("dry run, nothing moves: enforce would")


def test_disabled_gate_promotes_and_still_says_what_enforce_would_do():
    decision = gate.decide(FULL.model_copy(update={"mode": "disabled"}), {**GOOD, "roc_auc": 0.6}, None, None, 1.0)
    assert (decision.promote, decision.would_promote, decision.applied) == (True, False, True)
    assert decision.reasons[0].startswith("gate disabled")
    assert decision.checks["floor_roc_auc"] is False


@pytest.mark.parametrize(
    ("metrics", "champion", "bootstrap", "message"),
    [
        (GOOD, dict(GOOD), None, "both champion metrics and a paired bootstrap"),
        (GOOD, None, gate.BootstrapResult(0.0, -0.01, 0.01, 100), "both champion metrics and a paired bootstrap"),
        ({k: v for k, v in GOOD.items() if k != "kpi"}, None, None, "lack 'kpi'"),
    ],
    ids=["champion-without-bootstrap", "bootstrap-without-champion", "missing-metric"],
)
def test_decide_refuses_incomplete_inputs(metrics, champion, bootstrap, message):
    with pytest.raises(MlopsError, match=message):
        gate.decide(FULL, metrics, champion, bootstrap, model_megabytes=1.0)


def test_decision_to_dict_is_json_safe_and_complete():
    bootstrap = gate.BootstrapResult(diff=np.float64(0.01), low=-0.002, high=0.02, resamples=1000)
    metrics = {k: np.float64(v) for k, v in GOOD.items()}
    decision = gate.decide(FULL, metrics, dict(GOOD), bootstrap, model_megabytes=1.0)
    data = json.loads(json.dumps(decision.to_dict()))
    assert data["promote"] is True and data["applied"] is True and data["mode"] == "enforce"
    assert data["bootstrap"] == {"diff": 0.01, "low": -0.002, "high": 0.02, "resamples": 1000}
    assert data["checks"]["non_inferior"] is True
    assert data["reasons"] == list(decision.reasons)


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    rows=st.integers(1500, 3000),
    separation=st.floats(1.2, 2.5),
    noise=st.floats(2.0, 5.0),
)
def test_a_clearly_degraded_challenger_is_never_promoted(seed, rows, separation, noise):
    # champion AUC = Phi(s / sqrt 2) >= 0.80; challenger adds noise: AUC <= Phi(s / sqrt(2 + 4)) ~ 0.69 or less
    y, champion_score = scored(rows, seed, separation)
    challenger_score = champion_score + np.random.default_rng(seed + 1).normal(scale=noise, size=rows)
    champion, challenger = (1 / (1 + np.exp(-s)) for s in (champion_score, challenger_score))
    bootstrap = gate.paired_bootstrap(
        y, challenger, champion, BARE.metric, BARE.bootstrap_resamples, BARE.confidence, BARE.seed
    )
    decision = gate.decide(BARE, evaluate(y, challenger, 0.5, KPI), evaluate(y, champion, 0.5, KPI), bootstrap, 1.0)
    assert bootstrap.diff < -BARE.non_inferiority_margin
    assert not decision.promote
    assert decision.checks == {"min_evaluation_rows": True, "non_inferior": False}


@pytest.mark.parametrize(
    ("mode", "promote", "applied"), [("enforce", False, True), ("dry_run", False, False), ("disabled", True, True)]
)
def test_reject_for_data_names_the_shortfall(mode, promote, applied):
    from tasks.gate import reject_for_data
    from tasks.usecase import GateSpec

    decision = reject_for_data(GateSpec(mode=mode, non_inferiority_margin=0.01, min_evaluation_rows=500), 120)
    assert (decision.promote, decision.applied) == (promote, applied)
    assert "only 120 labelled rows" in decision.reasons[1] and "500" in decision.reasons[1]
    assert decision.to_dict()["checks"] == {"evaluation_rows": False}
