"""The dashboard's data assembly: windows x versions, selection, drift matrix, version bands, markers."""

from __future__ import annotations

import pytest

from tasks import dashboard as view


def manifest(window: str, version: str, at: str, rows: int = 1000, quarantined: int = 10, outliers: int = 50) -> dict:
    return {
        "batch_id": f"b-{window}",
        "snapshot": {"period": window},
        "model": {"version": version},
        "scored_at": at,
        "rows_in": rows + quarantined,
        "rows_scored": rows,
        "rows_quarantined": quarantined,
        "rows_outlier": outliers,
    }


def drift(window: str, version: str, ratio: float = 2.0, retrain: bool = False) -> dict:
    return {
        "window": window,
        "model": {"version": version},
        "score": 0.3,
        "drifted": ratio > 1,
        "retrain_requested": retrain,
        "decision": "wait",
        "reason": "r",
        "verdict": {
            "features": [
                {"feature": "temp", "value": 0.1 * ratio, "threshold": 0.1},
                {"feature": "carrier", "value": 0.01, "threshold": 0.05},
            ],
            "prediction": {"feature": "prediction", "value": 0.02, "threshold": 0.1},
        },
        "estimate": {
            "available": True,
            "metrics": {"roc_auc": 0.71},
            "intervals": {"roc_auc": [0.70, 0.72]},
            "value": {"total": 1000.0},
            "value_interval": [900.0, 1100.0],
        },
        "flow_run_id": "run-1",
        "mlflow_run": {"url": "http://mlflow/#/runs/1"},
    }


def perf(window: str, version: str, auc: float) -> dict:
    return {"window": window, "model": {"version": version}, "metrics": {"roc_auc": auc}, "value": {"total": 800.0}}


@pytest.fixture
def bundle() -> view.Bundle:
    return view.Bundle(
        usecase="u",
        manifests=[
            manifest("2013-04", "1", "2026-01-01"),
            manifest("2013-05", "1", "2026-01-02"),
            manifest("2013-05", "1", "2026-01-03", rows=2000),  # a rescoring: the latest wins
            manifest("2013-06", "1", "2026-01-04"),
            manifest("2013-06", "2", "2026-01-05"),  # the new champion rescored June
            manifest("2013-07", "2", "2026-01-06"),
        ],
        drift=[drift("2013-04", "1", 0.5), drift("2013-05", "1", 3.0, retrain=True), drift("2013-06", "2", 1.5)],
        performance=[perf("2013-04", "1", 0.69), perf("2013-06", "2", 0.66)],
        versions=[
            {"version": "1", "periods": "2013-01,2013-02,2013-03", "gate_outcome": "promote"},
            {"version": "2", "periods": "2013-03,2013-04,2013-05", "gate_outcome": "promote", "gate_reasons": "ok"},
            {"version": "3", "periods": "2013-04,2013-05,2013-06", "gate_outcome": "reject"},
        ],
        alias_moves=[
            {"at": "t1", "alias": "champion", "to_version": "1", "reason": "first"},
            {"at": "t2", "alias": "challenger", "to_version": "3", "reason": "new training run"},
            {"at": "t3", "alias": "champion", "to_version": "2", "reason": "promoted by gate"},
        ],
    )


def test_window_table_joins_scoring_drift_estimate_and_realized_per_window_and_version(bundle):
    table = view.window_table(bundle)
    assert list(zip(table["window"], table["model_version"], strict=True)) == [
        ("2013-04", "1"),
        ("2013-05", "1"),
        ("2013-06", "1"),
        ("2013-06", "2"),
        ("2013-07", "2"),
    ]
    may = table[table["window"] == "2013-05"].iloc[0]
    assert may["rows_scored"] == 2000  # the later scoring of the same window and version
    assert may["quarantined_share"] == pytest.approx(10 / 2010)
    assert may["outlier_share"] == pytest.approx(50 / 2000)
    assert may["retrain_requested"]
    april = table[table["window"] == "2013-04"].iloc[0]
    assert (april["est_roc_auc"], april["est_roc_auc_low"], april["est_roc_auc_high"]) == (0.71, 0.70, 0.72)
    assert (april["real_roc_auc"], april["est_value"], april["real_value"]) == (0.69, 1000.0, 800.0)
    july = table[table["window"] == "2013-07"].iloc[0]
    assert july["drift_score"] is None or july["drift_score"] != july["drift_score"]  # no drift check yet
    assert set(view.COLUMNS) == set(table.columns)


