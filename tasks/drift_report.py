"""The drift check's outputs for people: a self-contained HTML report with one plot per input, a markdown table.

The HTML embeds its plots (PNG, base64) so it can be opened from MLflow's artifact view, a bucket or a mail
without the files next to it. Each plot shows the share of the reference and of the window in every cell the
statistic was computed on (the training quantile bins for numeric inputs, categories for categorical ones, plus
the null and unseen cells), with the statistic, its threshold and the verdict in the title.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping

from tasks.contract import ReferenceSketch
from tasks.drift import CurrentProfile, FeatureDrift, RetrainDecision, WindowDrift, cell_table
from tasks.plots import cell_plot_png


def verdict(result: FeatureDrift) -> str:
    if result.drifted is None:
        return "insufficient data"
    return "DRIFT" if result.drifted else "stable"


def _title(result: FeatureDrift) -> str:
    threshold = "—" if result.threshold is None else f"{result.threshold:.3f}"
    return f"{result.feature}: {result.statistic} {result.value:.3f} (threshold {threshold}) → {verdict(result)}"


def _rows(results: tuple[FeatureDrift, ...]) -> list[FeatureDrift]:
    return sorted(results, key=lambda r: (not r.drifted, -r.weight, r.feature))


def markdown_table(window: WindowDrift) -> str:
    """One row per input (drifted first, then by importance), the scores last."""
    lines = [
        "| input | kind | statistic | value | threshold | importance | unseen | verdict |",
        "|---|---|---|---:|---:|---:|---:|---|",
    ]
    results = _rows(window.features) + ([window.prediction] if window.prediction else [])
    for r in results:
        threshold = "—" if r.threshold is None else f"{r.threshold:.3f} ({r.threshold_source})"
        lines.append(
            f"| `{r.feature}` | {r.kind} | {r.statistic} | {r.value:.3f} | {threshold} | {r.weight:.2f} "
            f"| {r.unseen_share:.1%} | {verdict(r)} |"
        )
    return "\n".join(lines)


def report_html(
    window: WindowDrift,
    profile: CurrentProfile,
    sketch: ReferenceSketch,
    decision: RetrainDecision,
    meta: Mapping[str, str],
) -> str:
    """The whole report: what was compared, the decision and why, a table, and one plot per input and the scores."""
    results = _rows(window.features) + ([window.prediction] if window.prediction else [])
    figures = []
    for r in results:
        labels, reference, current = cell_table(profile, sketch, r.feature)
        png = base64.b64encode(cell_plot_png(labels, reference, current, _title(r))).decode("ascii")
        figures.append(f'<figure><img alt="{html.escape(r.feature)}" src="data:image/png;base64,{png}"></figure>')
    facts = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in meta.items())
    table = "".join(
        "<tr>"
        + "".join(
            f"<td>{html.escape(c)}</td>"
            for c in (
                r.feature,
                r.kind,
                r.statistic,
                f"{r.value:.4f}",
                "—" if r.threshold is None else f"{r.threshold:.4f} ({r.threshold_source})",
                f"{r.weight:.3f}",
                f"{r.null_rate:.2%} (ref {r.reference_null_rate:.2%})",
                f"{r.unseen_share:.2%}",
                "" if r.p_value is None else f"{r.p_value:.3g}",
                verdict(r),
            )
        )
        + "</tr>"
        for r in results
    )
    status = "insufficient data" if window.drifted is None else ("DRIFTED" if window.drifted else "stable")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Drift report {html.escape(meta.get("window", ""))}</title>
<style>
body {{ font-family: sans-serif; margin: 2em; color: #222; }} table {{ border-collapse: collapse; }}
td, th {{ border: 1px solid #ccc; padding: 3px 8px; font-size: 13px; text-align: left; }}
figure {{ display: inline-block; margin: 6px; }} img {{ max-width: 700px; }}
</style></head><body>
<h1>Drift report: window {html.escape(meta.get("window", ""))} — {status}</h1>
<p><b>Window decision:</b> {html.escape(window.reason)}</p>
<p><b>Retraining:</b> {"requested" if decision.retrain else "not requested"} — {html.escape(decision.reason)}</p>
<table>{facts}</table>
<h2>Inputs and scores</h2>
<table><tr><th>input</th><th>kind</th><th>statistic</th><th>value</th><th>threshold</th><th>importance</th>
<th>null rate</th><th>unseen</th><th>p-value (not decisive)</th><th>verdict</th></tr>{table}</table>
<h2>Reference vs window, per cell</h2>
{"".join(figures)}
</body></html>
"""
