"""Performance estimated before labels vs realized after, per month of 2013; ours vs NannyML's CBPE.

Goal (issue 13): mean |estimated - realized| ROC AUC <= 0.02 over the months after training, and no worse
than NannyML's CBPE on the same windows.

Data and model: the use case's real months through the ingestion logic (``curated_months`` of bench/drift.py);
a model trained on Jan-Mar with the product's pipeline and time split; its isotonic calibration map fitted on
the labelled part named by ``estimation.reference`` as the train flow does (``estimation.fit_calibration``).
Each later month is one window: every scored row (as the drift check sees it, labels unknown) is estimated with
``estimation.estimate_performance``; realized metrics are on the rows whose label arrived. NannyML gets the same
reference rows and the same rows per window, in its own environment (it is never a dependency):

    make bench-estimate        # builds .tools/nannyml-env once (nannyml 0.13.1), then runs this

Without NANNYML_PYTHON only our side is measured.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from drift import curated_months
from sklearn.metrics import roc_auc_score
from threadpoolctl import threadpool_info, threadpool_limits

from flows.settings import load_usecase
from tasks import estimation, metrics, training

REPO = Path(__file__).resolve().parents[1]
PEER = REPO / "bench" / "estimate_peer.py"
TRAIN = ["2013-01", "2013-02", "2013-03"]
WINDOWS = [f"2013-{m:02d}" for m in range(4, 13)]
GOAL = 0.02
REFERENCE = ["holdout"]


def main() -> None:
    uc = load_usecase("flight_delay")
    threshold, label = uc.model.decision_threshold, uc.target.name
    started = time.perf_counter()
    frames = curated_months(uc, TRAIN + WINDOWS)
    split = training.time_split(pd.concat([frames[m] for m in TRAIN], ignore_index=True), uc)
    # one OpenMP thread wherever the model fits or predicts: a busy 2-core machine (DESIGN.md, "Under CPU load")
    with threadpool_limits(limits=1):
        pipeline = training.fit_pipeline(training.build_pipeline(uc), split, uc)
        # the labelled part the calibration map is fitted on (estimation.reference), as the train flow does
        ref_part = getattr(split, uc.estimation.reference)
        y_val = ref_part[label].to_numpy(dtype="int64")
        p_val = pipeline.predict_proba(training.feature_frame(ref_part, uc))[:, 1]
        scored = {m: pipeline.predict_proba(training.feature_frame(frames[m], uc))[:, 1] for m in WINDOWS}
    print(f"set-up (ingest 12 months, train Jan-Mar, score Apr-Dec): {time.perf_counter() - started:.0f} s")
    calibration = estimation.fit_calibration(y_val, p_val)
    holdout_y = split.holdout[label].to_numpy(dtype="int64")
    with threadpool_limits(limits=1):
        holdout_p = pipeline.predict_proba(training.feature_frame(split.holdout, uc))[:, 1]
    holdout_auc = metrics.evaluate(holdout_y, holdout_p, threshold, uc.kpi)["roc_auc"]

    ours, realized, seconds = {}, {}, {}
    spec = uc.estimation
    payoff = None if uc.value is None else uc.value.payoff
    for m in WINDOWS:
        t0 = time.perf_counter()
        ours[m] = estimation.estimate_performance(
            scored[m], calibration, threshold, uc.kpi, payoff=payoff, resamples=spec.resamples,
            confidence=spec.confidence, seed=spec.seed,
        )  # fmt: skip
        seconds[m] = time.perf_counter() - t0
        known = frames[m][label].notna().to_numpy()
        y = frames[m][label][known].to_numpy(dtype="int64")
        realized[m] = metrics.evaluate(y, scored[m][known], threshold, uc.kpi)
        if payoff is not None:
            realized[m]["value"] = estimation.window_value(metrics.confusion(y, scored[m][known], threshold), payoff)

    recal = recalibrated_errors(frames, scored, calibration, label)
    REFERENCE[0] = uc.estimation.reference
    peer = run_peer(ref_part[label], p_val, scored, threshold)
    print_table(ours, realized, peer, seconds, holdout_auc, uc.value.unit if uc.value else "")
    print(
        "variant, not in the product: map refitted each month on the previous month's labelled rows (as they "
        f"arrive): MAE {np.mean(list(recal.values())):.4f}; per month "
        + ", ".join(f"{m} {e:.4f}" for m, e in recal.items())
    )


def recalibrated_errors(frames: dict, scored: dict, first: estimation.CalibrationMap, label: str) -> dict:
    """|estimated - realized| AUC when each month's map comes from the previous month's labels (April: first)."""
    errors, calibration = {}, first
    for m in WINDOWS:
        known = frames[m][label].notna().to_numpy()
        y, s = frames[m][label][known].to_numpy(dtype="int64"), scored[m][known]
        errors[m] = abs(estimation.expected_auc(scored[m], calibration.apply(scored[m])) - roc_auc_score(y, s))
        calibration = estimation.fit_calibration(y, s)
    return errors


def run_peer(y_val: pd.Series, p_val: np.ndarray, scored: dict, threshold: float) -> dict | None:
    python = os.environ.get("NANNYML_PYTHON")
    if not python:
        print("NANNYML_PYTHON not set: NannyML not measured (make bench-estimate builds its environment)")
        return None
    with tempfile.TemporaryDirectory(prefix="bench-estimate-") as folder:
        pd.DataFrame({"label": y_val.to_numpy(dtype="int64"), "proba": p_val, "flagged": (p_val >= threshold)}).astype(
            {"flagged": "int64"}
        ).to_parquet(Path(folder) / "reference.parquet")
        for m, p in scored.items():
            pd.DataFrame({"proba": p, "flagged": (p >= threshold).astype("int64")}).to_parquet(
                Path(folder) / f"window-{m}.parquet"
            )
        env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        subprocess.run([python, str(PEER), folder], check=True, env=env)
        return json.loads((Path(folder) / "peer.json").read_text())


def print_table(ours: dict, realized: dict, peer: dict | None, seconds: dict, holdout_auc: float, unit: str) -> None:
    load = os.getloadavg()
    pools = sorted({(p["internal_api"], p["num_threads"]) for p in threadpool_info()})
    print(
        f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} on {os.cpu_count()} cores; "
        f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}; fit/predict under threadpool_limits(1); "
        f"pools outside the limit: {pools}"
    )
    if peer:
        print(f"peer: NannyML {peer['version']} (pandas {peer['pandas']}) CBPE, fitted on the same reference rows")
    print(
        f"Jan-Mar model, holdout ROC AUC {holdout_auc:.4f}; calibration reference: {REFERENCE[0]}; "
        f"{ours[WINDOWS[0]].confidence:.0%} intervals"
    )
    head = (
        f"{'month':<8} {'rows':>6} {'realized':>8} {'ours':>7} {'interval':>15} {'|err|':>6} {'in':>3}"
        f" {'nannyml':>8} {'|err|':>6} {'ours s':>6} {'nml s':>6}  {'prec err':>8} {'rec err':>8}"
        f" {'value est':>10} {'value real':>10}"
    )
    print(head)
    errs, peer_errs = [], []
    for m in WINDOWS:
        est, real = ours[m], realized[m]
        auc, (lo, hi) = est.metrics["roc_auc"], est.intervals["roc_auc"]
        err = abs(auc - real["roc_auc"])
        errs.append(err)
        if peer:
            p = peer["windows"][m]
            nml = p["metrics"]["roc_auc"]["value"]
            peer_errs.append(abs(nml - real["roc_auc"]))
            peer_part = f" {nml:>8.4f} {peer_errs[-1]:>6.4f} {seconds[m]:>6.2f} {p['seconds']:>6.2f}"
        else:
            peer_part = f" {'-':>8} {'-':>6} {seconds[m]:>6.2f} {'-':>6}"
        inside = "yes" if lo <= real["roc_auc"] <= hi else "no"
        value = (
            f" {est.value['total']:>10,.0f} {real['value']['total']:>10,.0f}" if est.value and "value" in real else ""
        )
        print(
            f"{m:<8} {int(real['rows']):>6} {real['roc_auc']:>8.4f} {auc:>7.4f} {f'{lo:.4f}-{hi:.4f}':>15}"
            f" {err:>6.4f} {inside:>3}{peer_part}  {est.metrics['precision'] - real['precision']:>+8.4f}"
            f" {est.metrics['recall'] - real['recall']:>+8.4f}{value}"
        )
    mae = float(np.mean(errs))
    line = f"MAE |estimated - realized| ROC AUC: ours {mae:.4f} (goal <= {GOAL})"
    verdict = mae <= GOAL
    if peer_errs:
        peer_mae = float(np.mean(peer_errs))
        line += f", NannyML {peer_mae:.4f}; ours/NannyML {mae / peer_mae:.2f}"
        verdict = verdict and mae <= peer_mae + 1e-9
    print(line + f" -> {'MET' if verdict else 'MISSED'}")
    worst = sorted(WINDOWS, key=lambda m: -abs(ours[m].metrics["roc_auc"] - realized[m]["roc_auc"]))[:3]
    print(
        "largest errors: "
        + ", ".join(
            f"{m} (realized {realized[m]['roc_auc']:.4f} vs estimated {ours[m].metrics['roc_auc']:.4f}; base rate "
            f"realized {realized[m]['positives'] / realized[m]['rows']:.3f} vs estimated "
            f"{ours[m].metrics['base_rate']:.3f})"
            for m in worst
        )
    )
    print(
        "Where the base rate is far off, the relation between inputs and delay changed (concept drift): the "
        "calibration map of Jan-Mar no longer holds, and neither CBPE can see it without labels."
        + (f" Value in {unit}." if unit else "")
    )


if __name__ == "__main__":
    main()
