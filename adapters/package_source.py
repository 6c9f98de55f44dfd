"""Source tables shipped as data files inside an installed Python package.

The package is located with ``importlib.util.find_spec`` and never imported: a data package's ``__init__``
may load every table or need modules that are gone (see DESIGN.md).
"""

from __future__ import annotations

import importlib.util
from importlib import metadata
from pathlib import Path

import pandas as pd

from tasks.errors import MlopsError


def package_dir(package: str) -> Path:
    """Folder of an installed package, found without importing it.

    Raises:
        MlopsError: the package is not installed.
    """
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise MlopsError(
            f"source package '{package}' is not installed in this environment: install it (pip install {package}), "
            "or read your files with `source: {adapter: files}`"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def package_version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "unknown"


def read_table(package: str, relative_path: str) -> pd.DataFrame:
    """A table as raw text (every column ``str``), so landed values are byte-for-byte what the source holds."""
    path = package_dir(package) / relative_path
    if not path.is_file():
        raise MlopsError(f"source table not found in package '{package}': {relative_path}")
    return pd.read_csv(path, dtype="str", keep_default_na=False, na_values=["", "NA"])
