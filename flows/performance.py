"""Performance check: the scores of a window joined with the labels that arrived after the fact.

Labels come, by default, from the labels of the window's period that arrived later (``mlops land-labels``,
stored by id), else from the latest curated snapshot of the period (the target is derived at ingestion; rows
whose outcome is not known have a null label and are counted, not evaluated); ``labels_uri`` names another
Parquet file with the id and target columns. Realized metrics are logged to an MLflow monitoring
run; when the configured metric is under its floor, or too far under the holdout value of the model that
scored the window, the check emits ``mlops.performance.degraded``. It never retrains by itself.
"""

from __future__ import annotations

import json

import pandas as pd
from prefect import flow, runtime
from prefect.artifacts import create_markdown_artifact

from adapters.storage import join_uri, read_json, read_parquet
from flows.context import Context, build_context
from flows.score import ModelRef
from flows.snapshots import latest_labels_uri, latest_snapshot_uri
from flows.steps import compute_step, io_step
from flows.windows import (
    checked_window,
    emit_event,
    log_monitoring_run,
    read_scores,
    resolve_version,
    result_uri,
    write_result,
)
from tasks import estimation, metrics, monitoring
from tasks.errors import InputDataError, MlopsError, StorageError
from tasks.scoring import PROBABILITY

CHECK = "performance"
DRIFT_CHECK = "drift"


@io_step("read-labels")
def read_labels(ctx: Context, window: str, labels_uri: str | None) -> tuple[pd.DataFrame, str]:
    uc = ctx.usecase
    stored = latest_labels_uri(ctx, window) if labels_uri is None else None
    if stored is not None:
        labels_uri = join_uri(stored, "labels.parquet")
    if labels_uri is None:
        try:
            labels_uri = join_uri(latest_snapshot_uri(ctx, window), "data.parquet")
        except MlopsError:
            raise InputDataError(
                f"no labels for window '{window}': no curated snapshot of that period; pass --labels URI "
                f"(Parquet with '{uc.id_column}' and '{uc.target.name}')"
            ) from None
    frame = read_parquet(ctx.storage(labels_uri), labels_uri)
    missing = [c for c in (uc.id_column, uc.target.name) if c not in frame.columns]
    if missing:
        raise InputDataError(f"labels {labels_uri} have no column(s) {', '.join(missing)}")
    return frame[[uc.id_column, uc.target.name]], labels_uri


@io_step("read-holdout-metric")
def holdout_metric(ctx: Context, ref: ModelRef) -> float | None:
    """The model version's metric on its training holdout, the baseline a window is compared with."""
    return ctx.registry().run_summary(ref.run_id)["metrics"].get(f"holdout_{ctx.usecase.performance.metric}")


@compute_step("evaluate-window")
def evaluate_window(ctx: Context, scores: pd.DataFrame, labels: pd.DataFrame, holdout: float | None) -> dict:
    uc = ctx.usecase
    labelled, counts = monitoring.join_labels(scores, labels, uc.id_column, uc.target.name)
    realized = monitoring.realized_metrics(labelled, uc.target.name, PROBABILITY, uc.model.decision_threshold, uc.kpi)
    verdict = monitoring.performance_verdict(realized, counts["rows_labelled"], holdout, uc.performance)
    found = {"counts": counts, "metrics": realized, "verdict": verdict.to_dict(), "confusion": None, "value": None}
    if realized:
        y = labelled[uc.target.name].to_numpy(dtype="int64")
        cells = metrics.confusion(y, labelled[PROBABILITY].to_numpy(dtype="float64"), uc.model.decision_threshold)
        found["confusion"] = cells
        found["value"] = None if uc.value is None else estimation.window_value(cells, uc.value.payoff)
    return found


@io_step("read-estimate")
def read_estimate(ctx: Context, ref: ModelRef, window: str) -> dict | None:
    """The label-free estimate the drift check stored for this window and model version, if any."""
    uri = result_uri(ctx, DRIFT_CHECK, ref, window)
    try:
        estimate = read_json(ctx.storage(uri), uri).get("estimate")
    except StorageError:
        return None
    return estimate if estimate and estimate.get("available") else None


def estimated_vs_realized(estimate: dict | None, evaluation: dict) -> dict | None:
    """Estimated and realized figures side by side (realized - estimated), value included."""
    if estimate is None or not evaluation["metrics"]:
        return None
    realized, guessed = evaluation["metrics"], estimate["metrics"]
    errors = estimation.estimation_errors(guessed, realized)
    rows = {
        m: {"estimated": guessed[m], "interval": estimate["intervals"][m], "realized": realized[m], "error": e}
        for m, e in errors.items()
    }
    if estimate.get("value") and evaluation.get("value"):
        est, real = estimate["value"]["total"], evaluation["value"]["total"]
        band = estimate["value_interval"]
        rows["value"] = {"estimated": est, "interval": band, "realized": real, "error": real - est}
    for row in rows.values():
        lo, hi = row["interval"]
        row["inside_interval"] = bool(lo <= row["realized"] <= hi)
    return rows


