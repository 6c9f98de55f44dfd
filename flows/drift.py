"""Drift check: the inputs and scores of a scored window against the reference logged with the model.

The window is read from the scoring output (the scores and the exact input files its manifest names), joined
by id so rows the scoring quarantined are not counted. It is counted on the reference sketch's cells (O(rows +
cells)), judged per input with calibrated thresholds, weighted by the training importances, and debounced over
the earlier windows of the same model version. When retraining is warranted, the check emits
``mlops.drift.detected`` on ``mlops.model.<registered model>``; a deployment trigger decides what runs. The check
itself never retrains.
"""

from __future__ import annotations

import json

import pandas as pd
from prefect import flow, runtime
from prefect.artifacts import create_markdown_artifact

from adapters.storage import read_parquet
from flows.context import Context, build_context
from flows.estimate import estimate_markdown, estimate_metrics, estimate_window
from flows.score import SKETCH_ARTIFACT, ModelRef, run_json
from flows.steps import compute_step, io_step
from flows.windows import (
    checked_window,
    earlier_results,
    emit_event,
    log_monitoring_run,
    read_scores,
    resolve_version,
    result_uri,
    write_result,
)
from tasks import contract, drift, drift_report, monitoring
from tasks.errors import InputDataError
from tasks.scoring import PROBABILITY

IMPORTANCE_ARTIFACT = "contract/feature_importance.json"
CHECK = "drift"


@io_step("load-reference")
def load_reference(ctx: Context, ref: ModelRef) -> tuple[contract.ReferenceSketch, dict[str, float]]:
    """The reference sketch and the feature importances logged with the model version's training run."""
    sketch = contract.sketch_from_dict(run_json(ctx, ref, SKETCH_ARTIFACT))
    importances = {str(k): float(v) for k, v in run_json(ctx, ref, IMPORTANCE_ARTIFACT).items()}
    return sketch, importances


@io_step("profile-window")
def profile_window(ctx: Context, manifest: dict, sketch: contract.ReferenceSketch) -> drift.CurrentProfile:
    """Count the scored rows of the window on the sketch's cells: inputs from the batch, scores from the output."""
    id_column = ctx.usecase.id_column
    scores = read_scores(ctx, manifest, [id_column, PROBABILITY])
    inputs = [c for c in (*sketch.numeric, *sketch.categorical) if c != id_column]
    frames = []
    for uri in manifest["input_files"]:
        frame = read_parquet(ctx.storage(uri), uri, [id_column, *inputs])
        frames.append(frame.merge(scores, on=id_column, how="inner"))
    scored = pd.concat(frames, ignore_index=True) if frames else scores
    if len(scored) != len(scores):
        raise InputDataError(
            f"window {manifest['batch_id']}: {len(scores)} scored rows but {len(scored)} matched the input files "
            f"by '{id_column}' (inputs changed after scoring?)"
        )
    return drift.current_profile(scored, sketch, PROBABILITY)


@compute_step("judge-window")
def judge(
    ctx: Context, profile: drift.CurrentProfile, sketch: contract.ReferenceSketch, importances: dict[str, float]
) -> drift.WindowDrift:
    return drift.check_drift(profile, sketch, ctx.usecase.drift, importances)


@compute_step("render-drift-report")
def render_report(
    profile: drift.CurrentProfile,
    sketch: contract.ReferenceSketch,
    verdict: drift.WindowDrift,
    decision: drift.RetrainDecision,
    meta: dict[str, str],
) -> bytes:
    return drift_report.report_html(verdict, profile, sketch, decision, meta).encode("utf-8")


