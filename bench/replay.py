"""Closed-loop replay of 2013 (Apr–Dec, first champion on Jan–Mar) through the real flows, events and gate.

Goals (issue: closed-loop replay): ours recovers >= 90 % of the oracle's mean AUC gain over static, with <= 60 %
of its retrainings, and never promotes a model that is worse on the next month.
Run: make bench-replay   (its own MLOPS_HOME, <MLOPS_HOME>/replay, emptied first; takes several minutes)
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path


def _print_table(rows: list[list[str]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for n, row in enumerate(rows):
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
        if n == 0:
            print("  ".join("-" * width for width in widths))


def main() -> None:
    from flows.settings import mlops_home
    from ops.main import process_defaults

    for key, value in process_defaults(mlops_home()).items():
        os.environ.setdefault(key, value)
    Path(os.environ["TMPDIR"]).mkdir(parents=True, exist_ok=True)
    tempfile.tempdir = None

    from ops.replay import run_replay
    from tasks.replay import month_table, summary_rows

    def progress(record: dict) -> None:
        print(f"  {record['month']} done in {record['seconds']['total']:.1f} s", file=sys.stderr, flush=True)

    started = time.perf_counter()
    result = run_replay(on_month=progress)
    wall = time.perf_counter() - started

    print(f"\nReplay {result['months'][0]}..{result['months'][-1]}, first champion on {', '.join(result['base'])}")
    _print_table(month_table(result))
    print()
    for label, text in summary_rows(result):
        print(f"{label:<48} {text}")

    t = result["timings"]
    print("\nTimings (s)")
    print(
        f"  whole replay {wall:.0f}: Prefect server {t['prefect_start'].get('server', 0):.0f}, runner "
        f"{t['prefect_start'].get('runner', 0):.0f}, base months + first champion {t['base_seconds']:.0f}, "
        f"loop {t['loop_seconds']:.0f}, baselines {t['baselines_seconds']:.0f} "
        f"({result['baselines']['fits']} fits, {result['baselines']['mean_fit_seconds']:.1f} s each), "
        f"registry checks {t['registry_checks_seconds']:.0f}"
    )
    phases = ("land", "ingest", "score", "performance", "drift", "retrain")
    print("  per month: " + "  ".join(phases) + "  total")
    for row in result["table"]:
        s = row["seconds"]
        print(
            f"  {row['month']}  " + "  ".join(f"{s.get(p, 0.0):>{len(p)}.1f}" for p in phases) + f"  {s['total']:.1f}"
        )


if __name__ == "__main__":
    main()
