import pandas as pd
import pytest

from tasks.errors import MlopsError
from tasks.periods import check_period, expand_periods, naive_in, period_bounds, period_labels


@pytest.mark.parametrize(
    ("period", "start", "end"),
    [
        ("2013-12", "2013-12-01", "2014-01-01"),
        ("2010-W14", "2010-04-05", "2010-04-12"),
        ("2009-W53", "2009-12-28", "2010-01-04"),
        ("2012-02-29", "2012-02-29", "2012-03-01"),
    ],
)
def test_period_bounds(period, start, end):
    assert period_bounds(period) == (pd.Timestamp(start), pd.Timestamp(end))


@pytest.mark.parametrize("period", ["2013-13", "2010-W54", "2011-02-30", "2010-W53", "last week"])
def test_impossible_periods_are_refused(period):
    with pytest.raises(MlopsError, match=f"'{period}'"):
        period_bounds(period)


def test_a_period_of_another_unit_says_how_to_write_one():
    with pytest.raises(MlopsError, match=r"not a week: .*YYYY-Www"):
        check_period("2010-04", "week")


def test_labels_follow_the_unit_and_convert_aware_times():
    stamps = pd.Series(pd.to_datetime(["2010-01-03 23:30", "2010-01-04 00:10", None]))
    assert period_labels(stamps, "week").tolist()[:2] == ["2009-W53", "2010-W01"]
    assert period_labels(stamps, "day").tolist()[:2] == ["2010-01-03", "2010-01-04"]
    assert pd.isna(period_labels(stamps, "month").iloc[2])
    aware = pd.Series(pd.to_datetime(["2010-01-04 03:30"], utc=True))
    # 03:30 UTC is still Sunday evening in New York: the week before
    assert period_labels(aware, "week", "America/New_York").tolist() == ["2009-W53"]
    assert naive_in(aware, None).iloc[0] == pd.Timestamp("2010-01-04 03:30")


def test_expand_periods_ranges_and_lists():
    assert expand_periods("2009-W52..2010-W02") == ["2009-W52", "2009-W53", "2010-W01", "2010-W02"]
    assert expand_periods("2012-02-28..2012-03-01") == ["2012-02-28", "2012-02-29", "2012-03-01"]
    assert expand_periods("2013-11..2014-01", "month") == ["2013-11", "2013-12", "2014-01"]
    assert expand_periods("2010-W03, 2010-W05") == ["2010-W03", "2010-W05"]
    with pytest.raises(MlopsError, match="backwards"):
        expand_periods("2010-W05..2010-W01")
    with pytest.raises(MlopsError, match="not a week"):
        expand_periods("2010-W05,2010-02", "week")
