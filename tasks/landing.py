"""Cut a monthly batch out of source tables, as an upstream system would deliver it."""

from __future__ import annotations

import re

import pandas as pd

from tasks.errors import MlopsError
from tasks.usecase import Lookup, PeriodColumns

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
