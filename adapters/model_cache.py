"""Models loaded once per process: scoring tasks in threads or on Dask workers share one fitted object.

A model version is immutable, so the cache key is (name, version, run id): the run id tells apart two stores
that both hold a "version 1". Each load downloads into a fresh folder under ``root`` and removes it once the
model is built, so two processes loading the same version never write the same files, and nothing is left.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any

from adapters.registry import MlflowRegistry

MAX_MODELS = 4  # a long-lived worker scoring with several versions keeps only the most recent ones

_models: dict[tuple[str, str, str], Any] = {}
_lock = threading.Lock()


def load_cached(registry: MlflowRegistry, name: str, version: str, run_id: str, root: str) -> Any:
    """The fitted model of ``name`` version ``version``, loaded from the registry on first use in this process.

    Args:
        registry: Where the model is stored.
        name: Registered model name.
        version: Model version.
        run_id: Run that logged the version (part of the key).
        root: Folder for downloads (e.g. ``<home>/models``); the download itself is removed after loading.
    """
    key = (name, version, run_id)
    with _lock:  # one load at a time: concurrent first uses wait for it instead of loading twice
        if key not in _models:
            folder = Path(root) / name / version
            folder.mkdir(parents=True, exist_ok=True)
            download = tempfile.mkdtemp(prefix="load-", dir=folder)
            try:
                model = registry.load_model(name, version, download)
            finally:
                shutil.rmtree(download, ignore_errors=True)
            while len(_models) >= MAX_MODELS:
                _models.pop(next(iter(_models)))
            _models[key] = model
        return _models[key]


def cached_keys() -> list[tuple[str, str, str]]:
    """Keys of the models this process holds, oldest first."""
    with _lock:
        return list(_models)
