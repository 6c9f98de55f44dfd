"""Evaluation plots as PNG bytes, drawn on private ``Figure`` objects (no pyplot global state, no display).

The same inputs give the same bytes: PNG metadata that would carry a version or a date is left out.
"""

from __future__ import annotations

import io
from operator import itemgetter

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from sklearn.metrics import roc_curve

from tasks.metrics import calibration_bins

_DPI = 100
_SIZE = (5.0, 4.0)
_MAX_CELLS = 30  # a drift plot of an input with more cells shows the cells that changed most


def _new_axes(title: str, xlabel: str, ylabel: str, size: tuple[float, float] = _SIZE) -> tuple[Figure, Axes]:
    figure = Figure(figsize=size, dpi=_DPI)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.set(title=title, xlabel=xlabel, ylabel=ylabel)
    return figure, axes


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.tight_layout()
    # Software and dates in the metadata would make identical plots differ between runs and versions
    figure.savefig(buffer, format="png", dpi=_DPI, metadata={"Software": None})
    return buffer.getvalue()


def roc_curve_png(y: np.ndarray, proba_by_name: dict[str, np.ndarray]) -> bytes:
    """ROC curves of one or more scorers on the same labelled rows (e.g. challenger and champion)."""
    figure, axes = _new_axes("ROC curve", "false positive rate", "true positive rate")
    labels = np.asarray(y).astype("int64")
    for name, proba in proba_by_name.items():
        fpr, tpr, _ = roc_curve(labels, np.asarray(proba, dtype="float64"))
        axes.plot(fpr, tpr, label=name)
    axes.plot([0, 1], [0, 1], linestyle="--", color="grey", label="chance")
    axes.legend(loc="lower right")
    return _png(figure)


def calibration_png(y: np.ndarray, proba: np.ndarray, bins: int = 10) -> bytes:
    """Observed positive rate against mean score per equal-frequency bin, with the diagonal."""
    figure, axes = _new_axes("Calibration", "mean predicted probability", "observed positive rate")
    mean_score, rate, _ = calibration_bins(y, proba, bins)
    axes.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfect")
    axes.plot(mean_score, rate, marker="o", label="model")
    axes.legend(loc="upper left")
    return _png(figure)


def confusion_png(confusion_dict: dict[str, int]) -> bytes:
    """The 2x2 confusion matrix (keys tn, fp, fn, tp) with counts written in the cells."""
    figure, axes = _new_axes("Confusion matrix", "predicted", "actual")
    cells = np.array([[confusion_dict["tn"], confusion_dict["fp"]], [confusion_dict["fn"], confusion_dict["tp"]]])
    axes.imshow(cells, cmap="Blues")
    for (row, col), count in np.ndenumerate(cells):
        colour = "white" if count > cells.max() / 2 else "black"
        axes.text(col, row, f"{int(count)}", ha="center", va="center", color=colour)
    axes.set_xticks([0, 1], ["negative", "positive"])
    axes.set_yticks([0, 1], ["negative", "positive"])
    return _png(figure)


def importance_png(importances: dict[str, float]) -> bytes:
    """Horizontal bars of feature importances, the largest on top."""
    ordered = sorted(importances.items(), key=itemgetter(1))
    # one bar per feature: the figure grows with their number so long names stay legible
    size = (_SIZE[0] + 1.5, max(_SIZE[1], 0.3 * len(ordered) + 1.0))
    figure, axes = _new_axes("Feature importance", "importance", "", size)
    axes.barh([name for name, _ in ordered], [value for _, value in ordered])
    return _png(figure)


def cell_plot_png(labels: tuple[str, ...], reference: tuple[int, ...], current: tuple[int, ...], title: str) -> bytes:
    """Bars of the reference and current share per cell (the cells with the largest change when there are many)."""
    ref = np.asarray(reference, dtype=float)
    cur = np.asarray(current, dtype=float)
    ref_share = ref / ref.sum() if ref.sum() else ref
    cur_share = cur / cur.sum() if cur.sum() else cur
    keep = np.arange(len(labels))
    if len(labels) > _MAX_CELLS:
        keep = np.sort(np.argsort(-np.abs(cur_share - ref_share), kind="stable")[:_MAX_CELLS])
    figure, axes = _new_axes(title, "", "share of rows", size=(7.0, 3.6))
    x = np.arange(len(keep))
    axes.bar(x - 0.2, ref_share[keep], width=0.4, label="reference (training)", color="#4c72b0")
    axes.bar(x + 0.2, cur_share[keep], width=0.4, label="window", color="#dd8452")
    axes.set_xticks(x, [labels[i] for i in keep], rotation=60, ha="right", fontsize=7)
    axes.legend(fontsize=8)
    return _png(figure)


def replay_png(
    periods: list[str],
    metric_by_policy: dict[str, list[float | None]],
    retrained: list[str],
    promoted: list[str],
    refused: list[str] | None = None,
    metric: str = "ROC AUC",
) -> bytes:
    """The metric of each policy per period (a gap where it is None), with markers where ours retrained / promoted.

    The markers sit on the last policy's line (ours): a retrain after period P changes the model of P+1. Periods
    in ``refused`` (ours scored nothing) are shaded.
    """
    figure, axes = _new_axes("Closed-loop replay", "period", metric, size=(8.0, 4.2))
    x = np.arange(len(periods))
    shaded = [i for i, p in enumerate(periods) if p in (refused or [])]
    for n, i in enumerate(shaded):
        axes.axvspan(i - 0.5, i + 0.5, color="grey", alpha=0.15, label=None if n else "batch refused (ours)")
    for name, values in metric_by_policy.items():
        y = np.array([np.nan if v is None else v for v in values], dtype=float)
        axes.plot(x, y, marker="o", markersize=4, label=name)
    if metric_by_policy:
        ours = np.array([np.nan if v is None else v for v in list(metric_by_policy.values())[-1]], dtype=float)
        for months, style, label in ((retrained, "^", "retrained"), (promoted, "*", "promoted")):
            at = [i for i, p in enumerate(periods) if p in months]
            if at:
                size = 110 if style == "*" else 70
                axes.scatter(x[at], ours[at], marker=style, s=size, zorder=3, facecolors="none", edgecolors="black")
                axes.scatter([], [], marker=style, facecolors="none", edgecolors="black", label=label)
    axes.set_xticks(x, periods, rotation=45, ha="right", fontsize=8)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    return _png(figure)