@flow(name="performance-check", log_prints=False)
def performance_check(
    window: str | None = None,
    model_alias: str = "champion",
    labels_uri: str | None = None,
    scores_uri: str | None = None,
    profile: str | None = None,
    usecase: str | None = None,
) -> dict:
    """Realized metrics of a scored window (default: the latest) once its labels arrived; event when degraded."""
    ctx = build_context(profile, usecase)
    ref = resolve_version(ctx, model_alias)
    target, manifest = checked_window(ctx, ref, window, scores_uri)
    scores = read_scores(ctx, manifest, [ctx.usecase.id_column, PROBABILITY])
    labels, source = read_labels(ctx, target.window, labels_uri)
    evaluation = evaluate_window(ctx, scores, labels, holdout_metric(ctx, ref))
    comparison = estimated_vs_realized(read_estimate(ctx, ref, target.window), evaluation)
    verdict = evaluation["verdict"]
    result = {
        "window": target.window,
        "batch_id": target.batch_id,
        "model": {"name": ref.name, "version": ref.version, "run_id": ref.run_id},
        "labels_uri": source,
        **evaluation,
        "degraded": verdict["degraded"],
        "reason": verdict["reason"],
        "estimated_vs_realized": comparison,
        "flow_run_id": str(runtime.flow_run.id or ""),
        "flow_run_url": str(runtime.flow_run.ui_url or ""),
    }
    uris = write_result(ctx, result_uri(ctx, CHECK, ref, target.window), result)
    values = {f"realized_{k}": v for k, v in evaluation["metrics"].items()}
    values |= {k: float(v) for k, v in evaluation["counts"].items()}
    values["degraded"] = None if verdict["degraded"] is None else float(verdict["degraded"])
    if evaluation["value"]:
        values["realized_value"] = evaluation["value"]["total"]
    for name, row in (comparison or {}).items():
        values[f"estimated_{name}"], values[f"estimate_error_{name}"] = row["estimated"], row["error"]
    run = log_monitoring_run(
        ctx, CHECK, ref, target.window, values, {"performance/result.json": json.dumps(result, indent=2).encode()}
    )
    write_result(ctx, uris["result.json"], {**result, "mlflow_run": run})
    summary = {**result, "result_uri": uris["result.json"], "mlflow_run": run}
    if verdict["degraded"]:
        payload = {
            "reason": f"performance degraded in window {target.window}: {verdict['reason']}",
            "window": target.window,
            "batch_id": target.batch_id,
            "model_version": ref.version,
            "metrics": evaluation["metrics"],
            "verdict": verdict,
            "evidence_uri": uris["result.json"],
            "mlflow_run_id": run["run_id"],
            "mlflow_run_url": run["url"],
        }
        event_id = emit_event(ctx, monitoring.PERFORMANCE_EVENT, ref, target.window, payload)
        summary["event"] = {"name": monitoring.PERFORMANCE_EVENT, "id": event_id}
    _publish(ctx, summary)
    return summary


def _publish(ctx: Context, s: dict) -> None:
    if runtime.flow_run.id is None:
        return
    status = {None: "no verdict", True: "**degraded**", False: "ok"}[s["degraded"]]
    rows = [f"| {k} | {v:.4f} |" for k, v in s["metrics"].items() if k not in ("rows", "positives")]
    counts = [f"| {k} | {v:,} |" for k, v in s["counts"].items()]
    lines = [
        f"# Performance of window `{s['window']}`: {status}",
        "",
        f"Model **{s['model']['name']}** version **{s['model']['version']}** · {s['reason']}",
        "",
        "| realized metric | value |",
        "|---|---:|",
        *rows,
        "",
        "| rows | count |",
        "|---|---:|",
        *counts,
        "",
        *_comparison_lines(s["estimated_vs_realized"]),
        f"Labels: `{s['labels_uri']}` · result: `{s['result_uri']}`",
        f"MLflow monitoring run: {s['mlflow_run']['url'] or s['mlflow_run']['run_id']}",
    ]
    if s.get("event"):
        lines.append(f"Event `{s['event']['name']}` emitted (id `{s['event']['id']}`)")
    create_markdown_artifact(
        key=f"performance-{ctx.usecase.name}".replace("_", "-"), markdown="\n".join(lines), description="Performance"
    )


def _comparison_lines(rows: dict | None) -> list[str]:
    if not rows:
        return ["Estimated vs realized: no label-free estimate stored for this window", ""]
    lines = ["| metric | estimated | interval | realized | realized - estimated |", "|---|---:|---:|---:|---:|"]
    for name, r in rows.items():
        lo, hi = r["interval"]
        inside = "" if r["inside_interval"] else " (outside)"
        lines.append(
            f"| {name} | {r['estimated']:.4f} | {lo:.4f} – {hi:.4f} | {r['realized']:.4f} | {r['error']:+.4f}{inside} |"
        )
    return [*lines, ""]
