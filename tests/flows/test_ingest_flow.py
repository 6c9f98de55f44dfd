"""The ingestion flow on real slices of 2013: happy path, idempotency, and every kind of bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from batches import fixture_tables, folder_bytes, write_batch

from flows.ingest import ingest
from tasks.errors import ConfigError, InputDataError, StorageError

ROWS = 400


def read_snapshot(result: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    return pd.read_parquet(result["data_uri"]), pd.read_parquet(result["quarantine_uri"])


def assert_conserved(result: dict) -> None:
    curated, quarantine = read_snapshot(result)
    assert len(curated) == result["rows_curated"]
    assert len(quarantine) == result["rows_quarantined"]
    assert result["rows_in"] == result["rows_curated"] + result["rows_quarantined"]


def test_ingest_writes_a_versioned_snapshot_with_manifest_and_data_docs(home, fixture_batch):
    result = ingest(input_uri=str(fixture_batch))
    assert result["status"] == "ok" and result["created"] is True
    assert result["rows_in"] == ROWS
    assert_conserved(result)
    snapshot = Path(result["snapshot_uri"])
    assert snapshot.name == f"v={result['version']}"
    manifest = json.loads((snapshot / "manifest.json").read_text())
    assert manifest["source_batch"]["batch_id"] is None or manifest["source_batch"]["uri"] == str(fixture_batch)
    assert manifest["flow_run_id"]
    assert manifest["schema"]["is_late"] == "Int8"
    assert (snapshot / "validation" / "index.html").is_file()
    latest = json.loads((snapshot.parent / "latest.json").read_text())
    assert latest["version"] == result["version"]
    curated, _ = read_snapshot(result)
    assert not {"dep_delay", "arr_delay", "air_time", "dep_time", "arr_time"} & set(curated.columns)
    assert curated["tailnum"].dropna().str.startswith("h_").all()


def test_no_raw_pii_in_snapshot_quarantine_or_data_docs(home, fixture_batch):
    result = ingest(input_uri=str(fixture_batch))
    raw_tails = set(fixture_tables()["flights"]["tailnum"].dropna())
    snapshot = Path(result["snapshot_uri"])
    everything = b"".join(p.read_bytes() for p in snapshot.rglob("*") if p.is_file())
    leaked = [t for t in raw_tails if t.encode() in everything]
    assert not leaked


def test_reingesting_the_same_batch_writes_nothing_new(home, fixture_batch):
    first = ingest(input_uri=str(fixture_batch))
    snapshot = Path(first["snapshot_uri"])
    before = {p: p.stat().st_mtime_ns for p in snapshot.rglob("*")}
    second = ingest(input_uri=str(fixture_batch))
    assert second["version"] == first["version"] and second["created"] is False
    assert {p: p.stat().st_mtime_ns for p in snapshot.rglob("*")} == before
    assert len(list(snapshot.parent.glob("v=*"))) == 1


def test_batch_without_manifest_needs_the_period(home, tmp_path):
    folder = write_batch(tmp_path / "b", fixture_tables(), period=None)
    with pytest.raises(InputDataError, match="pass the period"):
        ingest(input_uri=str(folder))
    assert ingest(input_uri=str(folder), period="2013-01")["rows_curated"] > 0


def test_parquet_batch_is_ingested_like_csv(home, tmp_path, fixture_batch):
    csv_result = ingest(input_uri=str(fixture_batch))
    folder = write_batch(tmp_path / "pq", fixture_tables(), fmt="parquet")
    pq_result = ingest(input_uri=str(folder))
    assert pq_result["rows_curated"] == csv_result["rows_curated"]


# ---- rows that fail go to quarantine with their reason; nothing is lost


def _quarantined(tmp_path, flights: pd.DataFrame, weather: pd.DataFrame | None = None) -> tuple[dict, pd.DataFrame]:
    tables = fixture_tables()
    folder = write_batch(
        tmp_path / "bad", {"flights": flights, "weather": tables["weather"] if weather is None else weather}
    )
    result = ingest(input_uri=str(folder))
    assert_conserved(result)
    return result, read_snapshot(result)[1]


@pytest.mark.parametrize(
    ("column", "value", "reason"),
    [
        ("distance", "far", "type(distance:float)"),
        ("distance", "-50", "between(distance)"),
        ("arr_delay", "99999", "between(arr_delay)"),
        ("carrier", "ZZ", "in_set(carrier)"),
        ("origin", "XXX", "in_set(origin)"),
        ("day", "31", None),  # moves the flight inside January: no problem
    ],
)
def test_bad_values_are_quarantined_with_the_reason(home, tmp_path, column, value, reason):
    flights = fixture_tables()["flights"]
    flights.loc[[3, 7], column] = value
    result, quarantine = _quarantined(tmp_path, flights)
    if reason is None:
        assert result["rows_quarantined"] == 0
        return
    assert result["rows_quarantined"] == 2
    assert all(reason in r for r in quarantine["quarantine_reasons"])
    assert {"reason": reason, "rows": 2} in result["quarantine_reasons"]


def test_duplicate_keys_and_dates_outside_the_month_are_quarantined(home, tmp_path):
    flights = fixture_tables()["flights"]
    off = flights.iloc[[10]].assign(month="2", day="1")
    result, quarantine = _quarantined(tmp_path, pd.concat([flights, flights.iloc[[0, 1]], off], ignore_index=True))
    reasons = set(quarantine["quarantine_reasons"])
    assert result["rows_in"] == ROWS + 3 and result["rows_quarantined"] == 3
    assert any(r.startswith("duplicate_key(") for r in reasons)
    assert "outside_period(sched_dep_local:2013-01)" in reasons


def test_extra_unknown_column_is_allowed_reported_and_not_curated(home, tmp_path):
    result, _ = _quarantined(tmp_path, fixture_tables()["flights"].assign(gate="B12"))
    assert result["extra_columns"] == ["gate"]
    assert "gate" not in pd.read_parquet(result["data_uri"]).columns


# ---- batches that cannot be trusted fail with a message naming the problem; the raw batch stays as it was


def _rejected(tmp_path, tables: dict[str, pd.DataFrame], match: str, fmt: str = "csv") -> Path:
    folder = write_batch(tmp_path / "bad", tables, fmt=fmt)
    before = folder_bytes(folder)
    with pytest.raises(InputDataError, match=match):
        ingest(input_uri=str(folder))
    assert folder_bytes(folder) == before
    return folder


def test_too_many_bad_rows_reject_the_batch_and_keep_the_evidence(home, tmp_path):
    tables = fixture_tables()
    tables["flights"].loc[:60, "carrier"] = "ZZ"
    _rejected(
        tmp_path,
        tables,
        r"rejected: 15\.2% of rows failed .* above the 5\.0% limit \(in_set\(carrier\): 61 rows",
    )
    reports = list((home / "lake").rglob("rejected/*/*/report.json"))
    assert len(reports) == 1
    report = json.loads(reports[0].read_text())
    assert report["rows_in"] == report["rows_curated"] + report["rows_quarantined"] == ROWS
    assert not list((home / "lake").rglob("curated/*/v=*"))


def test_header_only_batch_fails_on_row_count(home, tmp_path):
    tables = fixture_tables()
    _rejected(
        tmp_path,
        {"flights": tables["flights"].head(0), "weather": tables["weather"]},
        "row_count_between failed",
    )


def test_missing_required_column_fails_naming_it(home, tmp_path):
    tables = fixture_tables()
    tables["flights"] = tables["flights"].drop(columns=["distance"])
    _rejected(tmp_path, tables, r"flights: missing required column\(s\): distance")


def test_all_null_required_column_rejects_the_batch(home, tmp_path):
    tables = fixture_tables()
    tables["flights"]["carrier"] = None
    _rejected(tmp_path, tables, r"not_null\(carrier\)")


def test_all_null_optional_column_fails_its_null_share_check(home, tmp_path):
    tables = fixture_tables()
    tables["weather"]["pressure"] = None
    _rejected(tmp_path, tables, r"null_fraction_at_most\(pressure\) failed")


def test_wrong_delimiter_is_named(home, tmp_path):
    folder = write_batch(tmp_path / "bad", fixture_tables())
    frame = fixture_tables()["flights"]
    frame.to_csv(folder / "flights.csv", index=False, sep=";")
    with pytest.raises(InputDataError, match="wrong delimiter"):
        ingest(input_uri=str(folder))


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"", "file is empty"),
        ("year,month\n2013,1,caf\xe9\n".encode("latin-1"), r"not valid UTF-8 \(byte 0xe9"),
    ],
)
def test_unreadable_csv_is_named(home, tmp_path, content, match):
    folder = write_batch(tmp_path / "bad", fixture_tables())
    (folder / "flights.csv").write_bytes(content)
    with pytest.raises(InputDataError, match=match):
        ingest(input_uri=str(folder))


def test_truncated_parquet_is_named(home, tmp_path):
    folder = write_batch(tmp_path / "bad", fixture_tables(), fmt="parquet")
    data = (folder / "flights.parquet").read_bytes()
    (folder / "flights.parquet").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputDataError, match="not a readable parquet file"):
        ingest(input_uri=str(folder))


def test_missing_input_is_named(home, tmp_path):
    with pytest.raises(StorageError, match="input not found"):
        ingest(input_uri=str(tmp_path / "nowhere"), period="2013-01")


def test_config_typo_is_named(home, tmp_path, monkeypatch, fixture_batch):
    config = tmp_path / "config"
    import shutil

    shutil.copytree(Path(__file__).resolve().parents[2] / "config", config)
    path = config / "usecases" / "flight_delay.yaml"
    path.write_text(path.read_text().replace("leaky_columns:", "leaky_colums:"))
    monkeypatch.setenv("MLOPS_CONFIG_DIR", str(config))
    with pytest.raises(ConfigError, match=r"usecases/flight_delay.yaml: unknown key 'leaky_colums'"):
        ingest(input_uri=str(fixture_batch))
