"""Unit tests of tasks/: pure functions, no Prefect, no network."""

from pathlib import Path

import pandas as pd
import pytest
import yaml

from tasks.usecase import UseCase

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def usecase() -> UseCase:
    raw = yaml.safe_load((REPO / "config" / "usecases" / "flight_delay.yaml").read_text())
    return UseCase.model_validate(raw)


@pytest.fixture
def raw_tables() -> dict[str, pd.DataFrame]:
    """A real slice of January 2013 as text, as it lands."""
    folder = REPO / "tests" / "fixtures" / "raw_2013_01"

    def read(name):
        return pd.read_csv(folder / f"{name}.csv", dtype="str", keep_default_na=False, na_values=["", "NA"])

    return {"flights": read("flights"), "weather": read("weather")}
