import pickle

import numpy as np
import pandas as pd
import pytest
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted
from threadpoolctl import threadpool_limits

from tasks import training
from tasks.batch import prepare_batch, split_batch
from tasks.errors import MlopsError
from tasks.expectations import ValidationReport
from tasks.features import TimeParts

ESTIMATORS = ("hist_gradient_boosting", "logistic_regression", "random_forest")


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny fits gain nothing from OpenMP threads, and on a busy 2-core machine their spin-waits cost seconds."""
    with threadpool_limits(limits=1):
        yield


@pytest.fixture
def curated(raw_tables, usecase) -> pd.DataFrame:
    """400 real rows of January 2013 as a curated snapshot holds them."""
    prepared = prepare_batch(raw_tables, usecase, "2013-01", b"k" * 32)
    return split_batch(prepared, ValidationReport((), len(prepared.frame)), usecase).curated


@pytest.fixture
def small(usecase):
    """The use case with a training-size floor a 400-row fixture meets."""
    return usecase.model_copy(update={"model": usecase.model.model_copy(update={"min_training_rows": 100})})


def with_model(usecase, **changes):
    return usecase.model_copy(update={"model": usecase.model.model_copy(update=changes)})


def test_labelled_rows_drops_unknown_outcomes_and_casts_the_label(curated, usecase):
    label = usecase.target.name
    rows = training.labelled_rows(curated, usecase)
    assert len(rows) == curated[label].notna().sum() < len(curated)
    assert rows[label].dtype == "int64"
    assert set(rows[label]) == {0, 1}
    assert curated[label].dtype == "Int8"  # input untouched


def test_labelled_rows_of_an_all_unknown_frame_is_empty(curated, usecase):
    unknown = curated.assign(**{usecase.target.name: pd.array([pd.NA] * len(curated), dtype="Int8")})
    assert training.labelled_rows(unknown, usecase).empty


def test_time_split_parts_are_ordered_disjoint_and_sized(curated, usecase):
    time = usecase.time_column
    split = training.time_split(curated, usecase)
    parts = (split.train, split.validation, split.holdout)
    assert split.train[time].max() < split.validation[time].min()
    assert split.validation[time].max() < split.holdout[time].min()
    assert split.train_end < split.validation_end < split.holdout_start <= split.holdout_end
    stamps = [set(p[time]) for p in parts]
    assert not (stamps[0] & stamps[1]) and not (stamps[1] & stamps[2])
    labelled = len(training.labelled_rows(curated, usecase))
    assert sum(len(p) for p in parts) == labelled
    assert len(split.holdout) == pytest.approx(labelled * usecase.split.holdout_fraction, abs=10)
    assert len(split.validation) == pytest.approx(labelled * usecase.split.validation_fraction, abs=10)
    assert split.boundaries()["holdout_start"] == split.holdout_start.isoformat()


def test_time_split_sends_ties_at_a_cut_to_the_later_part(usecase):
    time, label = usecase.time_column, usecase.target.name
    stamps = pd.to_datetime(["2013-01-01"] * 6 + ["2013-01-02"] * 2 + ["2013-01-03"] * 2).astype("datetime64[us]")
    frame = pd.DataFrame({usecase.id_column: [f"r{i}" for i in range(10)], time: stamps, label: [0, 1] * 5})
    frame[label] = frame[label].astype("Int8")
    split = training.time_split(frame, usecase)
    assert [len(split.train), len(split.validation), len(split.holdout)] == [6, 2, 2]


@pytest.mark.parametrize(
    ("stamps", "message"),
    [
        (["2013-01-01"] * 10, "leaves train and validation empty"),
        (["2013-01-01"] * 9 + [None], "1 labelled rows have no"),
    ],
)
def test_time_split_refuses_impossible_splits(usecase, stamps, message):
    frame = pd.DataFrame(
        {
            usecase.id_column: [f"r{i}" for i in range(10)],
            usecase.time_column: pd.to_datetime(stamps).astype("datetime64[us]"),
            usecase.target.name: pd.array([0, 1] * 5, dtype="Int8"),
        }
    )
    with pytest.raises(MlopsError, match=message):
        training.time_split(frame, usecase)


def test_check_training_input_accepts_a_usable_snapshot(curated, small):
    training.check_training_input(curated, small)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda f, uc: f.iloc[0:0], "snapshot is empty"),
        (lambda f, uc: f.drop(columns=[uc.features.numeric[0]]), "lacks column.*distance"),
        (lambda f, uc: f.iloc[:50], r"has \d+ labelled rows, fewer than model.min_training_rows = 100"),
        (lambda f, uc: f.assign(**{uc.target.name: pd.array([0] * len(f), dtype="Int8")}), "class 0"),
    ],
    ids=["empty", "missing-feature", "too-few-rows", "one-class"],
)
def test_check_training_input_names_the_problem(curated, small, mutate, message):
    with pytest.raises(MlopsError, match=message):
        training.check_training_input(mutate(curated, small), small)


def test_feature_frame_keeps_only_model_inputs_in_order(curated, usecase):
    features = training.feature_frame(curated, usecase)
    expected = [*usecase.features.numeric, *usecase.features.categorical, usecase.time_column]
    assert list(features.columns) == expected
    assert usecase.id_column not in features and usecase.target.name not in features
    assert not set(usecase.pii) & set(features.columns)


def test_feature_frame_names_a_missing_input(curated, usecase):
    with pytest.raises(MlopsError, match=f"missing: {usecase.features.categorical[0]}"):
        training.feature_frame(curated.drop(columns=[usecase.features.categorical[0]]), usecase)


def _unseen_and_missing(features: pd.DataFrame, column: str) -> pd.DataFrame:
    """Every third row gets a category never seen in training, every third the next one a missing value."""
    values = features[column].where(features.index % 3 != 0, "never-seen").where(features.index % 3 != 1)
    return features.assign(**{column: values.astype("str")})


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_pipeline_predicts_on_unseen_and_missing_categories(curated, usecase, estimator):
    params = usecase.model.params if estimator == "hist_gradient_boosting" else {}
    spec = with_model(usecase, estimator=estimator, params=params)
    split = training.time_split(curated, spec)
    fitted = training.fit_pipeline(training.build_pipeline(spec), split, spec)
    features = training.feature_frame(split.holdout, spec)
    changed = _unseen_and_missing(features, spec.features.categorical[0])
    assert changed[spec.features.categorical[0]].isna().sum() > 0
    proba = fitted.predict_proba(changed)[:, 1]
    assert proba.shape == (len(features),)
    assert np.isfinite(proba).all() and ((proba >= 0) & (proba <= 1)).all()
    # time parts come from the time column, after numeric and categorical columns
    names = list(fitted[:-1].get_feature_names_out())
    assert names[-len(spec.features.time_parts) :] == [
        f"time__{spec.time_column}_{p}" for p in spec.features.time_parts
    ]


def test_gradient_boosting_treats_encoded_categories_as_categorical(curated, usecase):
    split = training.time_split(curated, usecase)
    fitted = training.fit_pipeline(training.build_pipeline(usecase), split, usecase)
    flagged = dict(zip(fitted[:-1].get_feature_names_out(), fitted[-1].is_categorical_, strict=True))
    assert [n for n, is_cat in flagged.items() if is_cat] == [f"categorical__{c}" for c in usecase.features.categorical]


def test_build_pipeline_rejects_unknown_params(usecase):
    with pytest.raises(MlopsError, match=r"unknown parameter.*not_a_param"):
        training.build_pipeline(with_model(usecase, params={"not_a_param": 1}))


def test_fit_pipeline_leaves_inputs_untouched_and_is_reproducible(curated, usecase):
    split = training.time_split(curated, usecase)
    train_before = split.train.copy()
    pipeline = training.build_pipeline(usecase)
    first = training.fit_pipeline(pipeline, split, usecase)
    second = training.fit_pipeline(pipeline, split, usecase)
    pd.testing.assert_frame_equal(split.train, train_before)
    with pytest.raises(NotFittedError):
        check_is_fitted(pipeline)
    holdout = training.feature_frame(split.holdout, usecase)
    np.testing.assert_array_equal(first.predict_proba(holdout), second.predict_proba(holdout))
    restored = pickle.loads(pickle.dumps(first))  # noqa: S301 - our own object, just serialized
    np.testing.assert_array_equal(restored.predict_proba(holdout), first.predict_proba(holdout))


def test_fitted_pipeline_serializes_with_skops_given_its_trusted_types(curated, usecase):
    sio = pytest.importorskip("skops.io")
    split = training.time_split(curated, usecase)
    fitted = training.fit_pipeline(training.build_pipeline(usecase), split, usecase)
    blob = sio.dumps(fitted)
    untrusted = sio.get_untrusted_types(data=blob)
    # what a loader must trust knowingly: our two transformers and gradient boosting's own internals
    assert set(untrusted) == {
        "functools.partial",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        "sklearn.utils.validation.check_array",
        "tasks.features.AsFloat",
        "tasks.features.TimeParts",
    }
    holdout = training.feature_frame(split.holdout, usecase)
    restored = sio.loads(blob, trusted=untrusted)
    np.testing.assert_array_equal(restored.predict_proba(holdout), fitted.predict_proba(holdout))


@pytest.mark.parametrize(
    ("part", "expected"),
    [
        ("hour", [13.0, 0.0, np.nan]),
        ("dayofweek", [1.0, 6.0, np.nan]),  # 2013-01-01 was a Tuesday
        ("month", [1.0, 12.0, np.nan]),
        ("dayofyear", [1.0, 363.0, np.nan]),
        ("minute_of_day", [13 * 60 + 45.0, 5.0, np.nan]),
    ],
)
def test_time_parts_match_the_calendar(part, expected):
    stamps = pd.DataFrame({"t": pd.to_datetime(["2013-01-01 13:45", "2013-12-29 00:05", None])})
    parts = TimeParts(parts=(part,)).fit(stamps)
    np.testing.assert_array_equal(parts.transform(stamps)[:, 0], expected)
    assert list(parts.get_feature_names_out()) == [f"t_{part}"]


def test_time_parts_reject_an_unknown_part():
    with pytest.raises(ValueError, match=r"unknown time part.*fortnight"):
        TimeParts(parts=("fortnight",)).fit(pd.DataFrame({"t": pd.to_datetime(["2013-01-01"])}))


def test_pipeline_without_time_parts_ignores_the_time_column(curated, usecase):
    plain = usecase.model_copy(update={"features": usecase.features.model_copy(update={"time_parts": ()})})
    split = training.time_split(curated, plain)
    fitted = training.fit_pipeline(training.build_pipeline(plain), split, plain)
    names = list(fitted[:-1].get_feature_names_out())
    assert len(names) == len(plain.features.numeric) + len(plain.features.categorical)
    assert not [n for n in names if n.startswith("time__")]
    assert fitted.predict_proba(training.feature_frame(split.holdout, plain)).shape == (len(split.holdout), 2)
