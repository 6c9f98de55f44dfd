"""The temporary Prefect API the flow-running test directories share, each from its own session fixture."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest


@contextmanager
def prefect_test_api() -> Iterator[None]:
    """A temporary Prefect API (it takes seconds to start), with Prefect/GX/MLflow telemetry and progress bars off."""
    from prefect.testing.utilities import prefect_test_harness

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
        mp.setenv("GX_ANALYTICS_ENABLED", "false")
        mp.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
        mp.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        with prefect_test_harness(server_startup_timeout=120):
            yield
