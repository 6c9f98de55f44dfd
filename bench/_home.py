"""A throw-away MLOPS_HOME with the same process defaults as the `mlops` command."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def fresh_home(prefix: str) -> Path:
    """Point this process at a new, empty MLOPS_HOME (set before any flow module is imported)."""
    home = Path(tempfile.mkdtemp(prefix=prefix))
    os.environ["MLOPS_HOME"] = str(home)
    from ops.main import process_defaults

    for key, value in process_defaults(home).items():
        os.environ.setdefault(key, value)
    Path(os.environ["TMPDIR"]).mkdir(parents=True, exist_ok=True)
    return home
