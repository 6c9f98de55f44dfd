# ruff: noqa: F401, F811  (fixtures shared with another test module are imported, then requested by name)
"""Scoring refuses what a later join would double-count or what pyarrow cannot name: duplicate ids, columns.

Uses the session's champion of test_score_flow (trained once on January 2013) and February's snapshot.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_score_flow import configure, env, trained, write_input

from flows.score import score
from tasks.errors import InputDataError

ID = "flight_id"


@pytest.mark.parametrize("chunk_rows", [100_000, 2_000])  # one partition; duplicates across many partitions
def test_duplicate_ids_are_quarantined_with_a_reason_and_nothing_is_lost(
    env,
    trained,
    tmp_path,
    configure,
    chunk_rows,
):
    configure(scoring={"chunk_rows": chunk_rows})
    feb = trained["feb_frame"].head(6_000)
    copies = feb.sample(1_000, random_state=3)
    batch = pd.concat([feb, copies], ignore_index=True).sample(frac=1.0, random_state=4).reset_index(drop=True)
    source = write_input(batch, tmp_path / "in" / "dupes.parquet", row_group_size=1_500)
    result = score(input_uri=source, output_uri=str(tmp_path / "out"))
    reason = f"duplicate {ID}: an earlier row of the batch has it"
    assert result["rows_in"] == 7_000 == result["rows_scored"] + result["rows_quarantined"]
    assert result["quarantine_reasons"][reason] == 1_000
    scores = pd.read_parquet(result["scores_uri"])
    assert scores[ID].is_unique
    quarantined = _quarantined(result, reason)
    assert len(quarantined) == 1_000 and set(quarantined[ID]) == set(copies[ID])
    others = _quarantined(result, None)
    assert set(scores[ID]) | set(others[ID]) == set(feb[ID])  # every id is scored once or quarantined


def _quarantined(result: dict, reason: str | None) -> pd.DataFrame:
    folder = Path(result["quarantine_uri"])
    frame = pd.read_parquet(folder) if folder.exists() else pd.DataFrame({ID: [], "quarantine_reasons": []})
    if reason is None:
        return frame
    return frame[frame["quarantine_reasons"].astype(str).str.contains(reason, regex=False)]


def test_two_columns_of_the_same_name_get_one_line_naming_the_column(env, trained, tmp_path):
    feb = trained["feb_frame"].head(500)
    table = pa.Table.from_pandas(feb, preserve_index=False)
    table = table.append_column(pa.field("temp", pa.float64()), table.column("temp"))
    path = tmp_path / "in" / "twice.parquet"
    path.parent.mkdir(parents=True)
    pq.write_table(table, path)
    with pytest.raises(InputDataError, match=r"has 2 columns named 'temp': column names must be unique") as err:
        score(input_uri=str(path), output_uri=str(tmp_path / "out"))
    assert "\n" not in str(err.value) and str(path) in str(err.value)
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").rglob("*.parquet"))
