"""Ingest all 12 months of 2013 through the real ingestion flow and print throughput and the GX share.

Goal (issue 2): validation <= 25 % of the ingestion wall time; the full year <= 60 s on 2 cores.
Run: make bench-ingest   (uses a throw-away MLOPS_HOME; landing is timed apart, it is not ingestion)
"""

from __future__ import annotations

import sys
import time

from _home import fresh_home

MONTHS = [f"2013-{m:02d}" for m in range(1, 13)]


def main() -> None:
    home = fresh_home("bench-ingest-")

    from flows.ingest import ingest
    from flows.land import land

    started = time.perf_counter()
    batches = [land(period=m)["batch_uri"] for m in MONTHS]
    land_seconds = time.perf_counter() - started

    ingest(input_uri=batches[0])  # warm-up: imports GX once, as a long-lived worker would have
    rows = curated = quarantined = 0
    validate = docs = 0.0
    print(f"{'month':<8} {'rows':>8} {'quarantined':>11} {'seconds':>8} {'validate':>9} {'docs':>6}")
    started = time.perf_counter()
    for month, uri in zip(MONTHS, batches, strict=True):
        t0 = time.perf_counter()
        r = ingest(input_uri=uri)
        seconds = time.perf_counter() - t0
        gx = r["validation_engine"]
        v, d = float(gx["validate_seconds"]), float(gx["data_docs_seconds"])
        validate, docs = validate + v, docs + d
        rows, curated, quarantined = (
            rows + r["rows_in"],
            curated + r["rows_curated"],
            quarantined + r["rows_quarantined"],
        )
        print(f"{month:<8} {r['rows_in']:>8,} {r['rows_quarantined']:>11,} {seconds:>8.2f} {v:>9.2f} {d:>6.2f}")
    wall = time.perf_counter() - started
    assert rows == curated + quarantined, "rows in != curated + quarantined"
    print()
    print(f"landing 12 months        {land_seconds:8.1f} s (not part of ingestion)")
    print(f"ingestion, 12 months     {wall:8.1f} s   goal <= 60 s  -> {'MET' if wall <= 60 else 'MISSED'}")
    print(f"rows in                  {rows:8,d}   curated {curated:,}   quarantined {quarantined:,}")
    print(f"throughput               {rows / wall:8,.0f} rows/s")
    verdict = "MET" if validate / wall <= 0.25 else "MISSED"
    print(f"GX validation share      {validate / wall:8.1%}   ({validate:.1f} s)   goal <= 25 %  -> {verdict}")
    print(f"GX Data Docs rendering   {docs / wall:8.1%}   ({docs:.1f} s)   (reporting, shown apart)")
    print(f"GX in all                {(validate + docs) / wall:8.1%}")
    print(f"(state in {home})", file=sys.stderr)


if __name__ == "__main__":
    main()
