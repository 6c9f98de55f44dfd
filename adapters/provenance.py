"""Where the running code comes from: the git commit, for lineage tags on every training run."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

UNKNOWN = "unknown"


def git_sha(repo: Path) -> str:
    """The commit of the code: ``MLOPS_GIT_SHA`` (set in images built from a commit) or ``git rev-parse``."""
    if os.environ.get("MLOPS_GIT_SHA"):
        return os.environ["MLOPS_GIT_SHA"]
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return UNKNOWN
    sha = done.stdout.strip()
    if done.returncode != 0 or not sha:
        return UNKNOWN
    dirty = subprocess.run(["git", "status", "--porcelain"], cwd=repo, capture_output=True, text=True, check=False)
    return f"{sha}-dirty" if dirty.stdout.strip() else sha
