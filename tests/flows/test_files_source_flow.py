"""A use case whose data are files (a reference file and a later one, by glob), a PII key and a timestamp column,
landed and ingested through the real flows: the raw key never reaches curated rows, every row is accounted for.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

from flows.ingest import ingest
from flows.land import land
from tasks.errors import MlopsError

REPO = Path(__file__).resolve().parents[2]
PII_KEY = "test-only-pii-key-0123456789abcdef"

USECASE = {
    "name": "visits",
    "description": "Visits that end in a purchase.",
    "registered_model": "visits-model",
    "source": {"adapter": "files", "tables": {"visits": None}, "primary": "visits", "missing_values": ["-"]},
    "columns": {
        "visitor": {"type": "str"},
        "at": {"type": "datetime", "timezone": "Europe/Paris"},
        "pages": {"type": "int", "min": 0, "max": 500, "nullable": True, "max_null_fraction": 0.5},
        "bought": {"type": "float", "nullable": True, "max_null_fraction": 0.9},
    },
    "key": ["visitor"],
    "id_column": "visit_id",
    "time_column": "at",
    "period": {"unit": "week", "timezone": "Europe/Paris"},
    "target": {"name": "purchase", "source": "bought", "threshold": 1},
    "features": {"numeric": ["pages"], "categorical": [], "time_parts": ["hour"]},
    "pii": {"visitor": "hash"},
    "validation": {"max_quarantine_fraction": 0.5, "min_rows": 1, "max_rows": 1000},
    "split": {"validation_fraction": 0.2, "holdout_fraction": 0.2},
    "model": {"estimator": "logistic_regression", "decision_threshold": 0.5, "min_training_rows": 5},
    "kpi": {"name": "k", "top_fraction": 0.2},
    "gate": {"non_inferiority_margin": 0.01},
}


@pytest.fixture
def visits(tmp_path, monkeypatch) -> Path:
    data = tmp_path / "data"
    (data / "later").mkdir(parents=True)
    (data / "reference.csv").write_text(
        "visitor,at,pages,bought\n"
        "ann@example.org,2010-04-05 09:00:00,3,1\n"
        "bob@example.org,2010-04-05T08:00:00Z,5,0\n"  # an offset among naive values: mixed zones
        "cy@example.org,2010-04-06 10:00:00,-,0\n"
    )
    (data / "later" / "part-1.csv").write_text(
        "visitor,at,pages,bought\n"
        "dan@example.org,2010-04-07 11:00:00,7,\n"
        "ann@example.org,2010-04-08 12:00:00,2,1\n"  # the key again: a duplicate
        "eve@example.org,soon,1,0\n"  # no readable time: not landed in any week, counted in the manifest
        "fay@example.org,2010-04-12 00:30:00,4,1\n"  # Monday of the next week in Paris
    )
    config = tmp_path / "config"
    shutil.copytree(REPO / "config", config)
    spec = {
        **USECASE,
        "source": {
            **USECASE["source"],
            "tables": {"visits": [str(data / "reference.csv"), str(data / "later" / "*.csv")]},
        },
    }
    (config / "usecases" / "visits.yaml").write_text(yaml.safe_dump(spec))
    monkeypatch.setenv("MLOPS_CONFIG_DIR", str(config))
    monkeypatch.setenv("MLOPS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MLOPS_PII_KEY", PII_KEY)
    monkeypatch.delenv("MLOPS_PROFILE", raising=False)
    return data


@pytest.mark.integration
def test_files_with_a_pii_key_land_and_ingest_with_every_row_accounted_for(visits):
    batch = land(period="2010-W14", usecase="visits")
    assert batch["tables"]["visits"]["rows"] == 5 and batch["source_rows_without_time"] == 1
    assert [f["rows"] for f in batch["source_files"]["visits"]] == [3, 4]
    result = ingest(input_uri=batch["batch_uri"], usecase="visits")
    assert result["rows_in"] == result["rows_curated"] + result["rows_quarantined"] == 5
    reasons = {r["reason"] for r in result["quarantine_reasons"]}
    # the mixed-zone time is nulled, so its row also fails the time column's not-null check: both reasons kept
    assert reasons == {"mixed_timezones(at)", "not_null(at)", "duplicate_key(visitor)"}
    assert result["rows_quarantined"] == 2
    curated = pd.read_parquet(result["data_uri"])
    quarantined = pd.read_parquet(result["quarantine_uri"])
    for frame in (curated, quarantined):
        assert not frame.astype("str").apply(lambda c: c.str.contains("@example.org")).any().any()
    assert curated["visit_id"].str.startswith("h_").all() and (curated["visit_id"] == curated["visitor"]).all()
    assert curated["at"].dt.tz is None and int((curated["purchase"] == 1).sum()) == 1


@pytest.mark.integration
def test_an_empty_week_is_an_error_never_an_empty_batch(visits):
    with pytest.raises(MlopsError, match=r"no row of visits falls in period 2011-W14 \(the source holds 2010-04-05"):
        land(period="2011-W14", usecase="visits")
    with pytest.raises(MlopsError, match="is not a week"):
        land(period="2010-04", usecase="visits")
