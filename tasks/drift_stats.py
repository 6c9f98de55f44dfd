"""The numbers of the drift check: window counts on the sketch's cells, two-sample statistics, calibration.

Cells: a numeric input's cells are the reference sketch's quantile bins (values beyond the edges fall in the
end bins, as at training); a categorical input's are the reference categories plus one cell pooling every
unseen category. Both get one more cell for nulls, so a change of null rate is drift like any other. The
reference side comes from the sketch alone (its null count from ``n`` and ``null_rate``): a check costs
O(rows + cells) and never reads, let alone sorts, the reference rows.

Every function compares a reference count vector with a current one of the same cells. ``psi``,
``jensen_shannon`` and ``l_infinity`` are vectorized: either argument may be a matrix of shape
``(draws, cells)`` and the answer is then one value per row, which is how ``calibrate`` scores
thousands of simulated no-drift windows in one call. Cells empty on both sides are ignored everywhere, so a
cell that can never fill (a reference without nulls, say) adds nothing, however small the window.

Smoothing: PSI is infinite when a cell is empty on one side only, which happens all the time in small
windows. ``psi`` therefore adds ``pseudo_count`` (default 0.5, the Jeffreys prior of a multinomial) to every
cell that is non-empty on either side, on both sides, before taking proportions. The bias this leaves in
small windows is the same in the calibration draws, so the calibrated threshold absorbs it.
Jensen–Shannon and L-infinity are finite with empty cells and are never smoothed.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import reduce
from itertools import pairwise

import numpy as np
import pandas as pd
from scipy.special import chdtrc

from tasks.contract import CategoricalSketch, NumericSketch, ReferenceSketch, bin_index
from tasks.errors import MlopsError
from tasks.usecase import DriftSpec

DEFAULT_PSEUDO_COUNT = 0.5
PREDICTION = "prediction"  # the model's score distribution, among the results and in threshold overrides
_BRANCH_FREE_EDGES = 64


def _counts(values: np.ndarray | tuple[int, ...] | list[int]) -> np.ndarray:
    return np.asarray(values, dtype="float64")


def _out(values: np.ndarray) -> float | np.ndarray:
    """A plain float for a single comparison, the array for a batch of them."""
    return float(values) if np.ndim(values) == 0 else values


def proportions(counts: np.ndarray, pseudo_count: float | np.ndarray = 0.0) -> np.ndarray:
    """Counts (plus pseudo-counts) over their total along the last axis; all zeros stay zeros."""
    padded = _counts(counts) + pseudo_count
    total = padded.sum(axis=-1, keepdims=True)
    return np.divide(padded, total, out=np.zeros_like(padded), where=total > 0)


def _pair(ref_counts: np.ndarray, cur_counts: np.ndarray, pseudo_count: float) -> tuple[np.ndarray, np.ndarray]:
    """Proportions of both sides, smoothed only in cells that are non-empty on at least one side."""
    ref, cur = np.broadcast_arrays(_counts(ref_counts), _counts(cur_counts))
    if ref.shape[-1] == 0:
        raise ValueError("no cells to compare")
    pad = pseudo_count * ((ref + cur) > 0)
    return proportions(ref, pad), proportions(cur, pad)


def psi(
    ref_counts: np.ndarray, cur_counts: np.ndarray, pseudo_count: float = DEFAULT_PSEUDO_COUNT
) -> float | np.ndarray:
    """Population stability index ``sum((q - p) * ln(q / p))`` over the cells (smoothed, see module doc).

    Args:
        ref_counts: Reference counts per cell, shape ``(cells,)`` or ``(draws, cells)``.
        cur_counts: Current counts on the same cells.
        pseudo_count: Added to each cell non-empty on either side; 0 gives the textbook value (infinite
            when a cell is empty on one side only).
    """
    p, q = _pair(ref_counts, cur_counts, pseudo_count)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where((p > 0) & (q > 0), (q - p) * np.log(q / p), np.where(p == q, 0.0, np.inf))
    return _out(terms.sum(axis=-1))


def jensen_shannon(ref_counts: np.ndarray, cur_counts: np.ndarray) -> float | np.ndarray:
    """Jensen–Shannon distance (square root of the divergence, base-2 logs): 0 identical, 1 disjoint."""
    p, q = _pair(ref_counts, cur_counts, 0.0)
    m = (p + q) / 2.0
    with np.errstate(divide="ignore", invalid="ignore"):
        kl_p = np.where(p > 0, p * np.log2(p / m), 0.0).sum(axis=-1)
        kl_q = np.where(q > 0, q * np.log2(q / m), 0.0).sum(axis=-1)
    # rounding can leave a -1e-17 where the distributions are equal
    return _out(np.sqrt(np.clip((kl_p + kl_q) / 2.0, 0.0, 1.0)))


def l_infinity(ref_counts: np.ndarray, cur_counts: np.ndarray) -> float | np.ndarray:
    """Largest absolute difference of proportions over the cells."""
    p, q = _pair(ref_counts, cur_counts, 0.0)
    return _out(np.abs(p - q).max(axis=-1))


def chi_square_two_sample(ref_counts: np.ndarray, cur_counts: np.ndarray) -> tuple[float, float]:
    """Chi-square test that two samples of counts come from one distribution: ``(statistic, p_value)``.

    Both sides are samples (the reference is not taken as exact frequencies): the statistic is the one of
    the 2 x cells contingency table, ``sum((sqrt(m/n) R - sqrt(n/m) S)^2 / (R + S))`` over cells non-empty on
    either side, with ``cells - 1`` degrees of freedom (n, m the two totals). NaN p-value when a side is empty
    or a single cell is filled.
    """
    ref, cur = _counts(ref_counts), _counts(cur_counts)
    if ref.shape != cur.shape or ref.ndim != 1:
        raise ValueError(f"count vectors of shapes {ref.shape} and {cur.shape}: expected two equal 1-D shapes")
    filled = (ref + cur) > 0
    ref, cur = ref[filled], cur[filled]
    n, m = ref.sum(), cur.sum()
    if n == 0 or m == 0 or ref.size < 2:
        return float("nan"), float("nan")
    statistic = float((((np.sqrt(m / n) * ref - np.sqrt(n / m) * cur) ** 2) / (ref + cur)).sum())
    return statistic, float(chdtrc(ref.size - 1, statistic))


STATISTICS = {"psi": psi, "jensen_shannon": jensen_shannon, "l_infinity": l_infinity}


@dataclass(frozen=True)
class ColumnCounts:
    """Counts of one column in a window: per reference cell (sketch order), nulls, and unseen values."""

    cells: tuple[int, ...]
    nulls: int
    unseen: int
    unseen_values: dict[str, int] = field(default_factory=dict)

    def merge(self, other: ColumnCounts) -> ColumnCounts:
        values = dict(self.unseen_values)
        for key, count in other.unseen_values.items():
            values[key] = values.get(key, 0) + count
        cells = tuple(a + b for a, b in zip(self.cells, other.cells, strict=True))
        return ColumnCounts(cells, self.nulls + other.nulls, self.unseen + other.unseen, values)


@dataclass(frozen=True)
class CurrentProfile:
    """Counts of every sketched column in a current window; ``prediction`` only when scores were given."""

    rows: int
    numeric: dict[str, ColumnCounts]
    categorical: dict[str, ColumnCounts]
    prediction: ColumnCounts | None

    def merge(self, other: CurrentProfile) -> CurrentProfile:
        both = self.prediction is not None and other.prediction is not None
        return CurrentProfile(
            rows=self.rows + other.rows,
            numeric={k: v.merge(other.numeric[k]) for k, v in self.numeric.items()},
            categorical={k: v.merge(other.categorical[k]) for k, v in self.categorical.items()},
            prediction=self.prediction.merge(other.prediction) if both else (self.prediction or other.prediction),
        )


# ---- counting a current window on the sketch's cells


def current_profile(
    data: pd.DataFrame | Iterable[pd.DataFrame], sketch: ReferenceSketch, score_column: str | None = None
) -> CurrentProfile:
    """Count a window (a frame, or an iterable of chunks so a large window streams) on the sketch's cells.

    Args:
        data: Rows of the window with every sketched column (extra columns are ignored).
        sketch: The reference sketch logged with the model.
        score_column: Column of the model's scores, profiled against ``sketch.prediction`` when both exist.

    Raises:
        MlopsError: a sketched column (or the score column) is missing.
    """
    chunks = (data,) if isinstance(data, pd.DataFrame) else data
    scores = score_column if sketch.prediction is not None else None
    return reduce(CurrentProfile.merge, (_profile_chunk(c, sketch, scores) for c in chunks), _empty(sketch, scores))


def _empty(sketch: ReferenceSketch, score_column: str | None) -> CurrentProfile:
    def zeros(column: NumericSketch | CategoricalSketch) -> ColumnCounts:
        size = len(column.counts) if isinstance(column, NumericSketch) else len(column.frequencies)
        return ColumnCounts((0,) * size, 0, 0)

    return CurrentProfile(
        rows=0,
        numeric={k: zeros(s) for k, s in sketch.numeric.items()},
        categorical={k: zeros(s) for k, s in sketch.categorical.items()},
        prediction=zeros(sketch.prediction) if score_column and sketch.prediction else None,
    )


def _profile_chunk(frame: pd.DataFrame, sketch: ReferenceSketch, score_column: str | None) -> CurrentProfile:
    wanted = [*sketch.numeric, *sketch.categorical, *([score_column] if score_column else [])]
    missing = [c for c in wanted if c not in frame.columns]
    if missing:
        raise MlopsError(f"the drift window lacks column(s): {', '.join(missing)}")
    return CurrentProfile(
        rows=len(frame),
        numeric={k: _numeric_counts(frame[k], s) for k, s in sketch.numeric.items()},
        categorical={k: _categorical_counts(frame[k], s) for k, s in sketch.categorical.items()},
        prediction=_numeric_counts(frame[score_column], sketch.prediction)
        if score_column and sketch.prediction
        else None,
    )


def _numeric_counts(values: pd.Series, sketch: NumericSketch) -> ColumnCounts:
    if pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(values.dtype):
        data = values.to_numpy(dtype="float64", na_value=np.nan)
    else:
        data = pd.to_numeric(values, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    nulls = int(np.isnan(data).sum())
    if not sketch.edges:  # the reference had no value: every current value is unseen
        return ColumnCounts((), nulls, int(data.size) - nulls)
    cells = _bin_counts(sketch.edges, data, nulls)
    return ColumnCounts(tuple(int(c) for c in cells), nulls, 0)


def _bin_counts(edges: tuple[float, ...], data: np.ndarray, nulls: int) -> np.ndarray:
    """Non-null values per bin, as ``bin_index`` assigns them (a value on an inner edge goes to the lower bin).

    With few edges, counting the edges below each value is branch-free and ~4x faster than the binary
    search of ``bin_index`` on unordered data (measured at 1M rows). NaN is below no edge: it lands in the
    first bin and is taken out again, which is cheaper than copying the present values.
    """
    inner = np.asarray(edges, dtype="float64")[1:-1]
    if inner.size < _BRANCH_FREE_EDGES:
        index = np.zeros(data.size, dtype="uint8")
        for edge in inner:
            index += data > edge
        cells = np.bincount(index, minlength=inner.size + 1)
        cells[0] -= nulls
        return cells
    return np.bincount(bin_index(edges, data[~np.isnan(data)]), minlength=inner.size + 1)


def _categorical_counts(values: pd.Series, sketch: CategoricalSketch) -> ColumnCounts:
    """Counts per reference category; the rest pooled as unseen (and kept by value for the report)."""
    found = {str(k): int(v) for k, v in values.value_counts(dropna=True, sort=False).items()}
    cells = tuple(found.pop(category, 0) for category in sketch.frequencies)
    return ColumnCounts(cells, int(values.isna().sum()), sum(found.values()), found)


# ---- aligned cells of both sides: [nulls, *cells, unseen]


def _null_count(n: int, null_rate: float, rows: int) -> int:
    if null_rate >= 1.0:
        return rows
    return round(n * null_rate / (1.0 - null_rate))


def reference_cells(sketch: NumericSketch | CategoricalSketch, rows: int) -> np.ndarray:
    counts = sketch.counts if isinstance(sketch, NumericSketch) else tuple(sketch.frequencies.values())
    return np.array([_null_count(sketch.n, sketch.null_rate, rows), *counts, 0], dtype="float64")


def current_cells(counts: ColumnCounts) -> np.ndarray:
    return np.array([counts.nulls, *counts.cells, counts.unseen], dtype="float64")


def cell_table(
    profile: CurrentProfile, sketch: ReferenceSketch, column: str
) -> tuple[tuple[str, ...], tuple[int, ...], tuple[int, ...]]:
    """Labels, reference counts and current counts of a column's cells, for a report's histograms.

    Raises:
        MlopsError: the column is neither sketched nor profiled.
    """
    columns = sketched_columns(sketch)
    counts = {**profile.numeric, **profile.categorical, PREDICTION: profile.prediction}.get(column)
    if column not in columns or counts is None:
        raise MlopsError(f"no drift counts for column '{column}'")
    reference = columns[column][1]
    if isinstance(reference, NumericSketch):
        inner = reference.edges[1:-1]
        if not inner:
            labels = ["all"] if reference.edges else []
        else:
            labels = [f"<= {inner[0]:g}", *(f"({a:g}, {b:g}]" for a, b in pairwise(inner)), f"> {inner[-1]:g}"]
    else:
        labels = list(reference.frequencies)
    ref = reference_cells(reference, sketch.rows).astype(int).tolist()
    return ("null", *labels, "unseen"), tuple(ref), tuple(current_cells(counts).astype(int).tolist())


def sketched_columns(sketch: ReferenceSketch) -> dict[str, tuple[str, NumericSketch | CategoricalSketch]]:
    """Every sketched column by name with its kind; the scores under ``PREDICTION``."""
    items: dict[str, tuple[str, NumericSketch | CategoricalSketch]] = {}
    items.update({k: ("numeric", s) for k, s in sketch.numeric.items()})
    items.update({k: ("categorical", s) for k, s in sketch.categorical.items()})
    if sketch.prediction is not None:
        if PREDICTION in items:
            raise MlopsError(f"an input is named '{PREDICTION}', the name the drift check gives the model's scores")
        items[PREDICTION] = ("prediction", sketch.prediction)
    return items


def statistic_for(kind: str, spec: DriftSpec) -> str:
    return spec.categorical_statistic if kind == "categorical" else spec.numeric_statistic


def effect_size(name: str, ref: np.ndarray, cur: np.ndarray) -> float | np.ndarray:
    """The statistic ``name`` (a key of ``STATISTICS``), PSI smoothed with the default pseudo-count."""
    return STATISTICS[name](ref, cur)


# ---- calibrated thresholds


def calibrate(
    sketch: ReferenceSketch,
    window_rows: int,
    resamples: int,
    seed: int,
    quantile: float,
    *,
    spec: DriftSpec | None = None,
) -> dict[str, float]:
    """No-drift threshold of each column's statistic for windows of ``window_rows`` rows.

    Both samples are simulated from the reference cell frequencies (the reference is a sample too): per
    column, ``resamples`` multinomial draws of the reference's size and of the window's size, the statistic
    of each pair, and its ``quantile``. Vectorized over draws; each column has its own stream seeded by
    ``seed`` and its name, so adding a column changes no other threshold.

    Args:
        sketch: Reference sketch; ``prediction`` is calibrated too when present.
        window_rows: Rows of the window to judge.
        resamples: Simulated windows per column.
        seed: Seed of the simulation.
        quantile: ``1 - false_alarm_rate``.
        spec: Picks the statistic per kind (default ``DriftSpec()``); columns with an override are skipped.

    Raises:
        MlopsError: fewer than one row, or a quantile outside (0, 1).
    """
    spec = spec or DriftSpec()
    if window_rows < 1 or not 0.0 < quantile < 1.0:
        raise MlopsError(f"cannot calibrate for {window_rows} rows at quantile {quantile}")
    thresholds = {}
    for name, (kind, column) in sketched_columns(sketch).items():
        if name in spec.thresholds:
            continue
        ref = reference_cells(column, sketch.rows)
        filled = ref[ref > 0]
        if filled.size < 2:  # one cell: no sampling noise, any change is drift
            thresholds[name] = 0.0
            continue
        rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
        freq = proportions(filled)
        ref_draws = rng.multinomial(int(filled.sum()), freq, size=resamples)
        cur_draws = rng.multinomial(window_rows, freq, size=resamples)
        values = effect_size(statistic_for(kind, spec), ref_draws, cur_draws)
        thresholds[name] = float(np.quantile(values, quantile))
    return thresholds
