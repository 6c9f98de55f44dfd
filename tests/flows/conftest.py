"""Flow integration tests: real flows under one session-scoped Prefect test harness, real local backends."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from batches import fixture_tables, write_batch
from harness import prefect_test_api

PII_KEY = "test-only-pii-key-0123456789abcdef"


@pytest.fixture(scope="session", autouse=True)
def prefect_harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """One temporary Prefect API for the whole session (it takes seconds to start)."""
    with prefect_test_api():
        yield


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh MLOPS_HOME per test, the PII key in the environment (as a worker would get it)."""
    monkeypatch.setenv("MLOPS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MLOPS_PII_KEY", PII_KEY)
    monkeypatch.delenv("MLOPS_PROFILE", raising=False)
    return tmp_path / "home"


@pytest.fixture
def fixture_batch(tmp_path: Path) -> Path:
    """The real January slice as a landed batch folder."""
    return write_batch(tmp_path / "landing" / "2013-01", fixture_tables())
