"""The embedded demo: the lifecycle on local defaults, phase by phase, with the time of each phase."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from flows.ingest import ingest
from flows.land import land
from flows.register import register
from flows.score import score
from flows.train import train

DEMO_MONTHS = ("2013-01", "2013-02", "2013-03")
SCORE_MONTH = "2013-04"


def run_demo(
    months: tuple[str, ...] = DEMO_MONTHS,
    profile: str | None = None,
    on_phase: Callable[[str, float, Any], None] | None = None,
) -> dict:
    """Land and ingest ``months``, train on them, register behind the gate; what each phase did and took."""
    phases: list[dict] = []

    def phase(name: str, work: Callable[[], Any]) -> Any:
        started = time.perf_counter()
        result = work()
        seconds = round(time.perf_counter() - started, 2)
        phases.append({"phase": name, "seconds": seconds})
        if on_phase:
            on_phase(name, seconds, result)
        return result

    snapshots = []
    for month in months:
        batch = phase(f"land {month}", lambda m=month: land(period=m, profile=profile))
        summary = phase(f"ingest {month}", lambda b=batch: ingest(input_uri=b["batch_uri"], profile=profile))
        snapshots.append(
            {
                "period": month,
                "snapshot_uri": summary["snapshot_uri"],
                "rows_in": summary["rows_in"],
                "rows_curated": summary["rows_curated"],
                "rows_quarantined": summary["rows_quarantined"],
                "data_docs_uri": summary["data_docs_uri"],
            }
        )
    trained = phase("train", lambda: train(snapshots=[s["snapshot_uri"] for s in snapshots], profile=profile))
    decision = phase("register + gate", lambda: register(run_id=trained["run_id"], reason="demo", profile=profile))
    later = phase(f"land {SCORE_MONTH}", lambda: land(period=SCORE_MONTH, profile=profile))
    batch = phase(f"ingest {SCORE_MONTH}", lambda: ingest(input_uri=later["batch_uri"], profile=profile))
    scored = phase(f"score {SCORE_MONTH}", lambda: score(input_uri=batch["snapshot_uri"], profile=profile))
    return {
        "scoring": {
            k: scored[k]
            for k in (
                "batch_id",
                "rows_in",
                "rows_scored",
                "rows_quarantined",
                "rows_outlier",
                "scores_uri",
                "rows_per_second",
            )
        },
        "phases": phases,
        "snapshots": snapshots,
        "training": {k: trained[k] for k in ("run_id", "run_url", "rows", "metrics", "top_features")},
        "decision": {k: decision.get(k) for k in ("version", "outcome", "champion_version", "reasons", "challenger")},
        "total_seconds": round(sum(p["seconds"] for p in phases), 2),
    }
