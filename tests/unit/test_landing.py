import pandas as pd
import pytest

from tasks.errors import MlopsError
from tasks.landing import parse_period, select_lookup_rows, select_period
from tasks.usecase import ColumnSpec, Lookup, PeriodColumns


@pytest.mark.parametrize(("text", "expected"), [("2013-01", (2013, 1)), (" 2013-12 ", (2013, 12))])
def test_parse_period(text, expected):
    assert parse_period(text) == expected


@pytest.mark.parametrize("text", ["2013-13", "2013-1", "13-01", "2013/01", ""])
def test_parse_period_rejects_non_months(text):
    with pytest.raises(MlopsError, match="YYYY-MM"):
        parse_period(text)


def test_select_period_and_the_lookup_rows_it_needs(raw_tables, usecase):
    flights = pd.concat([raw_tables["flights"], raw_tables["flights"].assign(month="2")])
    batch = select_period(flights, PeriodColumns(year="year", month="month"), "2013-01")
    assert len(batch) == len(raw_tables["flights"])
    lookup = usecase.source.lookups[0]
    side = select_lookup_rows(raw_tables["weather"], batch.head(10), lookup)
    keys = set(map(tuple, batch.head(10)[list(lookup.join_on)].to_numpy()))
    assert 0 < len(side) <= 10
    assert set(map(tuple, side[list(lookup.join_on)].to_numpy())) <= keys


def test_select_lookup_rows_with_no_match_is_empty():
    lookup = Lookup(name="s", join_on=("k",), columns={"k": ColumnSpec(type="str")})
    out = select_lookup_rows(pd.DataFrame({"k": ["a"]}), pd.DataFrame({"k": ["b"]}), lookup)
    assert out.empty


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("2013-01..2013-03", ["2013-01", "2013-02", "2013-03"]),
        ("2012-11..2013-02", ["2012-11", "2012-12", "2013-01", "2013-02"]),
        ("2013-05", ["2013-05"]),
        ("2013-01, 2013-05", ["2013-01", "2013-05"]),
    ],
)
def test_expand_months(spec, expected):
    from tasks.landing import expand_months

    assert expand_months(spec) == expected


@pytest.mark.parametrize(
    ("spec", "message"), [("2013-03..2013-01", "backwards"), ("2013-1..2013-03", "YYYY-MM"), (",", "no month")]
)
def test_expand_months_rejects_bad_ranges(spec, message):
    from tasks.landing import expand_months

    with pytest.raises(MlopsError, match=message):
        expand_months(spec)
