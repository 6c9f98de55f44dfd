"""What the end-to-end tests share with their conftest: the timings they record and where artifacts go."""

from __future__ import annotations

import os
from pathlib import Path

from flows.settings import REPO_ROOT

TIMINGS: dict[str, float] = {}


def artifacts_dir() -> Path:
    """Where screenshots and timings go: $MLOPS_TEST_ARTIFACTS/e2e, else var/test-artifacts/e2e (git-ignored)."""
    root = os.environ.get("MLOPS_TEST_ARTIFACTS")
    folder = (Path(root) if root else REPO_ROOT / "var" / "test-artifacts") / "e2e"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def record(name: str, seconds: float) -> None:
    TIMINGS[name] = round(seconds, 2)
