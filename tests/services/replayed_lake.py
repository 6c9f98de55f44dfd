"""A year of monthly windows as the flows store them, for the dashboard tests.

The lake gets what a replay of 2013 leaves (scoring manifests, drift results with their reports and label-free
estimates, performance results) in the flows' layout, written through the storage adapter; the registry is a
real MLflow (SQLite) with four versions logged through the registry adapter, gate tags and alias moves with
reasons. Estimates are computed by the product's estimation functions on scores drawn per window; the drift
verdicts use the statistics' shapes of tasks/drift.py. Seeded: the same lake every time.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from adapters.registry import MlflowRegistry
from adapters.storage import LocalStorage, write_json
from tasks import estimation, metrics
from tasks.drift import FeatureDrift, WindowDrift
from tasks.usecase import KpiSpec

USECASE = "flight_delay"
MODEL = "flight-delay-classifier"
PAYOFF = {"tp": 400.0, "fp": -60.0, "fn": -150.0, "tn": 0.0}
KPI = KpiSpec(name="top", top_fraction=0.1)
THRESHOLD = 0.3
INPUTS = (("temp", "numeric", "psi"), ("wind_gust", "numeric", "psi"), ("carrier", "categorical", "l_infinity"))
# version -> (training periods, gate outcome, promoted, windows it scored)
VERSIONS = {
    "1": ("2013-01,2013-02,2013-03", "promote", True, range(4, 7)),
    "2": ("2013-04,2013-05,2013-06", "promote", True, range(7, 10)),
    "3": ("2013-07,2013-08,2013-09", "reject", False, range(0)),
    "4": ("2013-07,2013-08,2013-09", "promote", True, range(10, 16)),
}
PREFECT_UI = "http://127.0.0.1:4200"


def months() -> list[str]:
    """Twelve monthly windows, 2013-04 .. 2014-03."""
    return [f"{2013 + (m - 1) // 12}-{(m - 1) % 12 + 1:02d}" for m in range(4, 16)]


def _verdict(rng: np.random.Generator, month: int) -> WindowDrift:
    features = []
    for name, kind, stat in INPUTS:
        value = float(rng.uniform(0.5, 3.0) if name != "carrier" else rng.uniform(0.01, 0.04))
        threshold = 0.1 if stat == "psi" else 0.05
        features.append(FeatureDrift(name, kind, stat, value, threshold, value > threshold, None, 28000, 0.0, 0.0, 0.0))
    prediction = FeatureDrift(
        "prediction", "prediction", "psi", 0.05 * month, 0.1, 0.05 * month > 0.1, None, 28000, 0, 0, 0
    )
    drifted = any(f.drifted for f in features)
    return WindowDrift(28000, tuple(features), prediction, 0.2, 0.15, drifted, "weather inputs drifted")


def build(home: Path, seed: int = 13) -> dict:
    """Write the lake and registry under ``home`` (the local profile's layout); return what was written."""
    rng = np.random.default_rng(seed)
    lake = home / "lake" / USECASE
    storage = LocalStorage()
    registry = MlflowRegistry(f"sqlite:///{home / 'mlflow' / 'mlflow.db'}", str(home / "mlflow" / "artifacts"))
    x = pd.DataFrame({"distance": rng.random(80), "hour": rng.random(80)})
    y = (x["distance"] + rng.normal(0, 0.3, 80) > 0.5).astype(int)
    model = LogisticRegression().fit(x, y)
    calibration = estimation.CalibrationMap(knots_x=(0.0, 1.0), knots_y=(0.0, 1.0), rows=2)
    written: dict = {"drift": {}, "performance": {}, "manifests": {}}
    for version, (periods, outcome, promoted, scored) in VERSIONS.items():
        run = registry.log_training_run(
            experiment=USECASE,
            run_name=f"train-{periods}",
            params={},
            metrics={"holdout_roc_auc": 0.68},
            tags={"periods": periods, "usecase": USECASE},
            model=model,
            input_example=x.head(3),
            datasets=[],
            artifacts={},
            pip_requirements=["scikit-learn"],
        )
        registry.register_version(MODEL, run, {})
        registry.set_version_tags(MODEL, version, {"gate.outcome": outcome, "gate.reasons": f"{outcome}: auc check"})
        if promoted:
            registry.set_alias(MODEL, "champion", version, reason=f"promoted by gate (v{version})", flow_run_id=None)
        for month in scored:
            window = months()[month - 4]
            written["manifests"][(window, version)] = _window(
                storage, registry, lake, rng, window, version, month, calibration, written
            )
    return written


def _window(storage, registry, lake: Path, rng, window: str, version: str, month: int, calibration, written) -> dict:
    n = 2000
    scores = rng.beta(2, 5, n)
    labels = (rng.random(n) < np.clip(scores + rng.normal(0, 0.05, n), 0, 1)).astype(int)
    batch = f"b-{window}"
    scores_uri = f"{lake}/scores/batch={batch}/model={version}"
    manifest = {
        "batch_id": batch,
        "snapshot": {"period": window},
        "model": {"name": MODEL, "version": version},
        "scores_uri": scores_uri,
        "rows_in": n + 40 + month,
        "rows_scored": n,
        "rows_quarantined": 40 + month,
        "rows_outlier": 10 * month,
        "files": [],
        "input_files": [],
        "scored_at": f"2026-01-{month:02d}T00:00:00+00:00",
    }
    write_json(storage, f"{scores_uri}/_manifest.json", manifest)
    est = estimation.estimate_performance(scores, calibration, THRESHOLD, KPI, payoff=PAYOFF, resamples=50, seed=month)
    estimate = {"available": True, "unit": "USD", **est.to_dict()}
    estimate["trigger"] = {
        "enabled": False,
        "dropped": False,
        "reason": "ok",
        "decision": "-",
        "retrain_requested": False,
    }
    verdict = _verdict(rng, month)
    tags = {"mlops.check": "drift", "mlops.window": window, "mlops.model_version": version}
    drift_run = registry.log_metrics_run(
        experiment=f"{USECASE}-monitoring",
        run_name=f"drift-{window}",
        metrics={"drift_score": 0.2},
        tags=tags,
        artifacts={},
    )
    folder = f"{lake}/monitoring/drift/model={version}/window={window}"
    storage.write_bytes(f"{folder}/report.html", f"<html><h1>Drift report {window} v{version}</h1></html>".encode())
    drift = {
        "window": window,
        "batch_id": batch,
        "model": {"name": MODEL, "version": version},
        "drifted": verdict.drifted,
        "score": verdict.score,
        "reason": verdict.reason,
        "history": [verdict.drifted],
        "retrain_requested": window in ("2013-06", "2013-09"),
        "decision": f"decision of {window}",
        "verdict": verdict.to_dict(),
        "estimate": estimate,
        "flow_run_id": f"00000000-0000-0000-0000-0000000{month:05d}",
        "mlflow_run": {"run_id": drift_run, "url": f"http://127.0.0.1:5000/#/experiments/1/runs/{drift_run}"},
    }
    write_json(storage, f"{folder}/result.json", drift)
    written["drift"][(window, version)] = drift
    if window >= "2014-02":  # the last windows' labels have not arrived yet
        return manifest
    realized = metrics.evaluate(labels, scores, THRESHOLD, KPI)
    cells = metrics.confusion(labels, scores, THRESHOLD)
    perf = {
        "window": window,
        "batch_id": batch,
        "model": {"name": MODEL, "version": version},
        "metrics": realized,
        "confusion": cells,
        "value": estimation.window_value(cells, PAYOFF),
        "degraded": False,
        "reason": "ok",
        "flow_run_id": f"11111111-0000-0000-0000-0000000{month:05d}",
    }
    write_json(storage, f"{lake}/monitoring/performance/model={version}/window={window}/result.json", perf)
    written["performance"][(window, version)] = perf
    return manifest
