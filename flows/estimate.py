"""Label-free performance estimate of a scored window, computed by the drift check and kept in its result.

The calibration map logged with the model version turns the window's scores into probabilities; the estimate
(tasks/estimation.py) and the window's estimated business value are stored beside the drift verdict, so the
performance check can put them next to the realized values once labels arrive.
"""

from __future__ import annotations

from flows.context import Context
from flows.score import ModelRef, run_json
from flows.steps import compute_step, io_step
from flows.train import CALIBRATION_ARTIFACT
from flows.windows import read_scores
from tasks import drift, estimation
from tasks.errors import RegistryError
from tasks.scoring import PROBABILITY


@io_step("load-calibration")
def load_calibration(ctx: Context, ref: ModelRef) -> tuple[estimation.CalibrationMap | None, str]:
    """The model version's calibration map, or None and why (a model trained before maps were logged)."""
    try:
        return estimation.calibration_from_dict(run_json(ctx, ref, CALIBRATION_ARTIFACT)), ""
    except RegistryError as exc:
        return None, f"no calibration map: {exc}"


@io_step("read-holdout-metrics")
def holdout_metrics(ctx: Context, ref: ModelRef) -> dict[str, float]:
    found = ctx.registry().run_summary(ref.run_id)["metrics"]
    return {k.removeprefix("holdout_"): float(v) for k, v in found.items() if k.startswith("holdout_")}


@compute_step("estimate-performance")
def compute_estimate(ctx: Context, scores, calibration: estimation.CalibrationMap) -> estimation.Estimate:
    uc = ctx.usecase
    spec = uc.estimation
    return estimation.estimate_performance(
        scores[PROBABILITY].to_numpy(dtype="float64"),
        calibration,
        uc.model.decision_threshold,
        uc.kpi,
        payoff=None if uc.value is None else uc.value.payoff,
        resamples=spec.resamples,
        confidence=spec.confidence,
        seed=spec.seed,
    )


def estimate_window(ctx: Context, ref: ModelRef, manifest: dict, window: str, earlier: list[dict]) -> dict:
    """The estimate of one window as stored in the drift result (``available`` False says why there is none)."""
    spec = ctx.usecase.estimation
    calibration, why = load_calibration(ctx, ref)
    if calibration is None:
        return {"available": False, "reason": why}
    scores = read_scores(ctx, manifest, [PROBABILITY])
    if len(scores) < spec.min_rows:
        return {"available": False, "reason": f"{len(scores)} scored rows, fewer than estimation.min_rows"}
    found = compute_estimate(ctx, scores, calibration).to_dict()
    holdout = holdout_metrics(ctx, ref)
    trigger = spec.trigger
    dropped, reason = estimation.estimated_drop(
        found["metrics"], holdout.get(trigger.metric), trigger.metric, trigger.max_drop
    )
    history, last = estimation.estimate_history(earlier, window)
    d = trigger.debounce
    decision = drift.should_retrain([*history, dropped], d.k, d.n, last, d.cooldown_windows)
    found["trigger"] = {
        "enabled": trigger.enabled,
        "dropped": dropped,
        "reason": reason,
        "decision": decision.reason,
        "retrain_requested": bool(trigger.enabled and decision.retrain),
        "holdout": holdout.get(trigger.metric),
    }
    return {"available": True, "unit": None if ctx.usecase.value is None else ctx.usecase.value.unit, **found}


def estimate_metrics(estimate: dict) -> dict[str, float]:
    """The estimate's figures as MLflow metrics of the monitoring run."""
    if not estimate.get("available"):
        return {}
    values = {f"estimated_{k}": v for k, v in estimate["metrics"].items()}
    for k, (lo, hi) in estimate["intervals"].items():
        values[f"estimated_{k}_low"], values[f"estimated_{k}_high"] = lo, hi
    if estimate.get("value"):
        values["estimated_value"] = estimate["value"]["total"]
        values["estimated_value_per_row"] = estimate["value"]["per_row"]
    return values


def estimate_markdown(estimate: dict) -> list[str]:
    """Lines of the Prefect artifact: estimated metrics with their intervals and the estimated value."""
    if not estimate.get("available"):
        return [f"Estimated performance: not available ({estimate.get('reason')})"]
    pct = round(estimate["confidence"] * 100)
    lines = [
        f"| estimated (no labels) | value | {pct} % interval |",
        "|---|---:|---:|",
        *(
            f"| {k} | {v:.4f} | {estimate['intervals'][k][0]:.4f} – {estimate['intervals'][k][1]:.4f} |"
            for k, v in estimate["metrics"].items()
        ),
    ]
    if estimate.get("value"):
        lo, hi = estimate["value_interval"]
        lines.append(f"| value ({estimate['unit']}) | {estimate['value']['total']:,.0f} | {lo:,.0f} – {hi:,.0f} |")
    t = estimate["trigger"]
    lines += ["", f"Estimated drop: {t['reason']}; trigger {'on' if t['enabled'] else 'off'} ({t['decision']})"]
    return lines
