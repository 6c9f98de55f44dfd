"""Pure rules shared by the drift and performance checks: window order, debounce state, verdicts, event identity.

A *window* is one scored batch: its name is the batch's period (``2013-05``) when it came from a curated
snapshot, else its batch id. Results of earlier checks are stored as JSON (one per window and model version);
the debounce state is derived from them, never kept elsewhere, so a rerun of a check sees exactly what the
previous runs decided.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from tasks import metrics
from tasks.errors import InputDataError, MlopsError
from tasks.usecase import KpiSpec, PerformanceSpec

DRIFT_EVENT = "mlops.drift.detected"
PERFORMANCE_EVENT = "mlops.performance.degraded"
ESTIMATED_EVENT = "mlops.performance.estimated_degraded"
# fixed namespace: the same (event, model, version, window) always gets the same event id, so the server drops
# a re-emitted copy (a rerun of a check) instead of triggering again
_EVENT_NAMESPACE = uuid.UUID("5b0d7a52-8a0e-4d53-9a53-2f3c1f1f6a10")


@dataclass(frozen=True)
class ScoredWindow:
    """One scoring output: which window, which model version scored it, and where its manifest is."""

    window: str
    batch_id: str
    model_version: str
    scored_at: str
    manifest_uri: str


def window_name(manifest: Mapping) -> str:
    """The period of the curated snapshot a batch came from, else the batch id."""
    snapshot = manifest.get("snapshot") or {}
    return str(snapshot.get("period") or manifest["batch_id"])


def pick_window(windows: Sequence[ScoredWindow], version: str, wanted: str | None) -> ScoredWindow:
    """The window ``wanted`` (a period or batch id; None: the latest) as scored by model ``version``.

    When a window was scored several times by the same version (a new snapshot of the month), the latest
    scoring wins.

    Raises:
        InputDataError: nothing scored by that version, or not that window; the message lists what exists.
    """
    mine = sorted((w for w in windows if w.model_version == version), key=lambda w: (w.window, w.scored_at))
    if wanted is not None:
        mine = [w for w in mine if wanted in (w.window, w.batch_id)]
    if not mine:
        scored = sorted({f"{w.window} (model {w.model_version})" for w in windows}) or ["nothing"]
        what = f"window '{wanted}'" if wanted else "any window"
        raise InputDataError(
            f"model version {version} has not scored {what}; scored so far: {', '.join(scored[-12:])}. "
            "Run `mlops score` on the batch first"
        )
    return mine[-1]


def drift_history(results: Sequence[Mapping], window: str) -> tuple[list[bool | None], int | None]:
    """Decisions of the windows before ``window`` (oldest first), then of ``window``, and the last retrain index.

    ``results`` are stored drift results of one model version (any order); the one of ``window`` itself, if
    stored by an earlier run, is left out: the caller appends the fresh decision.
    """
    earlier = sorted((r for r in results if r["window"] < window), key=lambda r: r["window"])
    history = [r["drifted"] for r in earlier]
    requested = [i for i, r in enumerate(earlier) if r.get("retrain_requested")]
    return history, (requested[-1] if requested else None)


def event_id(event: str, model: str, version: str, window: str) -> str:
    return str(uuid.uuid5(_EVENT_NAMESPACE, f"{event}|{model}|{version}|{window}"))


def model_resource(model: str, usecase: str, version: str, window: str) -> dict[str, str]:
    """The Prefect event resource of a model: what the retrain trigger matches (``mlops.model.*``) and keys on."""
    return {
        "prefect.resource.id": f"mlops.model.{model}",
        "prefect.resource.name": model,
        "mlops.usecase": usecase,
        "mlops.model.version": version,
        "mlops.window": window,
    }


# ---- performance


@dataclass(frozen=True)
class PerformanceVerdict:
    degraded: bool | None
    metric: str
    value: float | None
    floor: float | None
    reference: float | None
    limit: float | None
    reason: str

    def to_dict(self) -> dict:
        return asdict(self)


def join_labels(scores: pd.DataFrame, labels: pd.DataFrame, id_column: str, label: str) -> tuple[pd.DataFrame, dict]:
    """Scores with their arrived label (inner join by id) and the row accounting of the join.

    Every scored row is either labelled, without a label yet (null target: the outcome never happened), or has
    no label record at all; ``rows_scored == rows_labelled + rows_unlabelled + rows_missing``. Labels of ids that
    were never scored are counted (``labels_not_scored``) and left out.

    Raises:
        InputDataError: an id repeats in the labels (the join would multiply scored rows), or a column is missing.
    """
    for frame, what, needed in ((scores, "scores", id_column), (labels, "labels", label)):
        if needed not in frame.columns:
            raise InputDataError(f"{what} have no column '{needed}'")
    if id_column not in labels.columns:
        raise InputDataError(f"labels have no column '{id_column}'")
    repeated = labels[id_column].duplicated()
    if repeated.any():
        examples = ", ".join(map(str, labels.loc[repeated, id_column].head(3)))
        raise InputDataError(f"labels repeat {int(repeated.sum())} id(s) in '{id_column}', e.g. {examples}")
    joined = scores.merge(labels[[id_column, label]], on=id_column, how="left", indicator=True)
    missing = int((joined["_merge"] == "left_only").sum())
    unlabelled = int(((joined["_merge"] == "both") & joined[label].isna()).sum())
    labelled = joined[joined[label].notna()].drop(columns="_merge")
    counts = {
        "rows_scored": len(scores),
        "rows_labelled": len(labelled),
        "rows_unlabelled": unlabelled,
        "rows_missing_label": missing,
        "labels_not_scored": int((~labels[id_column].isin(scores[id_column])).sum()),
    }
    return labelled, counts


def realized_metrics(labelled: pd.DataFrame, label: str, score: str, threshold: float, kpi: KpiSpec) -> dict:
    """Every evaluation metric on the labelled scored rows; {} when they hold a single class or none."""
    if labelled.empty or labelled[label].nunique() < 2:
        return {}
    y = labelled[label].to_numpy(dtype=np.int64)
    return metrics.evaluate(y, labelled[score].to_numpy(dtype=np.float64), threshold, kpi)


def performance_verdict(
    realized: Mapping[str, float], rows_labelled: int, holdout: float | None, spec: PerformanceSpec
) -> PerformanceVerdict:
    """Degraded when the realized metric is under the floor, or more than ``max_drop`` under the holdout value."""
    if spec.floor is None and spec.max_drop is None:
        raise MlopsError("performance check needs performance.floor or performance.max_drop in the use case")
    limit = None if spec.max_drop is None or holdout is None else holdout - spec.max_drop
    value = realized.get(spec.metric)
    base = {"metric": spec.metric, "value": value, "floor": spec.floor, "reference": holdout, "limit": limit}
    if rows_labelled < spec.min_labelled_rows or value is None:
        why = f"insufficient labels: {rows_labelled} labelled rows (need {spec.min_labelled_rows}, both classes)"
        return PerformanceVerdict(degraded=None, reason=why, **base)
    reasons = []
    if spec.floor is not None and value < spec.floor:
        reasons.append(f"{spec.metric} {value:.4f} < floor {spec.floor:.4f}")
    if limit is not None and value < limit:
        reasons.append(f"{spec.metric} {value:.4f} < holdout {holdout:.4f} - {spec.max_drop:.4f}")
    if reasons:
        return PerformanceVerdict(degraded=True, reason="; ".join(reasons), **base)
    bounds = [f"floor {spec.floor:.4f}" if spec.floor is not None else "", f"limit {limit:.4f}" if limit else ""]
    return PerformanceVerdict(
        degraded=False, reason=f"{spec.metric} {value:.4f} within {' and '.join(b for b in bounds if b)}", **base
    )
