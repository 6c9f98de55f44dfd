import numpy as np
import pandas as pd
import pytest
from threadpoolctl import threadpool_limits

from tasks import training
from tasks.batch import prepare_batch, split_batch
from tasks.errors import MlopsError
from tasks.expectations import ValidationReport
from tasks.explain import normalized_weights, permutation_importances


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny fits gain nothing from OpenMP threads, and on a busy 2-core machine their spin-waits cost seconds."""
    with threadpool_limits(limits=1):
        yield


@pytest.fixture
def planted(raw_tables, usecase):
    """Real rows whose label is planted on one numeric input, and a pipeline fitted on them."""
    prepared = prepare_batch(raw_tables, usecase, "2013-01", b"k" * 32)
    curated = split_batch(prepared, ValidationReport((), len(prepared.frame)), usecase).curated
    signal = usecase.features.numeric[0]
    label = (curated[signal] > curated[signal].median()).astype("Int8")
    frame = curated.assign(**{usecase.target.name: label})
    quick = usecase.model_copy(update={"model": usecase.model.model_copy(update={"params": {"max_iter": 40}})})
    split = training.time_split(frame, quick)
    fitted = training.fit_pipeline(training.build_pipeline(quick), split, quick)
    rows = pd.concat([split.validation, split.holdout], ignore_index=True)
    return fitted, training.feature_frame(rows, usecase), rows[usecase.target.name].to_numpy(), signal


def test_the_planted_signal_ranks_first_and_every_input_is_scored(planted, usecase):
    fitted, X, y, signal = planted
    importances = permutation_importances(fitted, X, y, seed=3, n_repeats=3)
    assert next(iter(importances)) == signal
    assert importances[signal] > 0.2
    assert set(importances) == set(X.columns)  # raw inputs, time column included
    values = list(importances.values())
    assert values == sorted(values, reverse=True)


def test_importances_are_seeded_and_subsampling_is_deterministic(planted):
    fitted, X, y, _ = planted
    first = permutation_importances(fitted, X, y, seed=3, n_repeats=2, max_rows=60)
    again = permutation_importances(fitted, X, y, seed=3, n_repeats=2, max_rows=60)
    other = permutation_importances(fitted, X, y, seed=4, n_repeats=2, max_rows=60)
    assert first == again
    assert first != other


@pytest.mark.parametrize(
    ("cut", "message"),
    [(lambda X, y: (X, y[:-1]), "labels"), (lambda X, y: (X, np.zeros(len(y))), "both classes")],
    ids=["length-mismatch", "one-class"],
)
def test_importances_refuse_unusable_labels(planted, cut, message):
    fitted, X, y, _ = planted
    X_cut, y_cut = cut(X, y)
    with pytest.raises(MlopsError, match=message):
        permutation_importances(fitted, X_cut, y_cut, seed=0)


@pytest.mark.parametrize(
    ("importances", "expected"),
    [
        ({"a": 2.0, "b": -1.0, "c": 2.0}, {"a": 0.5, "b": 0.0, "c": 0.5}),
        ({"a": 0.3, "b": 0.1}, {"a": 0.75, "b": 0.25}),
        ({"a": 0.0, "b": 0.0}, {"a": 0.5, "b": 0.5}),
        ({"a": -0.1, "b": -0.2, "c": 0.0}, {"a": 1 / 3, "b": 1 / 3, "c": 1 / 3}),
        ({}, {}),
    ],
    ids=["negatives-clipped", "proportional", "all-zero", "all-negative", "empty"],
)
def test_normalized_weights(importances, expected):
    weights = normalized_weights(importances)
    assert weights == pytest.approx(expected)
    assert not weights or sum(weights.values()) == pytest.approx(1.0)
