"""The ``mlops`` console command. ``main`` sets process defaults, then hands over to the Typer app.

Environment defaults are set here, at start, and never at import time of any other module: Prefect and
Great Expectations read them when first used.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from adapters import compute
from flows.settings import load_settings, mlops_home
from tasks.errors import ConfigError


def process_defaults(home: Path) -> dict[str, str]:
    """Environment the embedded default needs: Prefect state under MLOPS_HOME, no telemetry, no progress bars."""
    return {
        "PREFECT_HOME": str(home / "prefect"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        # timeouts that fit a busy machine (README "Under CPU load"): Prefect's 20 s start-up, 60 s API reads and
        # 10 s SQLite waits fail whole commands at load 10-20 ("ReadTimeout: timed out"); a healthy server
        # answers far sooner, so larger limits cost nothing when the machine is idle
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "300",
        "PREFECT_API_REQUEST_TIMEOUT": "300",
        "PREFECT_SERVER_DATABASE_TIMEOUT": "60",
        "PREFECT_SERVER_DATABASE_CONNECTION_TIMEOUT": "30",
        "PREFECT_TASKS_DEFAULT_NO_CACHE": "true",
        "PREFECT_LOGGING_LEVEL": "WARNING",
        "GX_ANALYTICS_ENABLED": "false",
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "true",
        # Prefect leaves runner storage in TMPDIR: keep it inside the project's state folder
        "TMPDIR": str(home / "tmp"),
    }


def configured_model_threads() -> int:
    """``compute.model_threads`` of the config; the default when the config is broken (the command says why)."""
    try:
        return load_settings().compute.model_threads
    except ConfigError:
        return compute.DEFAULT_MODEL_THREADS


def main() -> None:
    home = mlops_home()
    for key, value in process_defaults(home).items():
        os.environ.setdefault(key, value)
    # before numpy / scikit-learn load OpenMP: servers, runners and flow-run processes started from here inherit it
    compute.apply_to_process(configured_model_threads())
    Path(os.environ["TMPDIR"]).mkdir(parents=True, exist_ok=True)
    tempfile.tempdir = None  # re-read TMPDIR
    from ops.commands import app

    sys.exit(app())


if __name__ == "__main__":
    main()
