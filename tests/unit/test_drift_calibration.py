"""Calibrated thresholds: they follow the window size, and on no-drift windows they alarm at about their rate.

No-drift windows are drawn from the reference frequencies themselves (multinomial counts), so every alarm
here is a false alarm. Seeds are fixed and Hypothesis is derandomized: these tests give the same answer on
every run.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tasks import drift
from tasks.contract import CategoricalSketch, NumericSketch, ReferenceSketch, bin_index
from tasks.drift_stats import _bin_counts
from tasks.errors import MlopsError
from tasks.usecase import DriftSpec

WINDOWS = 200
SLACK = 0.05
DETERMINISTIC = settings(max_examples=10, deadline=None, derandomize=True)


def make_sketch(numeric_counts, categorical_counts, null_rate=0.0) -> ReferenceSketch:
    """One numeric input per count tuple (bins 0..k) and one categorical input per count tuple."""
    numeric = {}
    for i, counts in enumerate(numeric_counts):
        n = sum(counts)
        edges = tuple(float(e) for e in range(len(counts) + 1))
        numeric[f"x{i}"] = NumericSketch(edges, tuple(counts), null_rate, 0.0, float(len(counts)), n)
    categorical = {
        f"c{i}": CategoricalSketch({f"v{j}": c for j, c in enumerate(counts)}, 0.0, sum(counts))
        for i, counts in enumerate(categorical_counts)
    }
    rows = max(s.n for s in (*numeric.values(), *categorical.values()))
    rows = round(rows / (1 - null_rate))
    return ReferenceSketch(numeric, categorical, None, rows)


def no_drift_profiles(sketch: ReferenceSketch, rows: int, windows: int, seed: int) -> list[drift.CurrentProfile]:
    """Windows of ``rows`` rows drawn from the reference frequencies (nulls included)."""
    rng = np.random.default_rng(seed)

    def draws(counts: tuple[int, ...], n: int, null_rate: float) -> np.ndarray:
        nulls = round(n * null_rate / (1 - null_rate))
        cells = np.array([nulls, *counts], dtype="float64")
        return rng.multinomial(rows, cells / cells.sum(), size=windows)

    numeric = {k: draws(s.counts, s.n, s.null_rate) for k, s in sketch.numeric.items()}
    categorical = {k: draws(tuple(s.frequencies.values()), s.n, s.null_rate) for k, s in sketch.categorical.items()}

    def counts(row: np.ndarray) -> drift.ColumnCounts:
        return drift.ColumnCounts(tuple(int(c) for c in row[1:]), int(row[0]), 0)

    return [
        drift.CurrentProfile(
            rows,
            {k: counts(v[w]) for k, v in numeric.items()},
            {k: counts(v[w]) for k, v in categorical.items()},
            None,
        )
        for w in range(windows)
    ]


def false_alarm_share(sketch, rows, spec, seed) -> float:
    quantile = 1 - spec.false_alarm_rate
    calibrated = drift.calibrate(sketch, rows, spec.resamples, spec.seed, quantile, spec=spec)
    flagged = [
        r.drifted
        for profile in no_drift_profiles(sketch, rows, WINDOWS, seed)
        for r in drift.compare(profile, sketch, spec, calibrated)
    ]
    assert None not in flagged
    return sum(flagged) / len(flagged)


# ---- examples


REFERENCE = make_sketch([(900, 800, 700, 600, 500, 400, 300, 200, 100, 50)], [(5000, 3000, 1500, 400, 90, 10)])


def test_smaller_windows_get_higher_thresholds():
    small = drift.calibrate(REFERENCE, 500, 1000, 0, 0.99)
    large = drift.calibrate(REFERENCE, 50_000, 1000, 0, 0.99)
    assert set(small) == set(large) == {"x0", "c0"}
    assert all(small[name] > 2 * large[name] > 0 for name in small)


def test_calibration_is_seeded_per_column():
    first = drift.calibrate(REFERENCE, 1000, 500, 7, 0.95)
    assert drift.calibrate(REFERENCE, 1000, 500, 7, 0.95) == first
    assert drift.calibrate(REFERENCE, 1000, 500, 8, 0.95) != first
    wider = make_sketch([(900, 800, 700, 600, 500, 400, 300, 200, 100, 50), (5, 5)], [(5000, 3000, 1500, 400, 90, 10)])
    assert {k: v for k, v in drift.calibrate(wider, 1000, 500, 7, 0.95).items() if k != "x1"} == first


def test_calibration_follows_the_configured_statistic_and_skips_overrides():
    spec = DriftSpec(categorical_statistic="jensen_shannon", thresholds={"x0": 0.4})
    calibrated = drift.calibrate(REFERENCE, 1000, 500, 0, 0.99, spec=spec)
    assert set(calibrated) == {"c0"}
    assert calibrated["c0"] != drift.calibrate(REFERENCE, 1000, 500, 0, 0.99)["c0"]


@pytest.mark.parametrize(("rows", "quantile"), [(0, 0.99), (100, 1.0), (100, 0.0)])
def test_calibration_rejects_impossible_requests(rows, quantile):
    with pytest.raises(MlopsError):
        drift.calibrate(REFERENCE, rows, 100, 0, quantile)


def test_a_single_filled_cell_has_no_noise():
    sketch = make_sketch([(100,)], [(50,)])
    assert drift.calibrate(sketch, 1000, 100, 0, 0.99) == {"x0": 0.0, "c0": 0.0}


def test_the_floor_keeps_large_windows_from_alarming_on_noise():
    spec = DriftSpec(min_rows=100)
    assert false_alarm_share(REFERENCE, 100_000, spec, seed=3) == 0.0
    assert false_alarm_share(REFERENCE, 100_000, spec.model_copy(update={"min_effect": {}}), seed=3) <= 0.01 + SLACK


# ---- properties


counts_strategy = st.lists(st.integers(min_value=1, max_value=5000), min_size=2, max_size=12)


@DETERMINISTIC
@given(
    numeric=st.lists(counts_strategy, min_size=1, max_size=3),
    categorical=st.lists(counts_strategy, min_size=1, max_size=2),
    null_rate=st.sampled_from([0.0, 0.05, 0.5]),
    rows=st.integers(min_value=100, max_value=20_000),
    false_alarm_rate=st.sampled_from([0.01, 0.05, 0.1]),
    numeric_statistic=st.sampled_from(["psi", "jensen_shannon"]),
    categorical_statistic=st.sampled_from(["l_infinity", "psi", "jensen_shannon"]),
    seed=st.integers(min_value=0, max_value=2**16),
)
def test_identical_distributions_alarm_at_most_at_the_calibrated_rate(
    numeric, categorical, null_rate, rows, false_alarm_rate, numeric_statistic, categorical_statistic, seed
):
    sketch = make_sketch(numeric, categorical, null_rate)
    spec = DriftSpec(
        numeric_statistic=numeric_statistic,
        categorical_statistic=categorical_statistic,
        false_alarm_rate=false_alarm_rate,
        min_effect={},  # the calibration alone decides: no floor to hide false alarms behind
        min_rows=1,
        resamples=500,
        seed=seed,
    )
    assert false_alarm_share(sketch, rows, spec, seed + 1) <= false_alarm_rate + SLACK


@DETERMINISTIC
@given(seed=st.integers(min_value=0, max_value=2**16), rows=st.integers(min_value=500, max_value=20_000))
def test_no_drift_never_retrains_through_the_debounce(seed, rows):
    sketch = make_sketch([(400, 300, 200, 100)] * 3, [(50, 30, 20)] * 2)
    spec = DriftSpec(min_effect={}, false_alarm_rate=0.01, resamples=500, seed=seed, drift_share=0.3)
    calibrated = drift.calibrate(sketch, rows, spec.resamples, spec.seed, 0.99, spec=spec)
    weights = drift.feature_weights({}, [*sketch.numeric, *sketch.categorical])
    history: list[bool | None] = []
    for profile in no_drift_profiles(sketch, rows, WINDOWS, seed + 1):
        window = drift.decide(drift.compare(profile, sketch, spec, calibrated), rows, weights, spec)
        history.append(window.drifted)
        decision = drift.should_retrain(history, k=2, n=3, cooldown_windows=2)
        assert not decision.retrain, decision.reason
    assert None not in history


@settings(max_examples=50, deadline=None, derandomize=True)
@given(
    history=st.lists(st.sampled_from([True, False, None]), max_size=30),
    k=st.integers(min_value=2, max_value=4),
    extra=st.integers(min_value=0, max_value=3),
)
def test_alarms_further_apart_than_n_never_retrain_when_k_is_two_or_more(history, k, extra):
    n = k + extra
    spaced: list[bool | None] = []
    since_alarm = n
    for value in history:  # keep an alarm only if the previous one is n or more windows back
        keep = value is not True or since_alarm >= n
        spaced.append(value if keep else False)
        since_alarm = 0 if value is True and keep else since_alarm + 1
    assert not any(drift.should_retrain(spaced[: i + 1], k, n).retrain for i in range(len(spaced)))


@settings(max_examples=50, deadline=None, derandomize=True)
@given(
    edges=st.lists(st.floats(-1e6, 1e6), min_size=2, max_size=80, unique=True),
    values=st.lists(st.one_of(st.floats(-2e6, 2e6), st.just(float("nan"))), max_size=200),
)
def test_branch_free_binning_counts_like_bin_index(edges, values):
    edges = tuple(sorted(edges))
    data = np.array(values, dtype="float64")
    present = data[~np.isnan(data)]
    expected = np.bincount(bin_index(edges, present), minlength=len(edges) - 1)
    assert _bin_counts(edges, data, int(np.isnan(data).sum())).tolist() == expected.tolist()
