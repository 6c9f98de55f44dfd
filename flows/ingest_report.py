"""The ingestion summary as a Prefect markdown artifact, for data scientists browsing the Prefect UI."""

from __future__ import annotations

import pandas as pd
from prefect import runtime
from prefect.artifacts import create_markdown_artifact

from tasks.batch import QUARANTINE_REASONS


def summarize_failures(quarantine: pd.DataFrame) -> list[dict]:
    """Rows per quarantine reason, most frequent first (a row with two reasons counts in both)."""
    if quarantine.empty:
        return []
    reasons = quarantine[QUARANTINE_REASONS].str.split("; ").explode()
    counts = reasons.value_counts()
    return [{"reason": str(reason), "rows": int(n)} for reason, n in counts.items()]


def render_markdown(summary: dict) -> str:
    lines = [
        f"# Ingestion of {summary['usecase']} {summary['period']}: {summary['status']}",
        "",
        "| rows in | curated | quarantined | unlabelled | expectations |",
        "|---:|---:|---:|---:|---:|",
        f"| {summary['rows_in']:,} | {summary['rows_curated']:,} | {summary['rows_quarantined']:,} "
        f"| {summary['rows_unlabelled']:,} | {summary['expectations_evaluated']} |",
        "",
    ]
    if summary.get("problem"):
        lines += [f"**Rejected:** {summary['problem']}", ""]
    if summary["failed_expectations"]:
        lines += ["## Failed expectations", "", "| expectation | rows | observed |", "|---|---:|---|"]
        lines += [f"| `{f['expectation']}` | {f['rows']:,} | {f['observed']} |" for f in summary["failed_expectations"]]
        lines.append("")
    if summary["quarantine_reasons"]:
        lines += ["## Quarantine reasons", "", "| reason | rows |", "|---|---:|"]
        lines += [f"| `{r['reason']}` | {r['rows']:,} |" for r in summary["quarantine_reasons"]]
        lines.append("")
    if summary["extra_columns"]:
        lines += [f"Undeclared columns (ignored): {', '.join(summary['extra_columns'])}", ""]
    lines += ["## Where", ""]
    for key in ("snapshot_uri", "quarantine_uri", "data_docs_uri", "rejection_uri"):
        if summary.get(key):
            lines.append(f"- {key.removesuffix('_uri').replace('_', ' ')}: `{summary[key]}`")
    lines.append(f"- source batch: `{summary['source_batch']['uri']}`")
    return "\n".join(lines)


def publish_summary(summary: dict) -> None:
    """Attach the summary to the current flow run (no-op outside a flow run)."""
    if runtime.flow_run.id is None:
        return
    create_markdown_artifact(
        key=f"ingest-{summary['usecase']}-{summary['period']}".replace("_", "-").lower(),
        markdown=render_markdown(summary),
        description=f"Ingestion summary {summary['period']}",
    )
