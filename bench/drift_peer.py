"""Evidently's DataDriftPreset on the data ``bench/drift.py`` wrote; run by the Evidently interpreter, not .venv.

Evidently 0.7.23 imports only with pandas 3.0.6, so it lives in a throw-away environment (see bench/drift.py)
and is never a dependency of the product. Reads ``<dir>/spec.json`` and the Parquet files it names, writes
``<dir>/peer.json``: time and per-column decisions at 1M rows (current vs reference), and the decisions on
each no-drift window (windows vs window_reference), for Evidently's default methods and for chi-square on the
categorical columns.
Usage: $EVIDENTLY_PYTHON bench/drift_peer.py DIR
"""

from __future__ import annotations

import json
import sys
import time
import warnings
from pathlib import Path

import evidently
import pandas as pd
from evidently import DataDefinition, Dataset, Report
from evidently.presets import DataDriftPreset

VARIANTS = {"default": {}, "chi-square on categories": {"cat_method": "chisquare"}}


def run(reference: pd.DataFrame, current: pd.DataFrame, definition: DataDefinition, **preset) -> tuple[float, dict]:
    """Seconds for wrapping both frames and running the preset, and per column: method, score, threshold, drift."""
    started = time.perf_counter()
    ref = Dataset.from_pandas(reference, data_definition=definition)
    cur = Dataset.from_pandas(current, data_definition=definition)
    snapshot = Report([DataDriftPreset(**preset)], include_tests=True).run(cur, ref)
    seconds = time.perf_counter() - started
    result = snapshot.dict()
    columns = {}
    for metric in result["metrics"]:
        config = metric["config"]
        if config["type"].endswith("ValueDrift"):
            columns[config["column"]] = {
                "method": config.get("method"),
                "score": metric["value"],
                "threshold": config.get("threshold"),
            }
    for test in result["tests"]:
        column = test["metric_config"]["params"].get("column")
        if test["id"] == "drift" and column in columns:
            columns[column]["drifted"] = test["status"] == "FAIL"
    return seconds, columns


def main(folder: Path) -> None:
    warnings.filterwarnings("ignore")  # scipy's divide-by-zero inside chi-square on unseen categories
    spec = json.loads((folder / "spec.json").read_text())
    definition = DataDefinition(numerical_columns=spec["numeric"], categorical_columns=spec["categorical"])
    reference = pd.read_parquet(folder / spec["reference"])
    current = pd.read_parquet(folder / spec["current"])
    run(reference.head(2000), current.head(2000), definition)  # warm-up: lazy imports, as a worker would have
    seconds, columns = run(reference, current, definition)
    out = {
        "versions": {"evidently": evidently.__version__, "pandas": pd.__version__},
        "current": {"rows": len(current), "reference_rows": len(reference), "seconds": seconds, "columns": columns},
        "windows": {},
    }
    del current
    windows = pd.read_parquet(folder / spec["windows"])
    window_reference = pd.read_parquet(folder / spec["window_reference"])
    for name, preset in VARIANTS.items():
        decisions, times = [], []
        for _, window in windows.groupby("_window", sort=True):
            took, cols = run(window_reference, window.drop(columns="_window"), definition, **preset)
            times.append(took)
            decisions.append({c: v["drifted"] for c, v in cols.items()})
        out["windows"][name] = {"rows": int(windows.groupby("_window").size().iloc[0]), "seconds": times}
        out["windows"][name]["decisions"] = decisions
    (folder / "peer.json").write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
