"""Monitoring dashboard (Plotly Dash): a model's life per window, for data scientists and business owners.

It only reads: a ``load(usecase)`` callable (wired by ``mlops dashboard``) returns the stored monitoring results
and registry facts as a ``tasks.dashboard.Bundle``; ``report(usecase, version, window)`` returns a stored HTML
drift report. Figures and tables are built from ``tasks.dashboard``'s pure functions. Bundles are cached for
``refresh_seconds`` so a page load costs one read of the lake and registry at most.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

import dash
import pandas as pd
import plotly.graph_objects as go
from dash import Input, Output, dcc, html
from flask import Response, abort

from tasks import dashboard as view
from tasks.errors import MlopsError

BAND_COLOURS = ("rgba(99,110,250,0.08)", "rgba(0,204,150,0.10)")


def fmt(value: object, kind: str) -> str:
    """How a number is written on the page (the browser test formats stored values the same way)."""
    if value is None or (isinstance(value, float) and value != value):
        return "–"
    if kind == "metric":
        return f"{float(value):.4f}"
    if kind == "share":
        return f"{float(value):.2%}"
    if kind == "count":
        return f"{int(value):,}"
    if kind == "money":
        return f"{float(value):,.0f}"
    return str(value)


class BundleCache:
    """The latest bundle per use case and its window table, reloaded when older than ``seconds``."""

    def __init__(self, load: Callable[[str], view.Bundle], seconds: float) -> None:
        self._load, self._seconds, self._lock = load, seconds, threading.Lock()
        self._held: dict[str, tuple[float, view.Bundle, pd.DataFrame]] = {}

    def get(self, usecase: str) -> tuple[view.Bundle, pd.DataFrame]:
        with self._lock:
            held = self._held.get(usecase)
            if held is None or time.monotonic() - held[0] > self._seconds:
                bundle = self._load(usecase)
                held = (time.monotonic(), bundle, view.window_table(bundle))
                self._held[usecase] = held
            return held[1], held[2]


def create_app(
    usecases: Sequence[str],
    load: Callable[[str], view.Bundle],
    report: Callable[[str, str, str], bytes],
    refresh_seconds: float = 30.0,
    warm: bool = True,
) -> dash.Dash:
    """The Dash app over ``usecases`` (the first one is shown first)."""
    if not usecases:
        raise MlopsError("the dashboard needs at least one use case in config/usecases/")
    cache = BundleCache(load, refresh_seconds)
    for usecase in usecases if warm else ():  # the first visitor should not pay for the first read
        cache.get(usecase)
    app = dash.Dash(__name__, title="mlops · monitoring", update_title=None)

    @app.server.route("/reports/<usecase>/<version>/<window>")
    def drift_report(usecase: str, version: str, window: str) -> Response:
        if usecase not in usecases:
            abort(404)
        try:
            return Response(report(usecase, version, window), mimetype="text/html")
        except MlopsError:
            abort(404)

    app.layout = _layout(list(usecases))

    @app.callback(
        Output("version", "options"),
        Output("version", "value"),
        Output("start", "options"),
        Output("start", "value"),
        Output("end", "options"),
        Output("end", "value"),
        Input("usecase", "value"),
    )
    def filters(usecase: str):
        _, table = cache.get(usecase)
        versions = [view.ALL_VERSIONS, *sorted(set(table["model_version"]), key=_version_key)]
        windows = sorted(set(table["window"]))
        first, last = (windows[0], windows[-1]) if windows else (None, None)
        return versions, view.ALL_VERSIONS, windows, first, windows, last

    @app.callback(
        Output("summary", "children"),
        Output("timeline", "figure"),
        Output("drift-heatmap", "figure"),
        Output("performance", "figure"),
        Output("value", "figure"),
        Output("windows", "children"),
        Input("usecase", "value"),
        Input("version", "value"),
        Input("start", "value"),
        Input("end", "value"),
    )
    def render(usecase: str, version: str | None, start: str | None, end: str | None):
        bundle, table = cache.get(usecase)
        rows = view.select(table, version or view.ALL_VERSIONS, start, end)
        return (
            _summary(bundle, rows),
            _timeline(rows),
            _heatmap(bundle, rows),
            _performance(bundle, rows),
            _value(bundle, rows),
            _table(bundle, rows),
        )

    return app


def _version_key(v: str) -> tuple[int, str]:
    return (int(v), "") if v.isdigit() else (10**9, v)


def _layout(usecases: list[str]) -> html.Div:
    def picker(id_: str, label: str, **kw) -> html.Label:
        return html.Label([label, dcc.Dropdown(id=id_, clearable=False, **kw)], style={"flex": "1"})

    return html.Div(
        [
            html.H2("Model monitoring"),
            html.Div(
                [
                    picker("usecase", "Use case", options=usecases, value=usecases[0]),
                    picker("version", "Model version"),
                    picker("start", "From window"),
                    picker("end", "To window"),
                ],
                style={"display": "flex", "gap": "1em"},
            ),
            html.Div(id="summary", style={"margin": "1em 0"}),
            dcc.Graph(id="timeline"),
            dcc.Graph(id="drift-heatmap"),
            dcc.Graph(id="performance"),
            dcc.Graph(id="value"),
            html.H3("Windows"),
            html.Div(id="windows"),
        ],
        style={"fontFamily": "sans-serif", "margin": "1em 2em"},
    )


def _summary(bundle: view.Bundle, rows: pd.DataFrame) -> html.Div:
    s = view.summary(rows)
    unit = bundle.value_unit or ""
    items = [
        ("windows", fmt(s["windows"], "count")),
        ("rows scored", fmt(s["rows_scored"], "count")),
        ("windows drifted", fmt(s["windows_drifted"], "count")),
        ("retrains requested", fmt(s["retrains_requested"], "count")),
        (f"mean |realized − estimated| {bundle.metric}", fmt(s["mean_abs_estimate_error"], "metric")),
        (f"estimated value {unit}", fmt(s["est_value"], "money")),
        (f"realized value {unit}", fmt(s["real_value"], "money")),
    ]
    return html.Div(
        [
            html.Span([html.B(f"{k}: "), html.Span(v, id=f"summary-{i}")], style={"marginRight": "2em"})
            for i, (k, v) in enumerate(items)
        ]
    )


def _axis(fig: go.Figure, rows: pd.DataFrame, title: str) -> go.Figure:
    windows = list(rows["window"])
    fig.update_layout(
        title=title, height=320, margin={"l": 60, "r": 30, "t": 50, "b": 40}, legend={"orientation": "h", "y": -0.2}
    )
    fig.update_xaxes(tickvals=list(range(len(windows))), ticktext=windows, range=[-0.6, max(len(windows), 1) - 0.4])
    return fig


def _x(rows: pd.DataFrame) -> list[int]:
    return list(range(len(rows)))


def _timeline(rows: pd.DataFrame) -> go.Figure:
    fig = go.Figure()
    fig.add_bar(x=_x(rows), y=rows["rows_scored"], name="rows scored", marker_color="#9aa5b1")
    for column, name in (("quarantined_share", "share quarantined"), ("outlier_share", "share of outliers flagged")):
        fig.add_scatter(x=_x(rows), y=rows[column], name=name, mode="lines+markers", yaxis="y2")
    fig.update_layout(
        yaxis={"title": "rows"},
        yaxis2={"title": "share", "overlaying": "y", "side": "right", "tickformat": ".1%", "rangemode": "tozero"},
    )
    return _axis(fig, rows, "Scored windows: rows, quarantine, outliers")


def _heatmap(bundle: view.Bundle, rows: pd.DataFrame) -> go.Figure:
    inputs, _, matrix = view.drift_matrix(bundle, rows)
    fig = go.Figure()
    if inputs:
        fig.add_heatmap(
            x=_x(rows),
            y=inputs,
            z=matrix,
            zmin=0,
            zmax=3,
            colorscale=[[0, "#f7fbff"], [1 / 3, "#c6dbef"], [1 / 3, "#fdae6b"], [1, "#a50f15"]],
            colorbar={"title": "stat / threshold"},
            hovertemplate="%{y}: %{z:.2f} × threshold<extra></extra>",
        )
    for i, (drifted, retrain, decision) in enumerate(
        zip(rows["drifted"], rows["retrain_requested"], rows["decision"], strict=True)
    ):
        mark = "retrain" if retrain else {True: "drifted", False: "stable", None: "no verdict"}.get(drifted, "–")
        fig.add_annotation(
            x=i, y=1.02, yref="paper", text=mark, showarrow=False, hovertext=decision or "", font={"size": 10}
        )
    fig.update_layout(height=max(320, 22 * len(inputs) + 120))
    return _axis(fig, rows, "Drift per input (statistic / threshold; > 1 alarms) and the debounced decision")


def _bands(fig: go.Figure, rows: pd.DataFrame, bundle: view.Bundle) -> None:
    windows = list(rows["window"])
    for n, band in enumerate(view.version_bands(rows)):
        x0, x1 = windows.index(band["start"]) - 0.5, windows.index(band["end"]) + 0.5
        fig.add_vrect(
            x0=x0,
            x1=x1,
            fillcolor=BAND_COLOURS[n % 2],
            line_width=0,
            layer="below",
            annotation_text=f"v{band['version']}",
            annotation_position="top left",
        )
    for mark in view.markers(bundle):
        later = [i for i, w in enumerate(windows) if mark["window"] is not None and w > mark["window"]]
        if not later or (later[0] == 0 and windows and mark["window"] < windows[0] and not mark["promoted"]):
            continue
        x = later[0] - 0.5
        fig.add_vline(x=x, line_dash="dot", line_color="#2ca02c" if mark["promoted"] else "#d62728")
        fig.add_scatter(
            x=[x],
            y=[1.0],
            mode="markers",
            marker={"symbol": "triangle-down", "size": 11, "color": "#2ca02c" if mark["promoted"] else "#d62728"},
            yaxis="y3",
            name=mark["label"],
            hovertext=mark["text"],
            hoverinfo="text",
            showlegend=False,
        )
    fig.update_layout(yaxis3={"overlaying": "y", "range": [0, 1.05], "visible": False})


def _add_estimate(fig: go.Figure, rows: pd.DataFrame, column: str, name: str) -> None:
    """The estimate in `column` as a line, its `<column>_low`..`<column>_high` interval as error bars."""
    est, low, high = rows[column], rows[f"{column}_low"], rows[f"{column}_high"]
    fig.add_scatter(
        x=_x(rows),
        y=est,
        name=name,
        mode="lines+markers",
        error_y={"type": "data", "symmetric": False, "array": high - est, "arrayminus": est - low},
    )


def _performance(bundle: view.Bundle, rows: pd.DataFrame) -> go.Figure:
    fig = go.Figure()
    _add_estimate(fig, rows, "est_roc_auc", f"estimated {bundle.metric} (no labels)")
    fig.add_scatter(x=_x(rows), y=rows["real_roc_auc"], name=f"realized {bundle.metric}", mode="lines+markers")
    _bands(fig, rows, bundle)
    return _axis(fig, rows, f"Performance: estimated before labels vs realized after ({bundle.metric})")


def _value(bundle: view.Bundle, rows: pd.DataFrame) -> go.Figure:
    fig = go.Figure()
    _add_estimate(fig, rows, "est_value", "estimated value")
    fig.add_bar(x=_x(rows), y=rows["real_value"], name="realized value", marker_color="rgba(44,160,44,0.6)")
    _bands(fig, rows, bundle)
    fig.update_layout(yaxis={"title": bundle.value_unit or "value"})
    return _axis(fig, rows, f"Business value per window ({bundle.value_unit or 'no value declared'})")


def _link(text: str, href: str | None) -> html.Td:
    return html.Td(html.A(text, href=href, target="_blank") if href else "–")


def _table(bundle: view.Bundle, rows: pd.DataFrame) -> html.Table:
    prefect = bundle.links.get("prefect_ui")
    head = [
        "window",
        "model",
        "rows scored",
        "quarantined",
        "outliers",
        "drift score",
        "decision",
        f"estimated {bundle.metric}",
        "interval",
        f"realized {bundle.metric}",
        "estimated value",
        "realized value",
        "report",
        "Prefect",
        "MLflow",
    ]
    body = []
    for r in rows.to_dict("records"):
        cells = {
            "window": r["window"],
            "model": r["model_version"],
            "rows": fmt(r["rows_scored"], "count"),
            "quarantined": fmt(r["quarantined_share"], "share"),
            "outliers": fmt(r["outlier_share"], "share"),
            "drift": fmt(r["drift_score"], "metric"),
            "decision": r["decision"] or "–",
            "est": fmt(r["est_roc_auc"], "metric"),
            "interval": f"{fmt(r['est_roc_auc_low'], 'metric')} – {fmt(r['est_roc_auc_high'], 'metric')}",
            "real": fmt(r["real_roc_auc"], "metric"),
            "est-value": fmt(r["est_value"], "money"),
            "real-value": fmt(r["real_value"], "money"),
        }
        report = f"/reports/{bundle.usecase}/{r['model_version']}/{r['window']}" if r["report_uri"] else None
        prefect_links = [
            html.A(name, href=view.flow_run_url(prefect, run), target="_blank", style={"marginRight": "0.5em"})
            for name, run in (("drift", r["drift_flow_run"]), ("performance", r["perf_flow_run"]))
            if view.flow_run_url(prefect, run)
        ]
        mlflow_links = [
            html.A(name, href=url, target="_blank", style={"marginRight": "0.5em"})
            for name, url in (("drift", r["drift_mlflow_url"]), ("performance", r["perf_mlflow_url"]))
            if url
        ]
        body.append(
            html.Tr(
                [html.Td(v, className=f"col-{k}") for k, v in cells.items()]
                + [_link("report", report), html.Td(prefect_links or "–"), html.Td(mlflow_links or "–")],
                **{"data-window": r["window"], "data-version": r["model_version"]},
            )
        )
    return html.Table(
        [html.Thead(html.Tr([html.Th(h) for h in head])), html.Tbody(body)],
        style={"borderCollapse": "collapse", "fontSize": "13px"},
        className="windows",
    )
