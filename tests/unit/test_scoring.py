"""Unit tests of tasks/scoring.py: contract checks, outlier flags, lineage, partition plans and output names."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest

from tasks import scoring
from tasks.contract import CategoricalSketch, NumericSketch, ReferenceSketch
from tasks.errors import InputDataError, MlopsError
from tasks.expectations import ExpectationSpec
from tasks.scoring import ColumnProfile, InputProfile, Lineage, OutlierReference, Partition, PartitionResult

LINEAGE = Lineage("m", "3", "run-1", "2013-02_abc", datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC), "flow-9")


def profile(rows: int = 100, **columns: tuple[str, int]) -> InputProfile:
    """``profile(a=("float", 0))``: kind and null count per column; the type name is the kind."""
    return InputProfile(rows, {name: ColumnProfile(kind, kind, nulls) for name, (kind, nulls) in columns.items()})


TABLE_SPECS = (
    ExpectationSpec("columns_exist", columns=("a", "b", "c")),
    ExpectationSpec("of_type", column="a", type_name="float64"),
    ExpectationSpec("of_type", column="b", type_name="Int64"),
    ExpectationSpec("of_type", column="c", type_name="str"),
    ExpectationSpec("null_fraction_at_most", column="a", max_fraction=0.1),
    ExpectationSpec("between", column="a", min_value=0, max_value=10),
)


# --- table-level contract ---------------------------------------------------------------------------------


def test_a_batch_matching_the_contract_has_no_table_problems():
    assert (
        scoring.table_problems(profile(a=("float", 10), b=("int", 0), c=("str", 0), extra=("other", 0)), TABLE_SPECS)
        == []
    )


@pytest.mark.parametrize(
    ("columns", "problem"),
    [
        ({"b": ("int", 0), "c": ("str", 0)}, "column 'a' is missing"),
        ({"aa": ("float", 0), "b": ("int", 0), "c": ("str", 0)}, "column 'a' is missing (renamed? the input has 'aa')"),
        ({"a": ("str", 0), "b": ("int", 0), "c": ("str", 0)}, "column 'a' is str; the contract expects float64"),
        ({"a": ("float", 0), "b": ("float", 0), "c": ("str", 0)}, "column 'b' is float; the contract expects Int64"),
        ({"a": ("float", 0), "b": ("int", 0), "c": ("int", 0)}, "column 'c' is int; the contract expects str"),
        ({"a": ("float", 20), "b": ("int", 0), "c": ("str", 0)}, "column 'a' is 20.00% null; the contract allows"),
        ({"a": ("null", 100), "b": ("int", 0), "c": ("str", 0)}, "column 'a' is entirely null; the contract allows"),
    ],
)
def test_each_table_problem_names_the_column(columns, problem):
    (found,) = scoring.table_problems(profile(**columns), TABLE_SPECS)
    assert found.startswith(problem)


@pytest.mark.parametrize(("kind", "accepted"), [("int", True), ("float", True), ("null", True), ("str", False)])
def test_float_columns_accept_integers_and_all_null_columns(kind, accepted):
    spec = (ExpectationSpec("of_type", column="a", type_name="float64"),)
    assert (scoring.table_problems(profile(a=(kind, 0)), spec) == []) is accepted


def test_input_columns_named_like_added_columns_are_refused():
    columns = {"a": ("float", 0), "b": ("int", 0), "c": ("str", 0), "model_version": ("str", 0)}
    assert scoring.table_problems(profile(**columns), TABLE_SPECS) == [
        "column 'model_version' clashes with a column scoring adds"
    ]


def test_an_empty_batch_is_reported_alone():
    assert scoring.table_problems(profile(0), TABLE_SPECS) == ["the input has no rows"]


def test_row_count_limits_are_table_checks():
    spec = (ExpectationSpec("row_count_between", min_value=10, max_value=50),)
    assert scoring.table_problems(profile(20), spec) == []
    assert "100 rows, outside" in scoring.table_problems(profile(100), spec)[0]


def test_check_table_raises_with_every_problem_and_the_source():
    with pytest.raises(
        InputDataError, match=r"^batch x breaks the model's contract: column 'a' is missing; column 'b'"
    ):
        scoring.check_table(profile(c=("str", 0)), TABLE_SPECS, "batch x")
    scoring.check_table(profile(a=("float", 0), b=("int", 0), c=("str", 0)), TABLE_SPECS, "batch x")


def test_an_unknown_contract_type_is_a_problem_not_a_pass():
    spec = (ExpectationSpec("of_type", column="a", type_name="complex128"),)
    assert "not one scoring knows" in scoring.table_problems(profile(a=("float", 0)), spec)[0]


def test_scoring_specs_add_the_id_column_and_refuse_checks_across_chunks(usecase):
    specs = scoring.scoring_specs(TABLE_SPECS, usecase)
    assert specs[: len(TABLE_SPECS)] == TABLE_SPECS
    assert specs[-2:] == (
        ExpectationSpec("columns_exist", columns=(usecase.id_column,)),
        ExpectationSpec("not_null", column=usecase.id_column),
    )
    with pytest.raises(MlopsError, match="compound_unique"):
        scoring.scoring_specs((ExpectationSpec("compound_unique", columns=("a", "b")),), usecase)


def test_needed_columns_and_types_come_from_the_specs():
    assert scoring.needed_columns(TABLE_SPECS) == ("a", "b", "c")
    assert scoring.column_types(TABLE_SPECS) == {"a": "float64", "b": "Int64", "c": "str"}


# --- row-level contract -----------------------------------------------------------------------------------


def test_row_checks_follow_great_expectations_semantics():
    frame = pd.DataFrame(
        {
            "x": pd.array([0, 10, 11, None, -1], dtype="Int64"),
            "t": pd.to_datetime(["2013-01-01", None, "2013-01-02", "2013-01-03", None]),
            "s": pd.array(["AB", "ab", None, "ABC", "XY"], dtype="str"),
        }
    )
    specs = [
        ExpectationSpec("between", column="x", min_value=0, max_value=10),  # inclusive; nulls pass
        ExpectationSpec("not_null", column="t"),
        ExpectationSpec("in_set", column="s", value_set=("AB", "ABC", "ab")),  # nulls pass
        ExpectationSpec("match_regex", column="s", regex="^[A-Z]{2}$"),
        ExpectationSpec("columns_exist", columns=("x",)),  # table-level: ignored here
    ]
    verdict = scoring.check_rows(frame, specs)
    assert verdict.failed.tolist() == [False, True, True, True, True]
    assert verdict.reasons.tolist() == [
        "",
        "match_regex(s); not_null(t)",
        "between(x)",
        "match_regex(s)",
        "between(x); in_set(s); not_null(t)",
    ]
    assert verdict.counts == {"between(x)": 2, "in_set(s)": 1, "match_regex(s)": 2, "not_null(t)": 2}


def test_a_clean_chunk_has_no_reasons():
    verdict = scoring.check_rows(pd.DataFrame({"x": [1.0, 2.0]}), [ExpectationSpec("between", column="x", max_value=5)])
    assert not verdict.failed.any() and verdict.counts == {} and verdict.reasons.tolist() == ["", ""]


def test_row_checks_refuse_uniqueness():
    with pytest.raises(MlopsError, match="cannot check compound_unique"):
        scoring.check_rows(pd.DataFrame({"a": [1]}), [ExpectationSpec("compound_unique", columns=("a",))])


# --- outliers ---------------------------------------------------------------------------------------------


REFERENCE = OutlierReference(ranges={"x": (0.0, 10.0), "y": (5.0, 6.0)}, categories={"c": ("A", "B")})


def test_outliers_are_values_outside_the_training_range_and_unseen_categories():
    frame = pd.DataFrame(
        {
            "x": [0.0, 10.0, 10.5, np.nan, -1.0],
            "y": pd.array([5, 5, 7, 5, None], dtype="Int64"),
            "c": pd.array(["A", "Z", "B", None, "Z"], dtype="str"),
        }
    )
    flags = scoring.outlier_flags(frame, REFERENCE)
    assert flags.flagged.tolist() == [False, True, True, False, True]
    assert list(flags.features.astype("str")) == ["", "c", "x,y", "", "x,c"]
    assert flags.counts == {"x": 2, "y": 1, "c": 2}


def test_outlier_flags_of_an_empty_chunk():
    flags = scoring.outlier_flags(pd.DataFrame({"x": [], "y": [], "c": pd.array([], dtype="str")}), REFERENCE)
    assert len(flags.flagged) == 0 == len(flags.features) and flags.counts == {}


def test_the_reference_comes_from_the_training_sketch():
    sketch = ReferenceSketch(
        numeric={
            "x": NumericSketch((0.0, 1.0), (3,), 0.0, -2.0, 4.0, 3),
            "empty": NumericSketch((), (), 1.0, None, None, 0),
        },
        categorical={"c": CategoricalSketch({"B": 1, "A": 2}, 0.0, 3)},
        prediction=None,
        rows=3,
    )
    assert scoring.outlier_reference(sketch) == OutlierReference({"x": (-2.0, 4.0)}, {"c": ("A", "B")})


# --- output rows ------------------------------------------------------------------------------------------


def test_scores_carry_id_probability_label_flags_and_lineage():
    flags = scoring.outlier_flags(pd.DataFrame({"x": [1.0, 99.0, 2.0], "y": [5, 5, 5], "c": ["A"] * 3}), REFERENCE)
    ids = pd.Series(["i1", "i2", "i3"], index=[7, 8, 9])
    frame = scoring.assemble_scores(ids, np.array([0.1, 0.3, 0.9]), 0.3, flags, LINEAGE, "row_id")
    assert list(frame.columns) == [
        "row_id",
        "probability",
        "predicted_label",
        "outlier",
        "outlier_features",
        "model_name",
        "model_version",
        "model_run_id",
        "batch_id",
        "scored_at",
        "flow_run_id",
    ]
    assert frame["row_id"].tolist() == ["i1", "i2", "i3"]
    assert frame["predicted_label"].tolist() == [0, 1, 1] and frame["predicted_label"].dtype == "int8"
    assert frame["outlier"].tolist() == [False, True, False]
    assert frame["model_version"].astype("str").tolist() == ["3"] * 3
    assert frame["scored_at"].tolist() == [pd.Timestamp("2026-01-02 03:04:05.678901", tz="UTC")] * 3
    with pytest.raises(ValueError, match="2 ids, 3 probabilities"):
        scoring.assemble_scores(ids.head(2), np.zeros(3), 0.5, flags, LINEAGE, "row_id")


@pytest.mark.parametrize(
    "stamp",
    [datetime(2026, 1, 2, 5, 4, 5, tzinfo=timezone(timedelta(hours=2))), datetime(2026, 1, 2, 3, 4, 5)],
    ids=["other-zone", "naive-is-utc"],
)
def test_scored_at_is_stored_in_utc(stamp):
    columns = scoring.lineage_columns(Lineage("m", "1", "r", "b", stamp, "f"), 2)
    assert list(columns["scored_at"]) == [pd.Timestamp("2026-01-02 03:04:05", tz="UTC")] * 2


def test_quarantine_keeps_every_input_column_with_reasons_and_lineage():
    rows = pd.DataFrame({"row_id": ["a", "b"], "x": [1, 2]}, index=[4, 9])
    frame = scoring.assemble_quarantine(rows, np.array(["between(x)", "not_null(t)"], dtype=object), LINEAGE)
    assert list(frame.columns[:3]) == ["row_id", "x", "quarantine_reasons"]
    assert frame["quarantine_reasons"].tolist() == ["between(x)", "not_null(t)"]
    assert frame["batch_id"].astype("str").tolist() == ["2013-02_abc"] * 2
    with pytest.raises(MlopsError, match="clash"):
        scoring.assemble_quarantine(rows.assign(batch_id="x"), np.array(["r", "r"], dtype=object), LINEAGE)
    with pytest.raises(ValueError, match="2 rows and 1 reasons"):
        scoring.assemble_quarantine(rows, np.array(["r"], dtype=object), LINEAGE)


class HalfOfDistance:
    """A stand-in model: the probability is a feature rescaled; it refuses rows the contract should stop."""

    def __init__(self, column: str):
        self.column, self.seen = column, 0

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        assert X[self.column].notna().all(), "a row failing the contract reached the model"
        self.seen += len(X)
        p = np.clip(X[self.column].to_numpy(dtype="float64") / 2000.0, 0, 1)
        return np.column_stack([1 - p, p])


def test_a_chunk_is_checked_then_scored_and_flagged(usecase):
    feature, time, ident = usecase.features.numeric[0], usecase.time_column, usecase.id_column
    inputs = (*usecase.features.numeric, *usecase.features.categorical, time)
    frame = pd.DataFrame({c: [1.0] * 4 for c in usecase.features.numeric})
    frame = frame.assign(**{c: pd.array(["A"] * 4, dtype="str") for c in usecase.features.categorical})
    frame = frame.assign(
        **{
            feature: [100.0, 700.0, 1500.0, 9e9],
            time: pd.to_datetime(["2013-02-01 10:00", None, "2013-02-01 11:00", "2013-02-01 12:00"]),
            ident: ["a", "b", "c", "d"],
        }
    )
    specs = [
        ExpectationSpec("between", column=feature, min_value=0, max_value=5000),
        ExpectationSpec("not_null", column=time),
    ]
    model = HalfOfDistance(time)
    reference = OutlierReference({feature: (0.0, 1000.0)}, {})
    chunk = scoring.score_chunk(frame[[ident, *inputs]], model, usecase, specs, reference, LINEAGE)
    assert model.seen == 2 and chunk.scores[ident].tolist() == ["a", "c"]
    assert chunk.failed.tolist() == [False, True, False, True]
    assert chunk.reasons.tolist() == [f"not_null({time})", f"between({feature})"]
    assert chunk.scores["outlier"].tolist() == [False, True]
    assert chunk.result == PartitionResult(
        rows_in=4,
        rows_scored=2,
        rows_quarantined=2,
        rows_outlier=1,
        reasons={f"between({feature})": 1, f"not_null({time})": 1},
        outlier_features={feature: 1},
    )


# --- layout and bookkeeping -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("row_groups", "chunk_rows", "expected"),
    [
        ([[100, 100, 100]], 250, [(0, (0, 2), 200), (0, (2, 3), 100)]),
        ([[300, 50]], 250, [(0, (0, 1), 300), (0, (1, 2), 50)]),  # an oversized group stands alone
        ([[10], [0], [20, 20]], 100, [(0, (0, 1), 10), (2, (0, 2), 40)]),  # a file without rows gives nothing
        ([[0, 0]], 10, []),
        ([[250, 250]], 250, [(0, (0, 1), 250), (0, (1, 2), 250)]),
    ],
)
def test_partitions_are_consecutive_row_groups_up_to_the_chunk_size(row_groups, chunk_rows, expected):
    plan = scoring.plan_partitions(row_groups, chunk_rows)
    assert [(p.file, p.row_groups, p.rows) for p in plan] == expected
    assert [p.index for p in plan] == list(range(len(plan)))
    assert sum(p.rows for p in plan) == sum(map(sum, row_groups))


def test_a_plan_needs_a_positive_chunk_size():
    with pytest.raises(ValueError, match="chunk_rows"):
        scoring.plan_partitions([[1]], 0)


def test_partition_names_are_stable_and_safe():
    assert scoring.snapshot_batch_id("2013-02", "ab12") == "2013-02_ab12"
    assert scoring.partition_path("2013-02_ab12", "3") == "batch=2013-02_ab12/model=3"
    assert scoring.part_name(12, 3) == "part-00012-003.parquet"
    assert scoring.safe_value("a/b c=d") == "a-b-c-d"
    with pytest.raises(ValueError):
        scoring.safe_value("//")


def test_a_file_batch_id_is_its_name_and_a_digest_of_the_uri():
    one = scoring.file_batch_id("s3://bucket/in/2013-07.parquet")
    assert one.startswith("2013-07-") and one == scoring.file_batch_id("s3://bucket/in/2013-07.parquet")
    assert one != scoring.file_batch_id("s3://other/in/2013-07.parquet")
    assert scoring.file_batch_id("/data/in/") == scoring.file_batch_id("/data/in")


def test_stale_files_are_earlier_parts_this_run_did_not_write():
    existing = ["/o/part-00000-000.parquet", "/o/part-00000-001.parquet", "/o/_manifest.json"]
    assert scoring.stale_files(existing, ["part-00000-000.parquet"]) == ["/o/part-00000-001.parquet"]
    assert scoring.stale_files(existing, ["part-00000-000.parquet", "part-00000-001.parquet"]) == []


def test_partition_results_add_up():
    total = scoring.combine(
        [
            PartitionResult(10, 8, 2, 1, {"r1": 2}, {"x": 1}, ("b.parquet",)),
            PartitionResult(5, 4, 1, 3, {"r1": 1, "r2": 1}, {"y": 3}, ("a.parquet",)),
        ]
    )
    assert total == PartitionResult(15, 12, 3, 4, {"r1": 3, "r2": 1}, {"y": 3, "x": 1}, ("a.parquet", "b.parquet"))
    assert scoring.combine([]) == PartitionResult()


def test_partition_is_a_small_value():
    assert Partition(0, 1, (2, 3), 4) == Partition(index=0, file=1, row_groups=(2, 3), rows=4)