@flow(name="drift-check", log_prints=False)
def drift_check(
    window: str | None = None,
    model_alias: str = "champion",
    scores_uri: str | None = None,
    profile: str | None = None,
    usecase: str | None = None,
) -> dict:
    """Judge a scored window (default: the latest one the model scored) and request retraining by an event."""
    ctx = build_context(profile, usecase)
    spec = ctx.usecase.drift
    ref = resolve_version(ctx, model_alias)
    target, manifest = checked_window(ctx, ref, window, scores_uri)
    sketch, importances = load_reference(ctx, ref)
    counts = profile_window(ctx, manifest, sketch)
    verdict = judge(ctx, counts, sketch, importances)
    earlier = earlier_results(ctx, CHECK, ref)
    history, last_retrain = monitoring.drift_history(earlier, target.window)
    debounce = spec.debounce
    decision = drift.should_retrain(
        [*history, verdict.drifted], debounce.k, debounce.n, last_retrain, debounce.cooldown_windows
    )
    meta = {
        "window": target.window,
        "batch": target.batch_id,
        "model": f"{ref.name} version {ref.version} (@{ref.alias}, run {ref.run_id})",
        "rows": f"{verdict.rows:,}",
        "reference rows": f"{sketch.rows:,}",
        "scores": manifest["scores_uri"],
        "flow run": str(runtime.flow_run.id or ""),
    }
    report = render_report(counts, sketch, verdict, decision, meta)
    estimate = estimate_window(ctx, ref, manifest, target.window, earlier)
    result = {
        "window": target.window,
        "batch_id": target.batch_id,
        "model": {"name": ref.name, "version": ref.version, "run_id": ref.run_id},
        "drifted": verdict.drifted,
        "score": verdict.score,
        "reason": verdict.reason,
        "history": [*history, verdict.drifted],
        "retrain_requested": decision.retrain,
        "decision": decision.reason,
        "verdict": verdict.to_dict(),
        "estimate": estimate,
        "flow_run_id": str(runtime.flow_run.id or ""),
        "flow_run_url": str(runtime.flow_run.ui_url or ""),
    }
    uris = write_result(ctx, result_uri(ctx, CHECK, ref, target.window), result, {"report.html": report})
    run = log_monitoring_run(
        ctx,
        CHECK,
        ref,
        target.window,
        _metrics(verdict) | estimate_metrics(estimate),
        {"drift/report.html": report, "drift/result.json": json.dumps(result, indent=2, default=str).encode()},
    )
    # the run is known only after it is logged with the result: the stored result then names it (dashboard links)
    write_result(ctx, uris["result.json"], {**result, "mlflow_run": run})
    summary = {**result, "report_uri": uris["report.html"], "result_uri": uris["result.json"], "mlflow_run": run}
    if decision.retrain:
        payload = _evidence(summary, verdict)
        summary["event"] = {
            "name": monitoring.DRIFT_EVENT,
            "id": emit_event(ctx, monitoring.DRIFT_EVENT, ref, target.window, payload),
        }
    if estimate.get("available") and estimate["trigger"]["retrain_requested"]:
        payload = {
            "reason": f"estimated performance dropped in window {target.window}: {estimate['trigger']['reason']}",
            "window": target.window,
            "batch_id": target.batch_id,
            "model_version": ref.version,
            "estimate": {k: estimate[k] for k in ("metrics", "intervals", "trigger")},
            "evidence_uri": uris["result.json"],
            "mlflow_run_id": run["run_id"],
        }
        summary["estimate_event"] = {
            "name": monitoring.ESTIMATED_EVENT,
            "id": emit_event(ctx, monitoring.ESTIMATED_EVENT, ref, target.window, payload),
        }
    _publish(ctx, summary, verdict)
    summary.pop("verdict")
    return summary


def _metrics(verdict: drift.WindowDrift) -> dict[str, float]:
    values = {"drift_score": verdict.score, "rows": verdict.rows, "drifted": _flag(verdict.drifted)}
    for r in (*verdict.features, *([verdict.prediction] if verdict.prediction else [])):
        values[f"{r.feature}.{r.statistic}"] = r.value
        values[f"{r.feature}.threshold"] = r.threshold
        values[f"{r.feature}.drifted"] = _flag(r.drifted)
    return values


def _flag(value: bool | None) -> float | None:
    return None if value is None else float(value)


def _evidence(summary: dict, verdict: drift.WindowDrift) -> dict:
    """What the retrain run and a person need to see why: the decision, what drifted, where the report is."""
    drifted = [r for r in (*verdict.features, *([verdict.prediction] if verdict.prediction else [])) if r.drifted]
    return {
        "reason": f"drift in window {summary['window']}: {summary['reason']} ({summary['decision']})",
        "window": summary["window"],
        "batch_id": summary["batch_id"],
        "model_version": summary["model"]["version"],
        "drift_score": verdict.score,
        "drifted_inputs": {
            r.feature: {"statistic": r.statistic, "value": r.value, "threshold": r.threshold} for r in drifted
        },
        "history": summary["history"],
        "evidence_uri": summary["report_uri"],
        "result_uri": summary["result_uri"],
        "mlflow_run_id": summary["mlflow_run"]["run_id"],
        "mlflow_run_url": summary["mlflow_run"]["url"],
    }


def _publish(ctx: Context, s: dict, verdict: drift.WindowDrift) -> None:
    if runtime.flow_run.id is None:
        return
    status = "insufficient data" if s["drifted"] is None else ("**drifted**" if s["drifted"] else "stable")
    event = s.get("event")
    lines = [
        f"# Drift check of window `{s['window']}`: {status}",
        "",
        f"Model **{s['model']['name']}** version **{s['model']['version']}** · {verdict.rows:,} rows · "
        f"{verdict.reason}",
        "",
        f"Retraining: **{'requested' if s['retrain_requested'] else 'not requested'}** — {s['decision']}"
        + (f" (event `{event['name']}` id `{event['id']}`)" if event else ""),
        "",
        drift_report.markdown_table(verdict),
        "",
        *estimate_markdown(s["estimate"]),
        "",
        f"Report (plots per input): {_link(s['report_uri'])} (also in the MLflow run's artifacts: drift/report.html)",
        f"MLflow monitoring run: {_link(s['mlflow_run']['url'] or s['mlflow_run']['run_id'])}",
    ]
    create_markdown_artifact(
        key=f"drift-{ctx.usecase.name}".replace("_", "-"), markdown="\n".join(lines), description="Drift check"
    )


def _link(target: str) -> str:
    """A markdown link the Prefect UI can follow (http(s) and local files), else the plain reference."""
    if target.startswith(("http://", "https://")):
        return f"[{target}]({target})"
    if target.startswith("/"):
        return f"[{target}](file://{target})"
    return f"`{target}`"
