"""Cut a monthly batch out of source tables, as an upstream system would deliver it."""

from __future__ import annotations

import re

import pandas as pd

from tasks.cleaning import to_utc
from tasks.errors import MlopsError
from tasks.periods import naive_in, period_bounds
from tasks.usecase import ColumnSpec, Lookup, PeriodColumns

_PERIOD = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


def parse_period(period: str) -> tuple[int, int]:
    """``YYYY-MM`` to (year, month).

    Raises:
        MlopsError: the text is not a calendar month.
    """
    match = _PERIOD.match(period.strip())
    if not match:
        raise MlopsError(f"period '{period}' is not a month written YYYY-MM")
    return int(match.group(1)), int(match.group(2))


def select_period(primary: pd.DataFrame, columns: PeriodColumns, period: str) -> pd.DataFrame:
    """Rows of the primary table that belong to ``period`` (raw values compared as numbers)."""
    year, month = parse_period(period)
    years = pd.to_numeric(primary[columns.year], errors="coerce")
    months = pd.to_numeric(primary[columns.month], errors="coerce")
    return primary[(years == year) & (months == month)].reset_index(drop=True)


def select_lookup_rows(side: pd.DataFrame, primary: pd.DataFrame, lookup: Lookup) -> pd.DataFrame:
    """Rows of a side table whose join key occurs in ``primary``: what the batch needs, nothing more."""
    keys = primary[list(lookup.join_on)].drop_duplicates()
    return side.merge(keys, on=list(lookup.join_on), how="inner").reset_index(drop=True)


def expand_months(spec: str) -> list[str]:
    """``2013-01..2013-03`` (inclusive) or ``2013-01,2013-05`` to a list of months in order.

    Raises:
        MlopsError: a month is malformed or the range runs backwards.
    """
    if ".." in spec:
        first, last = (part.strip() for part in spec.split("..", 1))
        (y0, m0), (y1, m1) = parse_period(first), parse_period(last)
        if (y1, m1) < (y0, m0):
            raise MlopsError(f"month range '{spec}' runs backwards")
        count = (y1 - y0) * 12 + (m1 - m0) + 1
        return [f"{y0 + (m0 - 1 + i) // 12:04d}-{(m0 - 1 + i) % 12 + 1:02d}" for i in range(count)]
    months = [part.strip() for part in spec.split(",") if part.strip()]
    for month in months:
        parse_period(month)
    if not months:
        raise MlopsError("no month given")
    return months


def select_by_time(
    primary: pd.DataFrame, column: str, spec: ColumnSpec, period: str, timezone: str | None
) -> tuple[pd.DataFrame, int]:
    """Rows whose raw time value falls in ``period``, and how many rows have no readable time at all.

    Raises:
        MlopsError: the table has no such column.
    """
    if column not in primary.columns:
        raise MlopsError(f"the primary table has no time column '{column}' (columns: {', '.join(primary.columns)})")
    values = primary[column]
    stamps = naive_in(to_utc(values, spec.timezone or "UTC"), timezone or spec.timezone)
    start, end = period_bounds(period)
    inside = stamps.notna() & (stamps >= start) & (stamps < end)
    return primary[inside].reset_index(drop=True), int(stamps.isna().sum())


def time_range(primary: pd.DataFrame, column: str, spec: ColumnSpec) -> str:
    """``first .. last`` of a raw time column, for messages; "no readable time" when none parses."""
    stamps = to_utc(primary[column], spec.timezone or "UTC") if column in primary.columns else pd.Series([])
    if stamps.notna().sum() == 0:
        return "no readable time"
    return f"{stamps.min():%Y-%m-%d %H:%M} .. {stamps.max():%Y-%m-%d %H:%M} UTC"


def check_not_empty(rows: int, table: str, period: str, have: str) -> None:
    """An empty landed batch is an error, never a silent success.

    Raises:
        MlopsError: no row of the period; the message says what the source holds.
    """
    if rows == 0:
        raise MlopsError(f"no row of {table} falls in period {period} (the source holds {have})")
