"""Services tests: one session-scoped Prefect API and two real model versions trained on January 2013.

The gate is relaxed and the model made small (fewer boosting rounds) for this setup only: the tests are
about serving, not about model quality. Version 1 and version 2 come from two training runs on the same
curated month; the session ends with @champion on version 2 (the second registration is promoted).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from conftest_timings import TIMINGS
from harness import prefect_test_api

REPO = Path(__file__).resolve().parents[2]
USECASE = "flight_delay"
MODEL = "flight-delay-classifier"
PII_KEY = "test-only-pii-key-0123456789abcdef"


@pytest.fixture(scope="session", autouse=True)
def prefect_harness() -> Iterator[None]:
    """One temporary Prefect API for the whole session (it takes seconds to start)."""
    with prefect_test_api():
        yield


@pytest.fixture(scope="session")
def served(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """January and February 2013 ingested; two versions trained on January and registered (champion: 2)."""
    from flows.ingest import ingest
    from flows.land import land
    from flows.register import register
    from flows.train import train

    home = tmp_path_factory.mktemp("serve-home")
    config = home.parent / "serve-config"
    shutil.copytree(REPO / "config", config)
    usecase_file = config / "usecases" / f"{USECASE}.yaml"
    data = yaml.safe_load(usecase_file.read_text())
    data["gate"] = {**data["gate"], "floors": {}, "max_brier": None, "max_calibration_error": None}
    data["gate"]["non_inferiority_margin"] = 1.0
    data["model"]["params"] = {**data["model"]["params"], "max_iter": 25}
    usecase_file.write_text(yaml.safe_dump(data))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLOPS_HOME", str(home))
        mp.setenv("MLOPS_PII_KEY", PII_KEY)
        mp.setenv("MLOPS_CONFIG_DIR", str(config))
        mp.setenv("OMP_NUM_THREADS", "1")
        mp.delenv("MLOPS_PROFILE", raising=False)
        snapshots = {m: ingest(input_uri=land(period=m)["batch_uri"]) for m in ("2013-01", "2013-02")}
        versions = []
        for _ in range(2):
            run = train(months="2013-01")
            outcome = register(run_id=run["run_id"])
            assert outcome["promoted"], outcome
            versions.append(outcome["version"])
    return {
        "home": home,
        "config": config,
        "versions": versions,
        "feb_frame": pd.read_parquet(snapshots["2013-02"]["data_uri"]),
    }


@pytest.fixture
def service_env(served: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh MLOPS_HOME sharing the session's registry; its lake (prediction log) is its own."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "mlflow").symlink_to(served["home"] / "mlflow")
    lake = home / "lake" / USECASE
    lake.mkdir(parents=True)
    (lake / "curated").symlink_to(served["home"] / "lake" / USECASE / "curated")
    monkeypatch.setenv("MLOPS_HOME", str(home))
    monkeypatch.setenv("MLOPS_PII_KEY", PII_KEY)
    monkeypatch.setenv("MLOPS_CONFIG_DIR", str(served["config"]))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.delenv("MLOPS_PROFILE", raising=False)
    return home


def request_rows(frame: pd.DataFrame, rows: int, start: int = 0) -> list[dict]:
    """Rows of a curated frame as a client sends them: the model inputs and the id, JSON values."""
    from flows.settings import load_usecase
    from tasks.training import model_inputs

    uc = load_usecase(USECASE)
    part = frame.iloc[start : start + rows]
    records = []
    for _, row in part.iterrows():
        record = {uc.id_column: str(row[uc.id_column])}
        for column in model_inputs(uc):
            value = row[column]
            if pd.isna(value):
                record[column] = None
            elif isinstance(value, pd.Timestamp):
                record[column] = value.isoformat()
            elif hasattr(value, "item"):
                record[column] = value.item()
            else:
                record[column] = value
        records.append(record)
    return records


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Print the timings the service tests recorded, with the machine's load."""
    if not TIMINGS:
        return
    load = os.getloadavg()
    terminalreporter.section(f"service timings (load {load[0]:.1f} on {os.cpu_count()} cores, OMP_NUM_THREADS=1)")
    for name, seconds in TIMINGS.items():
        terminalreporter.write_line(f"{name:<48} {seconds:8.2f}")
