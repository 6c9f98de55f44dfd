"""Helpers that build raw batches from the real fixture slices."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def fixture_tables(period: str = "2013-01") -> dict[str, pd.DataFrame]:
    folder = FIXTURES / f"raw_{period.replace('-', '_')}"
    read = lambda n: pd.read_csv(folder / f"{n}.csv", dtype="str", keep_default_na=False, na_values=[""])  # noqa: E731
    return {"flights": read("flights"), "weather": read("weather")}


def write_batch(
    folder: Path, tables: dict[str, pd.DataFrame], period: str | None = "2013-01", fmt: str = "csv"
) -> Path:
    """A raw batch folder as the landing flow writes it (``period=None``: no _batch.json)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, frame in tables.items():
        if fmt == "csv":
            frame.to_csv(folder / f"{name}.csv", index=False)
        else:
            frame.to_parquet(folder / f"{name}.parquet", index=False)
    if period is not None:
        manifest = {
            "batch_id": f"test-{period}",
            "period": period,
            "format": fmt,
            "tables": {n: {"file": f"{n}.{fmt}"} for n in tables},
        }
        (folder / "_batch.json").write_text(json.dumps(manifest))
    return folder


def folder_bytes(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}
