"""Train the use case's pipeline on curated snapshots and log everything about it to MLflow."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from importlib import metadata

import pandas as pd
from prefect import flow, runtime
from prefect.artifacts import create_markdown_artifact

from adapters.provenance import git_sha
from adapters.registry import DatasetRef, TrainingRun
from flows.context import Context, build_context
from flows.settings import REPO_ROOT
from flows.snapshots import SnapshotRef, read_snapshots, resolve_snapshots
from flows.steps import compute_step, io_step
from tasks import contract, estimation, explain, metrics, plots, training
from tasks.training import TimeSplit

CALIBRATION_ARTIFACT = "calibration/calibration_map.json"
# the serving environment of a model: what scoring needs to load and run it (exact versions, fast to log)
_RUNTIME_PACKAGES = ("scikit-learn", "pandas", "numpy", "scipy", "skops")


@compute_step("fit-pipeline")
def fit(ctx: Context, split: TimeSplit):
    with ctx.model_threads():
        return training.fit_pipeline(training.build_pipeline(ctx.usecase), split, ctx.usecase)


@compute_step("evaluate-model")
def evaluate_model(ctx: Context, pipeline, split: TimeSplit) -> dict:
    """Metrics, plots, importances, contract and drift reference: everything logged with the model."""
    with ctx.model_threads():
        return _evaluate(ctx, pipeline, split)


def _evaluate(ctx: Context, pipeline, split: TimeSplit) -> dict:
    uc = ctx.usecase
    label = uc.target.name
    scores = {}
    for part, frame in (("validation", split.validation), ("holdout", split.holdout)):
        proba = pipeline.predict_proba(training.feature_frame(frame, uc))[:, 1]
        scores[part] = (frame[label].to_numpy(), proba)
    y_hold, p_hold = scores["holdout"]
    found = {part: metrics.evaluate(y, p, uc.model.decision_threshold, uc.kpi) for part, (y, p) in scores.items()}
    # the label-free estimate's map; the other labelled part shows how well it estimates rows it did not see
    reference = uc.estimation.reference
    calibration = estimation.fit_calibration(*scores[reference])
    other = "validation" if reference == "holdout" else "holdout"
    unseen = estimation.estimate_performance(
        scores[other][1], calibration, uc.model.decision_threshold, uc.kpi, resamples=50, seed=uc.estimation.seed
    )
    found[other] |= {f"estimated_{k}": v for k, v in unseen.metrics.items()}
    importances = explain.permutation_importances(
        pipeline, training.feature_frame(split.holdout, uc), y_hold, seed=uc.model.seed
    )
    expectations, sketch = contract.derive_contract(split.train, uc)
    train_proba = pipeline.predict_proba(training.feature_frame(split.train, uc))[:, 1]
    sketch = replace(sketch, prediction=contract.sketch_predictions(train_proba, uc.contract.reference_bins))
    artifacts = {
        "plots/roc_curve.png": plots.roc_curve_png(y_hold, {"holdout": p_hold}),
        "plots/calibration.png": plots.calibration_png(y_hold, p_hold),
        "plots/confusion_matrix.png": plots.confusion_png(
            metrics.confusion(y_hold, p_hold, uc.model.decision_threshold)
        ),
        "plots/permutation_importance.png": plots.importance_png(importances),
        "contract/expectations.json": _json(contract.contract_to_dict(expectations)),
        CALIBRATION_ARTIFACT: _json(calibration.to_dict()),
        "contract/reference_sketch.json": _json(contract.sketch_to_dict(sketch)),
        "contract/feature_importance.json": _json(importances),
    }
    return {"metrics": found, "importances": importances, "artifacts": artifacts}


@io_step("log-training-run")
def log_run(
    ctx: Context, pipeline, split: TimeSplit, refs: list[SnapshotRef], evaluation: dict, seconds: dict
) -> TrainingRun:
    uc = ctx.usecase
    flow_run_id = str(runtime.flow_run.id or "")
    tags = {
        "usecase": uc.name,
        "git_sha": git_sha(REPO_ROOT),
        "snapshot_uris": json.dumps([r.uri for r in refs]),
        "snapshot_versions": ",".join(r.version for r in refs),
        "periods": ",".join(r.period for r in refs),
        "prefect.flow_run_id": flow_run_id,
        "prefect.flow_run_url": str(runtime.flow_run.ui_url or ""),
        **{f"split.{k}": v for k, v in split.boundaries().items()},
    }
    if any(r.labels_uri for r in refs):
        # the late labels trained on: the gate evaluates on them, a retrain on newer labels is a new window
        tags["label_uris"] = json.dumps({r.period: r.labels_uri for r in refs if r.labels_uri})
        tags["label_versions"] = ",".join(r.labels_version or "-" for r in refs)
    params = {
        "estimator": uc.model.estimator,
        **{f"estimator.{k}": v for k, v in uc.model.params.items()},
        "decision_threshold": uc.model.decision_threshold,
        "seed": uc.model.seed,
        "features.numeric": ",".join(uc.features.numeric),
        "features.categorical": ",".join(uc.features.categorical),
        "features.time_parts": ",".join(uc.features.time_parts),
        "rows.train": len(split.train),
        "rows.validation": len(split.validation),
        "rows.holdout": len(split.holdout),
    }
    found = {
        f"{part}_{name}": value for part, values in evaluation["metrics"].items() for name, value in values.items()
    }
    found |= {f"seconds_{k}": v for k, v in seconds.items()}
    datasets = [
        DatasetRef(name=f"{uc.name}-{r.period}", uri=r.uri, digest=r.version, rows=r.rows, context="training")
        for r in refs
    ]
    with ctx.model_threads():  # the model's signature is inferred from a prediction
        return ctx.registry().log_training_run(
            experiment=uc.name,
            run_name=f"train-{'_'.join(r.period for r in refs)}",
            params=params,
            metrics=found,
            tags=tags,
            model=pipeline,
            input_example=_signature_example(training.feature_frame(split.validation.head(5), uc)),
            datasets=datasets,
            artifacts=evaluation["artifacts"],
            pip_requirements=[f"{p}=={metadata.version(p)}" for p in _RUNTIME_PACKAGES],
        )


@flow(name="train", log_prints=False)
def train(
    snapshots: list[str] | None = None,
    months: str | None = None,
    profile: str | None = None,
    usecase: str | None = None,
) -> dict:
    """Train the model on curated snapshots (time split) and log it, its metrics and its contract to MLflow."""
    ctx = build_context(profile, usecase)
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    frame, refs = read_snapshots(ctx, resolve_snapshots(ctx, snapshots, months))
    seconds["read"] = time.perf_counter() - started
    training.check_training_input(frame, ctx.usecase)
    split = training.time_split(training.labelled_rows(frame, ctx.usecase), ctx.usecase)
    started = time.perf_counter()
    pipeline = fit(ctx, split)
    seconds["fit"] = time.perf_counter() - started
    started = time.perf_counter()
    evaluation = evaluate_model(ctx, pipeline, split)
    seconds["evaluate"] = time.perf_counter() - started
    started = time.perf_counter()
    run = log_run(ctx, pipeline, split, refs, evaluation, seconds)
    seconds["log"] = time.perf_counter() - started
    result = {
        "run_id": run.run_id,
        "model_uri": run.model_uri,
        "run_url": run.run_url,
        "snapshots": [r.uri for r in refs],
        "rows": {"train": len(split.train), "validation": len(split.validation), "holdout": len(split.holdout)},
        "unlabelled_rows_excluded": int(
            len(frame) - sum(len(p) for p in (split.train, split.validation, split.holdout))
        ),
        "split": split.boundaries(),
        "metrics": evaluation["metrics"],
        "top_features": dict(list(evaluation["importances"].items())[:5]),
        "seconds": {k: round(v, 2) for k, v in seconds.items()},
    }
    _publish(ctx, result)
    return result


def _publish(ctx: Context, result: dict) -> None:
    if runtime.flow_run.id is None:
        return
    rows = [
        f"| {name} | {result['metrics']['validation'][name]:.4f} | {result['metrics']['holdout'][name]:.4f} |"
        for name in ("roc_auc", "log_loss", "brier", "precision", "recall", "kpi", "calibration_error")
    ]
    markdown = "\n".join(
        [
            f"# Training run `{result['run_id']}`",
            "",
            f"MLflow: {result['run_url'] or result['model_uri']}",
            "",
            "| metric | validation | holdout |",
            "|---|---:|---:|",
            *rows,
            "",
            f"Rows: {result['rows']} (unlabelled rows excluded: {result['unlabelled_rows_excluded']:,})",
            f"Split: {result['split']}",
            "",
            "Snapshots: " + ", ".join(f"`{s}`" for s in result["snapshots"]),
        ]
    )
    create_markdown_artifact(
        key=f"train-{ctx.usecase.name}".replace("_", "-"), markdown=markdown, description="Training run"
    )


def _signature_example(frame):
    """Integer features as floats in the signature: a missing value at scoring time is then not a schema error."""
    ints = [c for c, t in frame.dtypes.items() if pd.api.types.is_integer_dtype(t)]
    return frame.astype(dict.fromkeys(ints, "float64"))


def _json(value: object) -> bytes:
    return json.dumps(value, indent=2, sort_keys=True, default=str).encode("utf-8")
