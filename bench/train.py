"""Train on Jan–Mar and on the full year of 2013 through the training flow; print where the time goes.

Goal (issue 3): MLflow logging <= 15 % of the training wall time.
Run: make bench-train   (a throw-away MLOPS_HOME; landing and ingestion are set-up, not measured)
"""

from __future__ import annotations

import time

from _home import fresh_home

WINDOWS = {"Jan–Mar": "2013-01..2013-03", "full year": "2013-01..2013-12"}


def main() -> None:
    fresh_home("bench-train-")

    from flows.ingest import ingest
    from flows.land import land
    from flows.train import train

    for month in range(1, 13):
        ingest(input_uri=land(period=f"2013-{month:02d}")["batch_uri"])
    train(months="2013-01")  # warm-up: MLflow import and store creation, as in a long-lived worker

    print(
        f"{'window':<10} {'rows':>8} {'wall s':>7} {'read':>6} {'fit':>6} {'evaluate':>9} {'log':>6} {'log share':>10}"
    )
    for label, months in WINDOWS.items():
        started = time.perf_counter()
        result = train(months=months)
        wall = time.perf_counter() - started
        s = result["seconds"]
        rows = sum(result["rows"].values())
        share = s["log"] / wall
        print(
            f"{label:<10} {rows:>8,} {wall:>7.1f} {s['read']:>6.1f} {s['fit']:>6.1f} {s['evaluate']:>9.1f} "
            f"{s['log']:>6.1f} {share:>10.1%}  goal <= 15 % -> {'MET' if share <= 0.15 else 'MISSED'}"
        )
        holdout = result["metrics"]["holdout"]
        print(
            f"{'':<10} holdout roc_auc {holdout['roc_auc']:.3f}, kpi {holdout['kpi']:.3f}, brier {holdout['brier']:.3f}"
        )


if __name__ == "__main__":
    main()
