"""Fault tests: real flows under one session-scoped Prefect test harness, real local backends, injected faults."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from harness import prefect_test_api


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """One temporary Prefect API for the session, for the tests that run flows (it takes seconds to start)."""
    with prefect_test_api():
        yield
