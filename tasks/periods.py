"""Batch periods of any length: calendar months (``2013-05``), ISO weeks (``2010-W14``) or days (``2010-04-05``).

A period's text names its unit, so a batch folder, a curated snapshot and a scored window carry their period
as plain text that sorts in time order within one unit. Bounds are naive timestamps in the use case's period
time zone; timezone-aware times are converted to that zone before they are compared.
"""

from __future__ import annotations

import re

import pandas as pd

from tasks.errors import MlopsError

PeriodUnit = str  # "month" | "week" | "day"; the config model narrows it
_FORMATS = {
    "month": (re.compile(r"^\d{4}-(0[1-9]|1[0-2])$"), "YYYY-MM (e.g. 2013-05)"),
    "week": (re.compile(r"^\d{4}-W(0[1-9]|[1-4]\d|5[0-3])$"), "YYYY-Www, an ISO week (e.g. 2010-W14)"),
    "day": (re.compile(r"^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])$"), "YYYY-MM-DD (e.g. 2010-04-05)"),
}


def unit_of(period: str) -> str:
    """The unit a period's text is written in.

    Raises:
        MlopsError: the text is no month, ISO week or day.
    """
    for unit, (pattern, _) in _FORMATS.items():
        if pattern.match(period.strip()):
            return unit
    raise MlopsError(f"period '{period}' is not a month (YYYY-MM), an ISO week (YYYY-Www) or a day (YYYY-MM-DD)")


def check_period(period: str, unit: str) -> str:
    """The period, stripped, when it is written in ``unit``.

    Raises:
        MlopsError: another unit or no period at all; the message says how to write one.
    """
    text = period.strip()
    if unit_of(text) != unit:
        raise MlopsError(f"period '{period}' is not a {unit}: this use case's periods are written {_FORMATS[unit][1]}")
    period_bounds(text)
    return text


def period_bounds(period: str) -> tuple[pd.Timestamp, pd.Timestamp]:
    """Start (inclusive) and end (exclusive) of a period, naive.

    Raises:
        MlopsError: malformed period, or a day or ISO week that does not exist (2010-02-30, 2009-W53).
    """
    unit = unit_of(period)
    text = period.strip()
    try:
        if unit == "month":
            start = pd.Timestamp(f"{text}-01")
            return start, start + pd.offsets.MonthBegin(1)
        if unit == "week":
            start = pd.Timestamp.fromisocalendar(int(text[:4]), int(text[6:]), 1)
            if start.isocalendar()[:2] != (int(text[:4]), int(text[6:])):
                raise ValueError(text)
            return start, start + pd.Timedelta(days=7)
        start = pd.Timestamp(text)
        return start, start + pd.Timedelta(days=1)
    except ValueError:
        raise MlopsError(f"period '{period}' does not exist in the calendar") from None


def naive_in(stamps: pd.Series, timezone: str | None) -> pd.Series:
    """Timestamps as naive wall-clock times of ``timezone`` (aware ones converted; naive ones kept as they are)."""
    if isinstance(stamps.dtype, pd.DatetimeTZDtype):
        return stamps.dt.tz_convert(timezone or "UTC").dt.tz_localize(None)
    return stamps


def period_labels(stamps: pd.Series, unit: str, timezone: str | None = None) -> pd.Series:
    """The period each timestamp falls in, as text of ``unit`` (null where the time is null)."""
    local = naive_in(stamps, timezone)
    if unit == "month":
        labels = local.dt.strftime("%Y-%m")
    elif unit == "day":
        labels = local.dt.strftime("%Y-%m-%d")
    else:
        iso = local.dt.isocalendar()
        labels = iso["year"].astype("str") + "-W" + iso["week"].astype("str").str.zfill(2)
    return labels.where(local.notna()).astype("str").where(local.notna())


def next_period(period: str) -> str:
    """The period right after ``period``, in the same unit."""
    _, end = period_bounds(period)
    return period_labels(pd.Series([end]), unit_of(period)).iloc[0]


def expand_periods(spec: str, unit: str | None = None) -> list[str]:
    """``A..B`` (inclusive) or ``A,B,C`` to a list of periods in order; every period in one unit.

    Raises:
        MlopsError: a period is malformed or of another unit, the range runs backwards, or nothing is given.
    """
    if ".." in spec:
        first, last = (part.strip() for part in spec.split("..", 1))
        unit = unit or unit_of(first)
        check_period(first, unit), check_period(last, unit)
        if period_bounds(last)[0] < period_bounds(first)[0]:
            raise MlopsError(f"period range '{spec}' runs backwards")
        periods = [first]
        while periods[-1] != last:
            periods.append(next_period(periods[-1]))
        return periods
    periods = [part.strip() for part in spec.split(",") if part.strip()]
    if not periods:
        raise MlopsError("no period given")
    unit = unit or unit_of(periods[0])
    return [check_period(p, unit) for p in periods]
