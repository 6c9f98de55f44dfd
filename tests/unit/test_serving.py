"""Unit tests of tasks/serving.py: every kind of bad request is refused with the row, field and reason named."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from tasks import serving
from tasks.contract import CategoricalSketch, NumericSketch, ReferenceSketch
from tasks.expectations import ExpectationSpec
from tasks.scoring import Lineage, OutlierReference
from tasks.serving import RequestError
from tasks.training import model_inputs

LINEAGE = Lineage("m", "7", "run-7", "api-20260101T00", datetime(2026, 1, 1, tzinfo=UTC), "")


class HalfModel:
    """A scorer whose probability is 0.5 for every row (the pipeline is not what these tests are about)."""

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        return np.tile([0.5, 0.5], (len(X), 1))


@pytest.fixture(scope="module")
def contract(usecase) -> serving.ServingContract:
    numeric, categorical = usecase.features.numeric, usecase.features.categorical
    specs = [ExpectationSpec("columns_exist", columns=model_inputs(usecase))]
    specs += [ExpectationSpec("of_type", column=c, type_name="float64") for c in numeric]
    specs += [ExpectationSpec("of_type", column=c, type_name="str") for c in categorical]
    specs += [ExpectationSpec("of_type", column=usecase.time_column, type_name="datetime64")]
    specs += [ExpectationSpec("between", column="distance", min_value=1, max_value=5000)]
    specs += [ExpectationSpec("not_null", column=usecase.time_column)]
    reference = OutlierReference({"distance": (17.0, 4983.0)}, {"carrier": ("AA", "B6"), "origin": ("JFK",)})
    return serving.serving_contract(tuple(specs), reference, usecase)


@pytest.fixture
def row(usecase) -> dict:
    record = dict.fromkeys(usecase.features.numeric, 1.0)
    record.update({"distance": 1000, "carrier": "AA", "origin": "JFK", "dest": "LAX"})
    record[usecase.time_column] = "2013-02-03T08:15:00"
    record[usecase.id_column] = "f-1"
    return record


def refused(records, contract) -> RequestError:
    with pytest.raises(RequestError) as info:
        serving.records_frame(records, contract, [f"gen-{i}" for i in range(len(records))])
    return info.value


def only(error: RequestError) -> serving.Problem:
    assert len(error.problems) == 1, error.problems
    return error.problems[0]


# --- body shapes ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        [{"a": 1}, {"a": 2}],
        {"records": [{"a": 1}, {"a": 2}]},
        {"dataframe_records": [{"a": 1}, {"a": 2}]},
        {"dataframe_split": {"columns": ["a"], "data": [[1], [2]]}},
    ],
)
def test_every_accepted_body_shape_gives_the_same_rows(body):
    assert serving.request_records(body, 10) == [{"a": 1}, {"a": 2}]


def test_a_single_object_is_one_row():
    assert serving.request_records({"a": 1}, 10) == [{"a": 1}]


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        (42, 400, "JSON object or a list of objects, not int"),
        ("text", 400, "not str"),
        (None, 400, "not null"),
        ([], 422, "no rows"),
        ({"records": []}, 422, "no rows"),
        ([{}] * 11, 413, "11 rows; at most 10"),
        ({"dataframe_split": {"columns": ["a"], "data": [[1, 2]]}}, 400, "row 0 of 'dataframe_split.data'"),
        ({"dataframe_split": [1]}, 400, "'columns' and 'data'"),
        ({"records": [], "extra": 1}, 400, "unexpected top-level key(s) ['extra']"),
        ({"instances": [[1]]}, 400, "tensor input"),
    ],
)
def test_bad_body_shapes_are_refused_with_the_reason(body, status, words):
    with pytest.raises(RequestError) as info:
        serving.request_records(body, 10)
    assert info.value.status == status
    assert words in str(info.value)


# --- rows ------------------------------------------------------------------------------------------------------


def test_a_good_row_becomes_a_frame_typed_as_the_contract(row, contract, usecase):
    frame = serving.records_frame([row], contract, ["gen-0"])
    assert frame["distance"].dtype == "float64" and frame["distance"].iloc[0] == 1000.0
    assert str(frame[usecase.time_column].dtype) == "datetime64[us]"
    assert frame[usecase.id_column].tolist() == ["f-1"]


def test_a_row_without_id_gets_the_generated_one(row, contract, usecase):
    del row[usecase.id_column]
    assert serving.records_frame([row], contract, ["req-0"])[usecase.id_column].tolist() == ["req-0"]


def test_unknown_field_is_named_with_a_hint(row, contract):
    problem = only(refused([{**row, "distnce": 3}], contract))
    assert (problem.row, problem.field) == (0, "distnce")
    assert "unknown field" in problem.reason and "did you mean 'distance'" in problem.reason


def test_missing_required_field_is_named(row, contract):
    del row["temp"]
    problem = only(refused([row], contract))
    assert (problem.row, problem.field, problem.reason) == (0, "temp", "missing required field")


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("distance", "far", "expected a number, got a string"),
        ("distance", True, "expected a number, got a boolean"),
        ("distance", [1], "expected a number, got a list"),
        ("carrier", 7, "expected a string, got a number (7); quote it"),
        ("sched_dep_local", "yesterday", "is not an ISO 8601 date-time"),
        ("sched_dep_local", 1357027200, "expected an ISO 8601 date-time string"),
        ("sched_dep_local", "2013-02-03T08:15:00+01:00", "without a UTC offset"),
    ],
)
def test_wrong_type_names_row_field_and_reason(row, contract, field, value, words):
    problem = only(refused([row, {**row, field: value}], contract))
    assert (problem.row, problem.field) == (1, field)
    assert words in problem.reason


def test_null_where_the_contract_allows_none_is_refused(row, contract, usecase):
    problem = only(refused([{**row, usecase.time_column: None}], contract))
    assert (problem.field, problem.reason) == (usecase.time_column, "null is not allowed")


def test_null_in_a_nullable_feature_is_accepted(row, contract):
    assert serving.records_frame([{**row, "wind_gust": None}], contract, ["g"])["wind_gust"].isna().all()


def test_a_row_that_is_not_an_object_is_named(row, contract):
    problem = only(refused([row, [1, 2]], contract))
    assert (problem.row, problem.field) == (1, None) and "must be a JSON object, not a list" in problem.reason


def test_every_bad_row_is_listed_and_the_error_line_names_the_first(row, contract):
    error = refused([{**row, "distance": "x"}, row, {**row, "carrier": None, "origin": 3}], contract)
    assert [(p.row, p.field) for p in error.problems] == [(0, "distance"), (2, "origin")]
    assert str(error).startswith("row 0: field 'distance': expected a number") and "(and 1 more)" in str(error)
    assert error.body()["problems_total"] == 2


# --- contract checks and scoring ---------------------------------------------------------------------------


def test_value_outside_the_declared_domain_refuses_the_request(row, contract, usecase):
    frame = serving.records_frame([row, {**row, "distance": 99999}], contract, ["a", "b"])
    with pytest.raises(RequestError) as info:
        serving.score_request(frame, HalfModel(), usecase, contract, LINEAGE)
    problem = only(info.value)
    assert info.value.status == 422 and (problem.row, problem.field) == (1, "distance")
    assert "99999" in problem.reason and "[1, 5000]" in problem.reason


def test_unseen_category_is_scored_and_flagged(row, contract, usecase):
    frame = serving.records_frame([row, {**row, "carrier": "ZZ", "distance": 4999}], contract, ["a", "b"])
    scored = serving.score_request(frame, HalfModel(), usecase, contract, LINEAGE)
    first, second = scored.rows
    assert not first["unseen"] and not first["outlier"]
    assert second["unseen"] and second["unseen_features"] == ["carrier"]
    assert second["outlier"] and second["outlier_features"] == ["distance"]  # beyond the training max, allowed
    assert [r["label"] for r in scored.rows] == [int(usecase.model.decision_threshold <= 0.5)] * 2
    assert scored.rows_unseen == 1 and scored.rows_outlier == 1
    assert scored.scores["model_version"].astype(str).tolist() == ["7", "7"]


def test_prediction_rows_carry_inputs_outputs_lineage_and_request(row, contract, usecase):
    frame = serving.records_frame([row], contract, ["a"])
    scored = serving.score_request(frame, HalfModel(), usecase, contract, LINEAGE)
    other = serving.score_request(
        serving.records_frame([row, row], contract, ["b", "c"]), HalfModel(), usecase, contract, LINEAGE
    )
    logged = serving.prediction_rows([(scored, "req-9", "champion"), (other, "req-10", None)], usecase, None)
    for column in ("probability", "predicted_label", "model_version", "batch_id", "scored_at", "distance", "carrier"):
        assert column in logged.columns
    assert logged["request_id"].tolist() == ["req-9", "req-10", "req-10"]
    assert logged["model_alias"].tolist() == ["champion", "", ""]
    assert logged[usecase.id_column].tolist() == ["f-1", "f-1", "f-1"]
    assert logged["model_version"].tolist() == ["7"] * 3


def test_reference_rows_pass_the_contract_and_score(usecase, contract):
    sketch = ReferenceSketch(
        numeric={c: NumericSketch((0.0, 10.0, 20.0), (5, 5), 0.0, 0.0, 20.0, 10) for c in usecase.features.numeric}
        | {"distance": NumericSketch((17.0, 500.0, 4983.0), (5, 5), 0.0, 17.0, 4983.0, 10)},
        categorical={c: CategoricalSketch({"AA": 3, "JFK": 2}, 0.0, 5) for c in usecase.features.categorical},
        prediction=None,
        rows=10,
    )
    records = serving.reference_rows(sketch, contract, 4)
    frame = serving.records_frame(records, contract, [f"r{i}" for i in range(4)])
    scored = serving.score_request(frame, HalfModel(), usecase, contract, LINEAGE)
    assert len(scored.rows) == 4
    assert serving.check_scores(scored.scores["probability"].to_numpy(), 4) is None


@pytest.mark.parametrize(
    ("values", "words"), [([0.5, np.nan], "not probabilities"), ([1.5, 0.1], "not probabilities"), ([0.1], "for 2")]
)
def test_check_scores_names_unusable_scores(values, words):
    assert words in serving.check_scores(np.array(values), 2)


def test_contract_summary_lists_fields_ranges_and_categories(contract, usecase):
    summary = serving.contract_summary(contract)
    assert summary["ranges"]["distance"] == [1, 5000]
    assert summary["not_null"] == [usecase.time_column]
    assert summary["known_categories"]["carrier"] == ["AA", "B6"]
    assert summary["fields"]["carrier"] == "str"
