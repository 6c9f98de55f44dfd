"""What the monitoring dashboard shows, assembled from stored results: pure functions, no I/O, no Dash.

Inputs are the JSON documents the flows already store (scoring manifests, drift and performance results) and
what the registry knows about model versions (training periods, gate outcome, alias moves). One row per
(window, model version) that scored it; the view of "all versions" keeps, per window, the version that scored
it last (the one that was live).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pandas as pd

ALL_VERSIONS = "all"
COLUMNS = (
    "window",
    "model_version",
    "batch_id",
    "scored_at",
    "rows_in",
    "rows_scored",
    "rows_quarantined",
    "quarantined_share",
    "rows_outlier",
    "outlier_share",
    "drift_score",
    "drifted",
    "retrain_requested",
    "decision",
    "drift_reason",
    "est_roc_auc",
    "est_roc_auc_low",
    "est_roc_auc_high",
    "real_roc_auc",
    "est_value",
    "est_value_low",
    "est_value_high",
    "real_value",
    "degraded",
    "drift_flow_run",
    "drift_mlflow_url",
    "perf_flow_run",
    "perf_mlflow_url",
    "report_uri",
)


@dataclass(frozen=True)
class Bundle:
    """Everything stored about one use case's monitoring, as read by the dashboard's loader."""

    usecase: str
    manifests: Sequence[Mapping] = ()
    drift: Sequence[Mapping] = ()
    performance: Sequence[Mapping] = ()
    versions: Sequence[Mapping] = ()  # version, periods, gate_outcome, gate_reasons, run_url
    alias_moves: Sequence[Mapping] = ()  # at, alias, from_version, to_version, reason
    value_unit: str | None = None
    metric: str = "roc_auc"
    links: Mapping[str, str] = field(default_factory=dict)  # prefect_ui, mlflow_ui


def _window(manifest: Mapping) -> str:
    snapshot = manifest.get("snapshot") or {}
    return str(snapshot.get("period") or manifest["batch_id"])


def _share(part: float | None, whole: float | None) -> float | None:
    return None if part is None or not whole else float(part) / float(whole)


def _get(doc: Mapping | None, *path: str) -> object:
    for key in path:
        if not isinstance(doc, Mapping):
            return None
        doc = doc.get(key)
    return doc


def window_table(bundle: Bundle) -> pd.DataFrame:
    """One row per (window, model version): scoring counts, drift verdict, estimate, realized figures, links.

    A window scored several times by one version keeps its latest scoring (as the checks do).
    """
    latest: dict[tuple[str, str], Mapping] = {}
    for m in sorted(bundle.manifests, key=lambda m: str(m.get("scored_at", ""))):
        latest[(_window(m), str(m["model"]["version"]))] = m
    drift = {(str(r["window"]), str(r["model"]["version"])): r for r in bundle.drift}
    perf = {(str(r["window"]), str(r["model"]["version"])): r for r in bundle.performance}
    rows = []
    for key in sorted(set(latest) | set(drift) | set(perf)):
        m, d, p = latest.get(key, {}), drift.get(key), perf.get(key)
        est = _get(d, "estimate") if _get(d, "estimate", "available") else None
        rows.append(
            {
                "window": key[0],
                "model_version": key[1],
                "batch_id": m.get("batch_id") or _get(d, "batch_id") or _get(p, "batch_id"),
                "scored_at": m.get("scored_at"),
                "rows_in": m.get("rows_in"),
                "rows_scored": m.get("rows_scored"),
                "rows_quarantined": m.get("rows_quarantined"),
                "quarantined_share": _share(m.get("rows_quarantined"), m.get("rows_in")),
                "rows_outlier": m.get("rows_outlier"),
                "outlier_share": _share(m.get("rows_outlier"), m.get("rows_scored")),
                "drift_score": _get(d, "score"),
                "drifted": _get(d, "drifted"),
                "retrain_requested": _get(d, "retrain_requested"),
                "decision": _get(d, "decision"),
                "drift_reason": _get(d, "reason"),
                "est_roc_auc": _get(est, "metrics", bundle.metric),
                "est_roc_auc_low": (_get(est, "intervals", bundle.metric) or [None, None])[0],
                "est_roc_auc_high": (_get(est, "intervals", bundle.metric) or [None, None])[1],
                "real_roc_auc": _get(p, "metrics", bundle.metric),
                "est_value": _get(est, "value", "total"),
                "est_value_low": (_get(est, "value_interval") or [None, None])[0],
                "est_value_high": (_get(est, "value_interval") or [None, None])[1],
                "real_value": _get(p, "value", "total"),
                "degraded": _get(p, "degraded"),
                "drift_flow_run": _get(d, "flow_run_id"),
                "drift_mlflow_url": _get(d, "mlflow_run", "url"),
                "perf_flow_run": _get(p, "flow_run_id"),
                "perf_mlflow_url": _get(p, "mlflow_run", "url"),
                "report_uri": _get(d, "report_uri"),
            }
        )
    return pd.DataFrame(rows, columns=list(COLUMNS))


def select(table: pd.DataFrame, version: str = ALL_VERSIONS, start: str | None = None, end: str | None = None):
    """Rows of one model version (or, for all, the last-scored version per window) within [start, end]."""
    rows = table
    if start:
        rows = rows[rows["window"] >= start]
    if end:
        rows = rows[rows["window"] <= end]
    if version != ALL_VERSIONS:
        return rows[rows["model_version"] == str(version)].reset_index(drop=True)
    order = rows.assign(_at=rows["scored_at"].fillna(""), _v=pd.to_numeric(rows["model_version"], errors="coerce"))
    live = order.sort_values(["window", "_at", "_v"]).groupby("window", as_index=False).tail(1)
    return live.drop(columns=["_at", "_v"]).sort_values("window").reset_index(drop=True)


def drift_matrix(bundle: Bundle, rows: pd.DataFrame) -> tuple[list[str], list[str], list[list[float | None]]]:
    """Per input (and the scores), per selected window: drift statistic / its threshold (1 = the alarm line).

    Returns:
        inputs (sorted by their largest ratio, most drifted first), windows, and the ratio matrix inputs x windows.
    """
    by_key = {(str(r["window"]), str(r["model"]["version"])): r for r in bundle.drift}
    windows = list(rows["window"])
    ratios: dict[str, dict[str, float | None]] = {}
    for window, version in zip(rows["window"], rows["model_version"], strict=True):
        verdict = _get(by_key.get((window, version)), "verdict") or {}
        for r in [*(verdict.get("features") or []), *([verdict["prediction"]] if verdict.get("prediction") else [])]:
            value, threshold = r.get("value"), r.get("threshold")
            ok = value is not None and threshold and not math.isnan(float(value))
            ratios.setdefault(r["feature"], {})[window] = float(value) / float(threshold) if ok else None
    inputs = sorted(ratios, key=lambda f: -max((v for v in ratios[f].values() if v is not None), default=0.0))
    return inputs, windows, [[ratios[f].get(w) for w in windows] for f in inputs]


def version_bands(rows: pd.DataFrame) -> list[dict]:
    """Runs of consecutive selected windows scored by one model version: where each version was live."""
    bands: list[dict] = []
    for window, version in zip(rows["window"], rows["model_version"], strict=True):
        if bands and bands[-1]["version"] == version:
            bands[-1]["end"] = window
        else:
            bands.append({"version": version, "start": window, "end": window})
    return bands


def markers(bundle: Bundle) -> list[dict]:
    """Retrains, gate decisions and alias moves, each placed at the last data period its model trained on."""
    moves: dict[str, list[str]] = {}
    for move in sorted(bundle.alias_moves, key=lambda m: str(m.get("at", ""))):
        if move.get("to_version"):
            moves.setdefault(str(move["to_version"]), []).append(
                f"@{move['alias']} at {move.get('at', '')}: {move.get('reason', '')}"
            )
    found = []
    for v in sorted(bundle.versions, key=lambda v: int(v["version"]) if str(v["version"]).isdigit() else 0):
        periods = [p for p in str(v.get("periods") or "").split(",") if p]
        outcome = v.get("gate_outcome") or "no gate decision"
        found.append(
            {
                "window": periods[-1] if periods else None,
                "version": str(v["version"]),
                "label": f"v{v['version']} {outcome}",
                "promoted": any(m.startswith("@champion") for m in moves.get(str(v["version"]), [])),
                "text": "; ".join(
                    [
                        f"version {v['version']} trained on {', '.join(periods) or 'unknown periods'}",
                        f"gate: {outcome}" + (f" ({v['gate_reasons']})" if v.get("gate_reasons") else ""),
                        *moves.get(str(v["version"]), []),
                    ]
                ),
                "run_url": v.get("run_url"),
            }
        )
    return found


def flow_run_url(prefect_ui: str | None, flow_run_id: str | None) -> str | None:
    """The Prefect UI page of a flow run, when both the UI and the run are known."""
    if not prefect_ui or not flow_run_id:
        return None
    return f"{prefect_ui.rstrip('/')}/runs/flow-run/{flow_run_id}"


def summary(rows: pd.DataFrame) -> dict[str, float | int | None]:
    """Headline figures of the selection: windows, rows scored, windows drifted, mean estimate error."""
    both = rows.dropna(subset=["est_roc_auc", "real_roc_auc"])
    error = (both["real_roc_auc"] - both["est_roc_auc"]).abs().mean() if len(both) else None
    return {
        "windows": len(rows),
        "rows_scored": int(pd.to_numeric(rows["rows_scored"], errors="coerce").fillna(0).sum()),
        "windows_drifted": int((rows["drifted"] == True).sum()),  # noqa: E712 - None means no verdict
        "retrains_requested": int((rows["retrain_requested"] == True).sum()),  # noqa: E712
        "mean_abs_estimate_error": None if error is None else float(error),
        "est_value": float(pd.to_numeric(rows["est_value"], errors="coerce").sum(min_count=1) or 0.0),
        "real_value": float(pd.to_numeric(rows["real_value"], errors="coerce").sum(min_count=1) or 0.0),
    }