def test_a_missing_estimate_leaves_the_estimate_columns_empty(bundle):
    no_estimate = [{**drift("2013-04", "1"), "estimate": {"available": False, "reason": "no map"}}]
    table = view.window_table(view.Bundle(usecase="u", drift=no_estimate))
    assert table["est_roc_auc"].isna().all() and table["est_value"].isna().all()


def test_select_keeps_the_live_version_per_window_or_one_version_and_a_period(bundle):
    table = view.window_table(bundle)
    live = view.select(table)
    assert list(zip(live["window"], live["model_version"], strict=True)) == [
        ("2013-04", "1"),
        ("2013-05", "1"),
        ("2013-06", "2"),
        ("2013-07", "2"),
    ]
    assert list(view.select(table, "1")["window"]) == ["2013-04", "2013-05", "2013-06"]
    assert list(view.select(table, "all", start="2013-05", end="2013-06")["window"]) == ["2013-05", "2013-06"]
    assert view.select(table, "9").empty


def test_drift_matrix_is_statistic_over_threshold_most_drifted_input_first(bundle):
    rows = view.select(view.window_table(bundle))
    inputs, windows, matrix = view.drift_matrix(bundle, rows)
    assert inputs[0] == "temp" and set(inputs) == {"temp", "carrier", "prediction"}
    assert windows == ["2013-04", "2013-05", "2013-06", "2013-07"]
    assert matrix[0][:3] == pytest.approx([0.5, 3.0, 1.5])
    assert matrix[0][3] is None  # July not checked yet
    assert matrix[inputs.index("carrier")][0] == pytest.approx(0.2)


def test_version_bands_follow_consecutive_windows_of_one_version(bundle):
    rows = view.select(view.window_table(bundle))
    assert view.version_bands(rows) == [
        {"version": "1", "start": "2013-04", "end": "2013-05"},
        {"version": "2", "start": "2013-06", "end": "2013-07"},
    ]
    assert view.version_bands(rows.iloc[0:0]) == []


def test_markers_place_each_version_at_its_last_training_period_with_gate_and_alias_moves(bundle):
    found = {m["version"]: m for m in view.markers(bundle)}
    assert found["2"]["window"] == "2013-05" and found["2"]["promoted"]
    assert "gate: promote (ok)" in found["2"]["text"] and "@champion at t3: promoted by gate" in found["2"]["text"]
    assert found["3"]["label"] == "v3 reject" and not found["3"]["promoted"]
    assert "@challenger at t2" in found["3"]["text"]


def test_flow_run_url_needs_both_the_ui_and_the_run():
    assert view.flow_run_url("http://p:4200/", "abc") == "http://p:4200/runs/flow-run/abc"
    assert view.flow_run_url(None, "abc") is None and view.flow_run_url("http://p", "") is None


def test_summary_counts_the_selection(bundle):
    s = view.summary(view.select(view.window_table(bundle)))
    assert s["windows"] == 4 and s["rows_scored"] == 1000 + 2000 + 1000 + 1000
    assert s["windows_drifted"] == 2 and s["retrains_requested"] == 1
    assert s["mean_abs_estimate_error"] == pytest.approx((0.02 + 0.05) / 2)
    assert s["est_value"] == 3000.0 and s["real_value"] == 1600.0
