"""Tests of ``adapters.gx_validator``: GX runs every spec kind; reports name the failing ``_row`` ids."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from adapters.gx_validator import validate_frame
from tasks.expectations import ExpectationSpec, ValidationReport

NAN = np.nan


@pytest.fixture(scope="module")
def clean() -> pd.DataFrame:
    """Six valid rows; ``_row`` ids are not positions, so a positional answer would be caught."""
    return pd.DataFrame(
        {
            "_row": pd.array([10, 20, 30, 40, 50, 60], dtype="Int64"),
            "distance": pd.array([100.0, 250.5, NAN, 3000.0, 1.0, 6000.0], dtype="float64"),
            "month": pd.array([1, 2, 3, 12, 7, 7], dtype="Int64"),
            "carrier": pd.array(["AA", "UA", "DL", "AA", "B6", "UA"], dtype="str"),
            "dest": pd.array(["BOS", "LAX", "ORD", "SFO", "ATL", "DEN"], dtype="str"),
            "flight": pd.array([1, 2, 3, 4, 5, 6], dtype="Int64"),
        }
    )


ALL_KINDS = (
    ExpectationSpec("columns_exist", columns=("distance", "month", "carrier", "dest", "flight")),
    ExpectationSpec("row_count_between", min_value=1, max_value=100),
    ExpectationSpec("null_fraction_at_most", column="distance", max_fraction=0.2),
    ExpectationSpec("of_type", column="distance", type_name="float64"),
    ExpectationSpec("of_type", column="month", type_name="Int64"),
    ExpectationSpec("of_type", column="carrier", type_name="str"),
    ExpectationSpec("not_null", column="month"),
    ExpectationSpec("between", column="distance", min_value=1, max_value=6000),
    ExpectationSpec("between", column="month", min_value=1, max_value=12),
    ExpectationSpec("between", column="flight", min_value=1),
    ExpectationSpec("in_set", column="carrier", value_set=("AA", "B6", "DL", "UA")),
    ExpectationSpec("match_regex", column="dest", regex="^[A-Z]{3}$"),
    ExpectationSpec("compound_unique", columns=("month", "flight")),
)


def _run(frame: pd.DataFrame, *specs: ExpectationSpec) -> ValidationReport:
    report, _ = validate_frame(frame, specs, suite_name="test")
    assert [r.spec for r in report.results] == list(specs)
    return report


def _with(frame: pd.DataFrame, **changes: object) -> pd.DataFrame:
    """A copy of ``frame`` with cells set by ``column=(_row, value)``."""
    out = frame.copy()
    for column, (row, value) in changes.items():
        out.loc[out["_row"] == row, column] = value
    return out


def test_clean_frame_passes_every_kind_in_spec_order(clean: pd.DataFrame) -> None:
    report = _run(clean, *ALL_KINDS)

    assert [r.spec.label for r in report.results if not r.success] == []
    assert all(r.failed_rows == () for r in report.results)
    assert all(r.unexpected_count == 0 for r in report.results if r.spec.kind != "null_fraction_at_most")
    assert report.evaluated_rows == 6
    assert report.table_failures == () and report.row_failures == ()


def test_between_failure_gives_exactly_the_failing_row_ids(clean: pd.DataFrame) -> None:
    frame = _with(clean, distance=(40, 6000.5))
    frame = _with(frame, distance=(10, 0.0))  # below the minimum; _row 30 is null, not out of range
    spec = ExpectationSpec("between", column="distance", min_value=1, max_value=6000)

    (result,) = _run(frame, spec).results

    assert not result.success
    assert result.failed_rows == (10, 40)
    assert result.unexpected_count == 2


@pytest.mark.parametrize("with_null", [False, True], ids=["numpy-path", "nullable-path"])
def test_between_on_int_column_with_and_without_nulls(clean: pd.DataFrame, with_null: bool) -> None:
    frame = clean.assign(month=pd.array([1, 2, 13, 12, 0, 7], dtype="Int64"))
    if with_null:
        frame.loc[frame["_row"] == 20, "month"] = pd.NA
    specs = (
        ExpectationSpec("between", column="month", min_value=1, max_value=12),
        ExpectationSpec("of_type", column="month", type_name="Int64"),
    )

    between, of_type = _run(frame, *specs).results

    assert between.failed_rows == (30, 50)
    assert of_type.success, of_type.observed


@pytest.mark.parametrize(
    ("spec", "column", "bad"),
    [
        (ExpectationSpec("in_set", column="carrier", value_set=("AA", "B6", "DL", "UA")), "carrier", "ZZ"),
        (ExpectationSpec("match_regex", column="dest", regex="^[A-Z]{3}$"), "dest", "bos"),
        (ExpectationSpec("not_null", column="carrier"), "carrier", None),
        (ExpectationSpec("not_null", column="distance"), "distance", NAN),
        (ExpectationSpec("not_null", column="month"), "month", pd.NA),
    ],
    ids=["in_set", "match_regex", "not_null-str", "not_null-float", "not_null-Int64"],
)
def test_row_level_failures_name_the_row(clean: pd.DataFrame, spec: ExpectationSpec, column: str, bad: object) -> None:
    frame = _with(clean, **{column: (50, bad)})
    if column == "distance":  # _row 30 is already null there
        frame = _with(frame, distance=(30, 1.0))

    (result,) = _run(frame, spec).results

    assert not result.success
    assert result.failed_rows == (50,)
    assert result.unexpected_count == 1
    assert _run(clean.assign(distance=clean["distance"].fillna(1.0)), spec).results[0].success


def test_compound_unique_reports_every_duplicate(clean: pd.DataFrame) -> None:
    # (7, 5) and (7, 6) are distinct; making _row 60's flight 5 duplicates _row 50
    frame = _with(clean, flight=(60, 5))
    spec = ExpectationSpec("compound_unique", columns=("month", "flight"))

    (result,) = _run(frame, spec).results

    assert not result.success
    assert result.failed_rows == (50, 60)
    assert result.spec.row_level and not _run(clean, spec).results[0].failed_rows


def test_row_count_fails_the_batch_on_an_empty_frame(clean: pd.DataFrame) -> None:
    specs = (
        ExpectationSpec("row_count_between", min_value=1, max_value=100),
        ExpectationSpec("not_null", column="month"),
    )

    report = _run(clean.iloc[:0], *specs)

    assert [r.spec.kind for r in report.table_failures] == ["row_count_between"]
    assert report.results[0].observed == "0 rows"
    assert report.results[1].success and report.row_failures == ()


def test_columns_exist_names_the_missing_columns(clean: pd.DataFrame) -> None:
    spec = ExpectationSpec("columns_exist", columns=("month", "distance", "origin", "carrier"))

    (result,) = _run(clean.drop(columns=["distance"]), spec).results

    assert not result.success
    assert result.observed == "missing: distance, origin"
    assert result.unexpected_count == 2


def test_spec_on_a_missing_column_fails_without_stopping_the_others(clean: pd.DataFrame) -> None:
    specs = (
        ExpectationSpec("between", column="origin", min_value=0, max_value=1),
        ExpectationSpec("of_type", column="origin", type_name="str"),
        ExpectationSpec("compound_unique", columns=("month", "origin")),
        ExpectationSpec("not_null", column="month"),
    )

    report = _run(clean, *specs)

    assert [r.success for r in report.results] == [False, False, False, True]
    assert all("column missing" in r.observed for r in report.results[:3])


def test_an_expectation_gx_cannot_evaluate_fails_alone_and_quietly(clean: pd.DataFrame) -> None:
    # comparing strings with numbers raises inside GX; GX's message could quote a cell, so none is passed on
    frame = _with(clean, carrier=(10, "SECRET123"))
    specs = (
        ExpectationSpec("between", column="carrier", min_value=0, max_value=1),
        ExpectationSpec("not_null", column="carrier"),
    )

    broken, fine = _run(frame, *specs).results

    assert not broken.success and broken.observed == "error while evaluating"
    assert fine.success


def test_frame_without_row_ids_is_rejected(clean: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="_row"):
        validate_frame(clean.drop(columns=["_row"]), ALL_KINDS, suite_name="test")


def test_of_type_failure_gives_the_actual_dtype(clean: pd.DataFrame) -> None:
    specs = (
        ExpectationSpec("of_type", column="carrier", type_name="Int64"),
        ExpectationSpec("of_type", column="month", type_name="float64"),
        ExpectationSpec("of_type", column="distance", type_name="str"),
        ExpectationSpec("of_type", column="flight", type_name="Int64"),
    )

    report = _run(clean.assign(flight=clean["flight"].astype("float64")), *specs)

    assert [r.success for r in report.results] == [False, False, False, False]
    assert [r.observed for r in report.results] == [
        "dtype str",
        "dtype Int64",
        "dtype float64",
        "dtype float64",
    ]
    assert len(report.table_failures) == 4


def test_null_fraction_is_table_level(clean: pd.DataFrame) -> None:
    frame = _with(clean, distance=(10, NAN))  # 2 of 6 null
    loose = ExpectationSpec("null_fraction_at_most", column="distance", max_fraction=0.5)
    tight = ExpectationSpec("null_fraction_at_most", column="distance", max_fraction=0.2)

    ok, bad = _run(frame, loose, tight).results

    assert ok.success and not bad.success
    assert bad.failed_rows == () and bad.unexpected_count == 2
    assert bad.observed == "null share 33.33% (max 20.00%)"
    assert not bad.spec.row_level


def test_observed_never_contains_cell_values(clean: pd.DataFrame) -> None:
    frame = _with(clean, carrier=(20, "SECRET123"), dest=(20, "SECRET123"), distance=(20, 98765.4321))
    frame = _with(frame, flight=(60, 5))

    report = _run(frame, *ALL_KINDS)

    failed = {r.spec.label: r.failed_rows for r in report.results if not r.success}
    assert failed == {
        "in_set(carrier)": (20,),
        "match_regex(dest)": (20,),
        "between(distance)": (20,),
        "compound_unique(month,flight)": (50, 60),
    }
    for result in report.results:
        assert "SECRET" not in result.observed and "98765" not in result.observed, result


def test_data_docs_hold_index_validations_and_assets(clean: pd.DataFrame) -> None:
    _, docs = validate_frame(clean, ALL_KINDS, suite_name="docs_test")

    assert b"<html" in docs["index.html"].lower()
    validation_pages = [p for p in docs if p.startswith("validations/") and p.endswith(".html")]
    assert validation_pages and all("docs_test" in p for p in validation_pages)
    assert any(p.startswith("static/") for p in docs)
    assert all(isinstance(v, bytes) and not p.startswith("/") for p, v in docs.items())


def test_numpy_int_row_ids_and_nothing_left_in_cwd(
    clean: pd.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    frame = _with(clean.assign(_row=clean["_row"].astype("int64")), carrier=(30, "ZZ"))

    (result,) = _run(frame, ALL_KINDS[10]).results

    assert result.failed_rows == (30,) and all(type(r) is int for r in result.failed_rows)
    assert list(tmp_path.iterdir()) == []
