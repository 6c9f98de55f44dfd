import dataclasses
import json

import numpy as np
import pandas as pd
import pytest

from tasks import contract
from tasks.batch import prepare_batch, split_batch
from tasks.errors import MlopsError
from tasks.expectations import ValidationReport


@pytest.fixture
def curated(raw_tables, usecase) -> pd.DataFrame:
    prepared = prepare_batch(raw_tables, usecase, "2013-01", b"k" * 32)
    return split_batch(prepared, ValidationReport((), len(prepared.frame)), usecase).curated


def by_label(specs):
    return {s.label: s for s in specs}


def test_contract_covers_the_model_inputs(curated, usecase):
    specs, _ = contract.derive_contract(curated, usecase)
    labels = by_label(specs)
    inputs = (*usecase.features.numeric, *usecase.features.categorical, usecase.time_column)
    assert labels["columns_exist"].columns == inputs
    assert {f"of_type({c})" for c in inputs} <= set(labels)
    assert f"not_null({usecase.time_column})" in labels
    assert {f"between({c})" for c in usecase.features.numeric} <= set(labels)
    # unseen categories are scored and flagged by drift, never quarantined
    assert not [s for s in specs if s.kind == "in_set"]
    assert not [s for s in specs if s.column in usecase.pii or s.column == usecase.target.name]


@pytest.mark.parametrize(
    ("column", "type_name"),
    [("distance", "float64"), ("sched_dep_time", "Int64"), ("dest", "str"), ("sched_dep_local", "datetime64")],
)
def test_contract_types_follow_the_training_dtypes(curated, usecase, column, type_name):
    specs, _ = contract.derive_contract(curated, usecase)
    assert by_label(specs)[f"of_type({column})"].type_name == type_name


def test_null_limits_are_training_rate_plus_slack(curated, usecase):
    column = "wind_gust"  # often missing in the source
    specs, _ = contract.derive_contract(curated, usecase)
    limit = by_label(specs)[f"null_fraction_at_most({column})"].max_fraction
    assert limit == pytest.approx(curated[column].isna().mean() + usecase.contract.null_rate_slack)


def test_null_limit_is_capped_at_one_and_an_empty_column_gets_no_range(curated, usecase):
    column = usecase.features.numeric[0]
    specs, sketch = contract.derive_contract(curated.assign(**{column: np.nan}), usecase)
    labels = by_label(specs)
    assert labels[f"null_fraction_at_most({column})"].max_fraction == 1.0
    assert f"between({column})" not in labels
    assert sketch.numeric[column] == contract.NumericSketch((), (), 1.0, None, None, 0)


def test_between_range_keeps_training_values_and_catches_an_absurd_one(curated, usecase):
    column = "distance"
    specs, _ = contract.derive_contract(curated, usecase)
    rule = by_label(specs)[f"between({column})"]
    values = curated[column]
    inside = values.between(rule.min_value, rule.max_value)
    assert inside.mean() > 0.99  # only the outer 0.1 % quantiles may fall outside, widened by 10 %
    scoring = pd.Series([values.median(), values.max() * 50, -values.max() * 50])
    assert scoring.between(rule.min_value, rule.max_value).tolist() == [True, False, False]


def test_a_constant_column_still_gets_a_usable_range(curated, usecase):
    column = usecase.features.numeric[0]
    specs, sketch = contract.derive_contract(curated.assign(**{column: 7.0}), usecase)
    rule = by_label(specs)[f"between({column})"]
    assert rule.min_value < 7.0 < rule.max_value
    assert sketch.numeric[column].counts == (len(curated),)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [(lambda f: f.iloc[0:0], "no rows"), (lambda f: f.drop(columns=["dest"]), "missing dest")],
)
def test_contract_refuses_unusable_training_data(curated, usecase, mutate, message):
    with pytest.raises(MlopsError, match=message):
        contract.derive_contract(mutate(curated), usecase)


