"""Pure cleaning steps of ingestion: types, joins, derived columns, duplicates, batch period.

Every step that can reject rows returns a *reasons* frame (``_row``, ``reason``) instead of dropping them, so
the caller can quarantine each row with why, and rows in = rows curated + rows quarantined always holds.
"""

from __future__ import annotations

import operator

import pandas as pd

from tasks.errors import InputDataError
from tasks.expectations import ROW_ID
from tasks.periods import naive_in, period_bounds
from tasks.usecase import ColumnSpec, DatetimeFromParts, Lookup, TargetSpec

REASON = "reason"
_COMPARE = {">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt}


def empty_reasons() -> pd.DataFrame:
    return pd.DataFrame({ROW_ID: pd.Series(dtype="int64"), REASON: pd.Series(dtype="str")})


def reasons_for(rows: pd.Series, reason: str) -> pd.DataFrame:
    """A reasons frame giving ``reason`` to each ``_row`` in ``rows``."""
    return pd.DataFrame({ROW_ID: rows.astype("int64").to_numpy(), REASON: reason})


def check_columns(frame: pd.DataFrame, specs: dict[str, ColumnSpec], table: str) -> list[str]:
    """Fail on missing required columns; return the extra (undeclared) ones, which are allowed.

    Raises:
        InputDataError: naming the missing columns (and hinting at a wrong delimiter when there is one column).
    """
    missing = [c for c, spec in specs.items() if spec.required and c not in frame.columns]
    if missing:
        hint = ""
        columns = [str(c) for c in frame.columns if c != ROW_ID]
        if len(columns) == 1:
            hint = f" (the file has a single column '{columns[0][:60]}': wrong delimiter?)"
        raise InputDataError(f"{table}: missing required column(s): {', '.join(missing)}{hint}")
    return [str(c) for c in frame.columns if c not in specs and c != ROW_ID]


def with_row_ids(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with a ``_row`` id 0..n-1 that follows each input row through every step."""
    return frame.reset_index(drop=True).assign(**{ROW_ID: pd.RangeIndex(len(frame)).to_numpy()})


def coerce_types(raw: pd.DataFrame, specs: dict[str, ColumnSpec]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Cast declared columns to their types; values that do not parse become null and get a reason."""
    typed = {}
    reasons = [empty_reasons()]
    for name, spec in specs.items():
        if name not in raw.columns:
            continue
        original = raw[name]
        present = original.notna() & (original.astype("str").str.strip() != "")
        converted = _convert(original.where(present), spec)
        bad = present & converted.isna()
        if spec.type == "datetime":
            mixed = mixed_offsets(original.where(present & converted.notna()))
            if mixed.any():
                reasons.append(reasons_for(raw.loc[mixed, ROW_ID], f"mixed_timezones({name})"))
                bad &= ~mixed
                converted = converted.where(~mixed)
        if spec.type == "int":
            fractional = converted.notna() & (converted % 1 != 0)
            bad |= fractional
            converted = converted.where(~fractional).astype("Int64")
        if bad.any():
            reasons.append(reasons_for(raw.loc[bad, ROW_ID], f"type({name}:{spec.type})"))
        typed[name] = converted
    return raw.assign(**typed), pd.concat(reasons, ignore_index=True)


_OFFSET = r"(?:Z|[+-]\d{2}(?::?\d{2})?)$"


def mixed_offsets(values: pd.Series) -> pd.Series:
    """Rows of a text time column written the minority way, when some values carry a UTC offset and others not.

    Such a column mixes time zones: a naive value cannot be placed next to an offset one without guessing.
    """
    if not (values.dtype == "str" or values.dtype == object):
        return pd.Series(False, index=values.index)
    text = values.astype("str").str.strip()
    with_offset = text.str.contains(_OFFSET, regex=True) & values.notna()
    naive = values.notna() & ~with_offset
    if not with_offset.any() or not naive.any():
        return pd.Series(False, index=values.index)
    return naive if naive.sum() <= with_offset.sum() else with_offset


def _convert(values: pd.Series, spec: ColumnSpec) -> pd.Series:
    if spec.type in ("int", "float"):
        return pd.to_numeric(values, errors="coerce").astype("float64")
    if spec.type == "datetime":
        return to_utc(values, spec.timezone or "UTC")
    return values.astype("str").str.strip().where(values.notna())


def to_utc(values: pd.Series, timezone: str) -> pd.Series:
    """UTC timestamps; values without an offset are wall-clock times of the column's declared ``timezone``."""
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        return values.dt.tz_convert("UTC")
    if pd.api.types.is_datetime64_dtype(values):
        return values.dt.tz_localize(timezone, ambiguous="NaT", nonexistent="NaT").dt.tz_convert("UTC")
    text = values.astype("str").str.strip().where(values.notna())
    with_offset = text.str.contains(_OFFSET, regex=True).fillna(False).astype(bool)
    out = pd.Series(pd.NaT, index=values.index, dtype="datetime64[us, UTC]")
    if with_offset.any():
        out[with_offset] = pd.to_datetime(text[with_offset], errors="coerce", utc=True, format="ISO8601")
    plain = ~with_offset & text.notna()
    if plain.any():
        local = pd.to_datetime(text[plain], errors="coerce", format="ISO8601")
        out[plain] = local.dt.tz_localize(timezone, ambiguous="NaT", nonexistent="NaT").dt.tz_convert("UTC")
    return out


def join_lookup(primary: pd.DataFrame, table: pd.DataFrame, lookup: Lookup) -> pd.DataFrame:
    """Left-join a side table on its keys; a duplicated side key keeps its first row so no input row multiplies."""
    wanted = [*lookup.join_on, *(c for c in lookup.columns if c not in lookup.join_on)]
    side = table[[c for c in wanted if c in table.columns]].drop_duplicates(list(lookup.join_on), keep="first")
    side = side.drop(columns=[ROW_ID], errors="ignore")
    clash = [c for c in side.columns if c in primary.columns and c not in lookup.join_on]
    joined = primary.drop(columns=clash).merge(side, on=list(lookup.join_on), how="left", validate="many_to_one")
    return joined


def derive_time(frame: pd.DataFrame, spec: DatetimeFromParts) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Local timestamp from integer parts; impossible dates (e.g. 31 February) get a reason."""
    parts = {p: frame[getattr(spec, p)].astype("float64") for p in ("year", "month", "day", "hour", "minute")}
    stamp = pd.to_datetime(pd.DataFrame(parts), errors="coerce")
    complete = pd.DataFrame(parts).notna().all(axis=1)
    bad = complete & stamp.isna()
    reasons = reasons_for(frame.loc[bad, ROW_ID], f"derive({spec.name})") if bad.any() else empty_reasons()
    return frame.assign(**{spec.name: stamp}), reasons


def outside_period(frame: pd.DataFrame, time_column: str, period: str, timezone: str | None = None) -> pd.DataFrame:
    """Reasons for rows whose time is outside the batch period (aware times are read in ``timezone``)."""
    start, end = period_bounds(period)
    stamp = naive_in(frame[time_column], timezone)
    bad = stamp.notna() & ((stamp < start) | (stamp >= end))
    return reasons_for(frame.loc[bad, ROW_ID], f"outside_period({time_column}:{period})")


def derive_label(frame: pd.DataFrame, target: TargetSpec) -> pd.DataFrame:
    """Binary label from its source column; a null or absent source (outcome not known yet) gives a null label."""
    if target.source not in frame.columns:
        return frame.assign(**{target.name: pd.Series(pd.NA, index=frame.index, dtype="Int8")})
    source = frame[target.source].astype("float64")
    label = _COMPARE[target.operator](source, target.threshold).astype("Int8").where(source.notna())
    return frame.assign(**{target.name: label.astype("Int8")})


def derive_id(frame: pd.DataFrame, key: tuple[str, ...], id_column: str) -> pd.DataFrame:
    """A readable string id joining the key columns with ``_``."""
    parts = [frame[c].astype("str").fillna("") for c in key]
    ident = parts[0].str.cat(parts[1:], sep="_") if len(parts) > 1 else parts[0]
    return frame.assign(**{id_column: ident})


def duplicate_keys(frame: pd.DataFrame, key: tuple[str, ...]) -> pd.DataFrame:
    """Reasons for every repeat of a key after its first occurrence (the first one is kept)."""
    repeated = frame.duplicated(list(key), keep="first")
    return reasons_for(frame.loc[repeated, ROW_ID], f"duplicate_key({','.join(key)})")
