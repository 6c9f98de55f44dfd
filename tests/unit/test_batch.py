import pandas as pd
import pytest

from tasks import batch as batch_logic
from tasks.errors import InputDataError
from tasks.expectations import ROW_ID, ExpectationResult, ExpectationSpec, ValidationReport

KEY = b"k" * 32


def test_prepare_batch_on_a_real_slice(raw_tables, usecase):
    prepared = batch_logic.prepare_batch(raw_tables, usecase, "2013-01", KEY)
    frame = prepared.frame
    assert len(frame) == len(raw_tables["flights"]) == 400
    assert prepared.reasons.empty
    assert frame["sched_dep_local"].dt.month.eq(1).all()
    assert frame["temp"].notna().mean() > 0.95  # weather joined
    assert frame["is_late"].isna().sum() == raw_tables["flights"]["arr_delay"].isna().sum()
    assert frame["tailnum"].dropna().str.startswith("h_").all()
    assert not set(raw_tables["flights"]["tailnum"].dropna()) & set(prepared.raw["tailnum"].dropna())


def test_prepare_batch_flags_duplicates_and_off_period_rows(raw_tables, usecase):
    flights = raw_tables["flights"]
    moved = flights.iloc[[5]].assign(month="2", day="3")
    tables = {**raw_tables, "flights": pd.concat([flights, flights.iloc[[0]], moved], ignore_index=True)}
    prepared = batch_logic.prepare_batch(tables, usecase, "2013-01", KEY)
    reasons = dict(zip(prepared.reasons[ROW_ID], prepared.reasons["reason"], strict=True))
    assert reasons[400].startswith("duplicate_key(")
    assert reasons[401] == "outside_period(sched_dep_local:2013-01)"
    assert 400 not in set(batch_logic.validation_frame(prepared)[ROW_ID])


def test_prepare_batch_fails_on_a_missing_lookup_column(raw_tables, usecase):
    tables = {**raw_tables, "weather": raw_tables["weather"].drop(columns=["temp"])}
    with pytest.raises(InputDataError, match=r"weather: missing required column.*temp"):
        batch_logic.prepare_batch(tables, usecase, "2013-01", KEY)


def _report(failed_rows: tuple[int, ...]) -> ValidationReport:
    spec = ExpectationSpec("between", column="distance", min_value=1, max_value=6000)
    return ValidationReport(
        results=(
            ExpectationResult(
                spec, success=not failed_rows, unexpected_count=len(failed_rows), failed_rows=failed_rows
            ),
        ),
        evaluated_rows=400,
    )


def test_split_batch_conserves_rows_and_explains_each_quarantined_row(raw_tables, usecase):
    tables = {
        **raw_tables,
        "flights": raw_tables["flights"].assign(distance=lambda f: f["distance"].where(f.index != 3, "far")),
    }
    prepared = batch_logic.prepare_batch(tables, usecase, "2013-01", KEY)
    split = batch_logic.split_batch(prepared, _report((3, 7)), usecase)
    assert len(split.curated) + len(split.quarantine) == split.rows_in == 400
    reasons = dict(zip(split.quarantine[ROW_ID], split.quarantine[batch_logic.QUARANTINE_REASONS], strict=True))
    assert reasons == {3: "between(distance); type(distance:float)", 7: "between(distance)"}
    assert split.quarantine.loc[split.quarantine[ROW_ID] == 3, "distance"].iloc[0] == "far"  # raw value kept
    assert not set(usecase.leaky_columns) & set(split.curated.columns)
    assert split.quarantine_fraction == pytest.approx(2 / 400)


def test_content_version_is_stable_and_sensitive(raw_tables, usecase):
    prepared = batch_logic.prepare_batch(raw_tables, usecase, "2013-01", KEY)
    curated = batch_logic.split_batch(prepared, _report(()), usecase).curated
    again = batch_logic.split_batch(
        batch_logic.prepare_batch(raw_tables, usecase, "2013-01", KEY), _report(()), usecase
    )
    assert batch_logic.content_version(curated) == batch_logic.content_version(again.curated)
    changed = curated.assign(distance=curated["distance"] + 1)
    assert batch_logic.content_version(changed) != batch_logic.content_version(curated)
