import pandas as pd
import pytest

from tasks import cleaning
from tasks.errors import InputDataError
from tasks.expectations import ROW_ID
from tasks.usecase import ColumnSpec, DatetimeFromParts, Lookup, TargetSpec

INT = ColumnSpec(type="int")
FLOAT = ColumnSpec(type="float", nullable=True)
TEXT = ColumnSpec(type="str")


def rows(**columns) -> pd.DataFrame:
    return cleaning.with_row_ids(pd.DataFrame(columns))


def test_check_columns_returns_extras_and_allows_optional():
    frame = pd.DataFrame({"a": ["1"], "b": ["x"], "surprise": ["?"]})
    specs = {"a": INT, "b": TEXT, "c": ColumnSpec(type="int", required=False)}
    assert cleaning.check_columns(frame, specs, "t") == ["surprise"]


def test_check_columns_names_missing_column():
    with pytest.raises(InputDataError, match=r"t: missing required column\(s\): b"):
        cleaning.check_columns(pd.DataFrame({"a": ["1"]}), {"a": INT, "b": TEXT}, "t")


def test_check_columns_hints_at_wrong_delimiter():
    frame = pd.DataFrame({"a;b": ["1;x"]})
    with pytest.raises(InputDataError, match="wrong delimiter"):
        cleaning.check_columns(frame, {"a": INT, "b": TEXT}, "t")


@pytest.mark.parametrize(
    ("spec", "values", "bad_rows", "dtype"),
    [
        (INT, ["1", "2", "x"], [2], "Int64"),
        (INT, ["1", "2.5", "3"], [1], "Int64"),
        (FLOAT, ["1.5", "", "abc"], [2], "float64"),
        (TEXT, ["A", " B ", None], [], "str"),
        (
            ColumnSpec(type="datetime"),
            ["2013-01-01T10:00:00Z", "yesterday", None],
            [1],
            "datetime64[us, UTC]",
        ),
    ],
)
def test_coerce_types_flags_unparseable_values(spec, values, bad_rows, dtype):
    typed, reasons = cleaning.coerce_types(rows(c=values), {"c": spec})
    assert sorted(reasons[ROW_ID]) == bad_rows
    assert all(r.startswith("type(c:") for r in reasons["reason"])
    assert str(typed["c"].dtype) == dtype
    assert typed["c"].isna().sum() == sum(v in (None, "") for v in values) + len(bad_rows)


def test_coerce_types_strips_text_and_does_not_mutate_input():
    raw = rows(c=[" B "])
    typed, _ = cleaning.coerce_types(raw, {"c": TEXT})
    assert typed["c"].iloc[0] == "B"
    assert raw["c"].iloc[0] == " B "


def test_join_lookup_keeps_every_primary_row_even_with_duplicated_side_keys():
    primary = rows(k=["a", "b", "c"], v=[1, 2, 3])
    side = pd.DataFrame({"k": ["a", "a", "b"], "w": [10.0, 99.0, 20.0]})
    lookup = Lookup(name="s", join_on=("k",), columns={"k": TEXT, "w": FLOAT})
    joined = cleaning.join_lookup(primary, side, lookup)
    assert len(joined) == 3
    assert joined["w"].tolist()[:2] == [10.0, 20.0]
    assert pd.isna(joined["w"].iloc[2])


DT = DatetimeFromParts(name="t", year="y", month="m", day="d", hour="h", minute="mi")


def test_derive_time_builds_local_timestamp_and_flags_impossible_dates():
    frame = rows(y=[2013, 2013], m=[1, 2], d=[31, 31], h=[5, 6], mi=[15, 0])
    out, reasons = cleaning.derive_time(frame, DT)
    assert out["t"].iloc[0] == pd.Timestamp("2013-01-31 05:15")
    assert pd.isna(out["t"].iloc[1])
    assert reasons[ROW_ID].tolist() == [1] and reasons["reason"].iloc[0] == "derive(t)"


def test_outside_period_flags_rows_of_other_months():
    frame = rows(t=pd.to_datetime(["2013-01-01 00:00", "2013-01-31 23:59", "2013-02-01 00:00", "2012-12-31 12:00"]))
    reasons = cleaning.outside_period(frame, "t", "2013-01")
    assert reasons[ROW_ID].tolist() == [2, 3]


@pytest.mark.parametrize(("op", "expected"), [(">=", [1, 1, 0]), (">", [1, 0, 0]), ("<", [0, 0, 1])])
def test_derive_label_compares_and_keeps_missing_as_null(op, expected):
    frame = rows(delay=[30.0, 15.0, -3.0, None])
    out = cleaning.derive_label(frame, TargetSpec(name="late", source="delay", operator=op, threshold=15))
    assert out["late"].iloc[:3].tolist() == expected
    assert pd.isna(out["late"].iloc[3])


def test_derive_id_and_duplicate_keys_keep_the_first_occurrence():
    frame = rows(a=[1, 1, 2, 1], b=["x", "x", "x", "y"])
    frame = cleaning.derive_id(frame, ("a", "b"), "id")
    assert frame["id"].tolist() == ["1_x", "1_x", "2_x", "1_y"]
    reasons = cleaning.duplicate_keys(frame, ("a", "b"))
    assert reasons[ROW_ID].tolist() == [1]