def test_reference_sketch_counts_and_domains(curated, usecase):
    _, sketch = contract.derive_contract(curated, usecase)
    assert sketch.rows == len(curated)
    assert sketch.prediction is None
    for name, numeric in sketch.numeric.items():
        assert sum(numeric.counts) == numeric.n == curated[name].notna().sum()
        assert len(numeric.counts) == len(numeric.edges) - 1 <= usecase.contract.reference_bins
        edges = list(numeric.edges)
        # sorted; only the lowest edge may repeat (a point mass at the minimum keeps its own bin)
        assert edges == sorted(edges) and len(set(edges[1:])) == len(edges) - 1
    for name, categorical in sketch.categorical.items():
        assert sum(categorical.frequencies.values()) == categorical.n
        assert set(categorical.frequencies) == set(curated[name].dropna())


@pytest.mark.parametrize(
    ("values", "expected_counts"),
    [
        (np.arange(100, dtype=float), (25, 25, 25, 25)),
        (np.r_[np.zeros(90), np.arange(1, 11)], None),  # heavy ties: fewer, deduplicated bins
        (np.full(10, 3.0), (10,)),
    ],
    ids=["uniform", "ties", "constant"],
)
def test_numeric_sketch_bins(values, expected_counts):
    sketch = contract.numeric_sketch(values, bins=4)
    assert sum(sketch.counts) == sketch.n == len(values)
    assert len(sketch.counts) == len(sketch.edges) - 1
    if expected_counts is not None:
        assert sketch.counts == expected_counts
    else:
        assert len(sketch.counts) < 4


def test_values_beyond_the_reference_edges_fall_in_the_end_bins():
    sketch = contract.numeric_sketch(np.arange(100, dtype=float), bins=4)
    bins = contract.bin_index(sketch.edges, np.array([-1e9, 0.0, 50.0, 99.0, 1e9]))
    assert bins.tolist() == [0, 0, 2, 3, 3]


def test_numeric_sketch_counts_nullable_integer_nulls():
    sketch = contract.numeric_sketch(pd.Series([1, 2, None, 4], dtype="Int64"), bins=2)
    assert (sketch.n, sketch.null_rate, sketch.min, sketch.max) == (3, 0.25, 1.0, 4.0)


def test_categorical_sketch_keeps_nulls_apart():
    sketch = contract.categorical_sketch(pd.Series(["a", "b", "a", None], dtype="str"))
    assert sketch == contract.CategoricalSketch({"a": 2, "b": 1}, 0.25, 3)


def test_prediction_sketch_bins_scores():
    proba = np.random.default_rng(0).beta(2, 5, size=1000)
    sketch = contract.sketch_predictions(proba, bins=10)
    assert sum(sketch.counts) == 1000 and len(sketch.counts) == 10
    assert max(sketch.counts) - min(sketch.counts) <= 2  # equal-frequency


def test_contract_and_sketch_survive_a_json_round_trip(curated, usecase):
    specs, sketch = contract.derive_contract(curated, usecase)
    sketch = dataclasses.replace(sketch, prediction=contract.sketch_predictions(np.linspace(0, 1, 50), 10))
    specs_back = contract.contract_from_dict(json.loads(json.dumps(contract.contract_to_dict(specs))))
    sketch_back = contract.sketch_from_dict(json.loads(json.dumps(contract.sketch_to_dict(sketch))))
    assert specs_back == specs
    assert sketch_back == sketch


@pytest.mark.parametrize(
    ("load", "data", "message"),
    [
        (contract.contract_from_dict, {"format": 99, "expectations": []}, "format 99"),
        (contract.contract_from_dict, {"format": 1, "expectations": [{"kind": "between", "bogus": 1}]}, "malformed"),
        (contract.sketch_from_dict, {"numeric": {}}, "malformed reference sketch"),
    ],
    ids=["contract-format", "contract-field", "sketch-missing-key"],
)
def test_loading_a_bad_document_names_the_problem(load, data, message):
    with pytest.raises(MlopsError, match=message):
        load(data)


def test_point_mass_at_the_minimum_keeps_its_own_bin():
    values = np.r_[np.zeros(93), np.linspace(0.01, 1.0, 7)]
    sketch = contract.numeric_sketch(values, bins=10)
    assert sketch.edges[:2] == (0.0, 0.0)
    assert sketch.counts == (93, 7)
    shifted = np.r_[np.zeros(50), np.linspace(0.01, 1.0, 50)]
    assert np.bincount(contract.bin_index(sketch.edges, shifted)).tolist() == [50, 50]
