"""The use case as typed, frozen values: everything domain-specific comes from a YAML file into these models.

Nothing here reads files; ``flows.settings`` loads the YAML and validates it into ``UseCase``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

ColumnType = Literal["int", "float", "str", "datetime"]
PiiAction = Literal["hash", "drop", "keep"]


class Strict(BaseModel):
    """Base of every config model: frozen, and unknown keys are errors."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class ColumnSpec(Strict):
    """One raw input column: its type and the row-level rules it must satisfy."""

    type: ColumnType
    required: bool = True
    nullable: bool = False
    max_null_fraction: float | None = Field(default=None, ge=0.0, le=1.0)
    min: float | None = None
    max: float | None = None
    allowed: tuple[str, ...] | None = None
    pattern: str | None = None
    timezone: str | None = None


class Lookup(Strict):
    """A side table joined onto the primary table (left join, many-to-one)."""

    name: str
    join_on: tuple[str, ...]
    columns: dict[str, ColumnSpec]


class PeriodColumns(Strict):
    """Integer columns of the primary table that name a row's batch period (a calendar month)."""

    year: str
    month: str


class LateLabels(Strict):
    """A table of outcomes that arrive after the rows were scored: the key columns and the target's source.

    Landed per period on its own (``mlops land-labels``), stored by id, and used by the performance check and
    by every training run on that period. ``columns`` declares the table's own columns (the target source at
    least); the key columns are declared once, in the use case's ``columns``.
    """

    table: str
    columns: dict[str, ColumnSpec]


class SourceSpec(Strict):
    """Where raw batches come from and how they are cut into period batches.

    ``python_package``: ``tables`` names files inside the installed ``package`` (found, never imported).
    ``files``: ``tables`` names local paths or ``s3://`` URIs, one or a list per table, each may be a glob; the
    files of one table are read in order and stacked (e.g. a reference file and a later one). ``.csv``,
    ``.csv.gz``/``.zip`` and ``.parquet`` are read by their extension. Rows are cut into periods by
    ``period_columns`` (integer year/month columns) or, without them, by the use case's ``time_column``.
    """

    adapter: Literal["python_package", "files"]
    package: str | None = None
    tables: dict[str, str | tuple[str, ...]]
    primary: str
    period_columns: PeriodColumns | None = None
    lookups: tuple[Lookup, ...] = ()
    labels: LateLabels | None = None
    raw_format: Literal["csv", "parquet"] = "csv"
    # text that means "no value" in the source besides the empty string and NA (e.g. "nil", "-")
    missing_values: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _check_tables(self) -> SourceSpec:
        named = (self.primary, *(lk.name for lk in self.lookups), *([self.labels.table] if self.labels else []))
        missing = [t for t in named if t not in self.tables]
        if missing:
            raise ValueError(f"source.tables has no file for: {', '.join(missing)}")
        if self.adapter == "python_package" and not self.package:
            raise ValueError("source.package is required with adapter python_package")
        empty = [t for t, paths in self.tables.items() if not paths]
        if empty:
            raise ValueError(f"source.tables lists no file for: {', '.join(empty)}")
        return self

    def paths(self, table: str) -> tuple[str, ...]:
        """The paths (or globs) of one table, always as a tuple."""
        value = self.tables[table]
        return (value,) if isinstance(value, str) else tuple(value)


class PeriodSpec(Strict):
    """Length of a batch period and the time zone its bounds are read in (aware times are converted to it)."""

    unit: Literal["month", "week", "day"] = "month"
    timezone: str | None = None


class DatetimeFromParts(Strict):
    """Derive a local, timezone-naive timestamp from integer parts (year, month, day, hour, minute)."""

    name: str
    year: str
    month: str
    day: str
    hour: str
    minute: str


class TargetSpec(Strict):
    """Binary label: ``source >= threshold`` (or another comparison). Missing source gives a null label."""

    name: str
    source: str
    operator: Literal[">=", ">", "<=", "<"] = ">="
    threshold: float


class FeatureSpec(Strict):
    """Model inputs by type; time features are derived from ``time_column`` by the pipeline."""

    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    time_parts: tuple[Literal["hour", "dayofweek", "month", "dayofyear", "minute_of_day"], ...] = ()


class ValidationSpec(Strict):
    """Batch-level thresholds of the ingestion gate."""

    max_quarantine_fraction: float = Field(ge=0.0, le=1.0)
    min_rows: int = Field(ge=1)
    max_rows: int = Field(ge=1)


class SplitSpec(Strict):
    """Time-ordered split: the latest rows are holdout, the ones before them validation, the rest training."""

    validation_fraction: float = Field(gt=0.0, lt=0.5)
    holdout_fraction: float = Field(gt=0.0, lt=0.5)


class ModelSpec(Strict):
    """Estimator (by allow-listed name) with its hyperparameters; every random step is seeded."""

    estimator: Literal["hist_gradient_boosting", "logistic_regression", "random_forest"]
    params: dict[str, float | int | str | bool | None] = {}
    decision_threshold: float = Field(gt=0.0, lt=1.0)
    min_training_rows: int = Field(ge=1)
    seed: int = 0
    max_categories: int = Field(default=50, ge=2)


class KpiSpec(Strict):
    """Business KPI: share of positives caught among the ``top_fraction`` highest scores."""

    name: str
    top_fraction: float = Field(gt=0.0, le=1.0)


class ContractSpec(Strict):
    """How the learned data contract and the drift reference are derived from training data."""

    quantile_tolerance: float = Field(default=0.1, ge=0.0)
    null_rate_slack: float = Field(default=0.05, ge=0.0, le=1.0)
    reference_bins: int = Field(default=10, ge=2, le=100)


class GateSpec(Strict):
    """Promotion gate: floors, non-inferiority by paired bootstrap, guardrails, mode.

    ``approval``: decided as ``enforce``, but a challenger that would be promoted waits for a person to approve or
    reject it (Prefect UI or `mlops approve` / `mlops reject`) for at most ``approval_timeout_seconds``.
    """

    mode: Literal["enforce", "dry_run", "disabled", "approval"] = "enforce"
    metric: Literal["roc_auc", "average_precision"] = "roc_auc"
    floors: dict[Literal["roc_auc", "average_precision", "kpi"], float] = {}
    max_brier: float | None = None
    non_inferiority_margin: float = Field(ge=0.0)
    bootstrap_resamples: int = Field(default=1000, ge=100)
    confidence: float = Field(default=0.95, gt=0.5, lt=1.0)
    max_calibration_error: float | None = Field(default=None, gt=0.0)
    max_model_megabytes: float | None = Field(default=None, gt=0.0)
    min_evaluation_rows: int = Field(default=500, ge=1)
    seed: int = 0
    approval_timeout_seconds: int = Field(default=259_200, ge=5)


class ScoringSpec(Strict):
    """Batch scoring: chunk size (bounds memory) and where the partitions of a batch run.

    A partition is a range of Parquet row groups of about ``chunk_rows`` rows, read, checked, scored and written
    by one task; peak memory is about ``chunk_rows`` rows times the partitions running at once. ``runner``
    "default" runs ``threads`` partitions at once in the flow's process; "dask" runs them on the Dask cluster
    at ``dask_address``, or on a local cluster of ``dask_workers`` single-threaded processes when it is unset.
    """

    chunk_rows: int = Field(default=250_000, ge=1_000)
    runner: Literal["default", "dask"] = "default"
    threads: int = Field(default=2, ge=1, le=64)
    dask_address: str | None = None
    dask_workers: int = Field(default=2, ge=1, le=256)


class DebounceSpec(Strict):
    """When window decisions become a retraining request.

    Retrain when ``k`` of the last ``n`` windows drifted, the latest among them, and the latest is more than
    ``cooldown_windows`` windows after the one that requested the last retrain.
    """

    k: int = Field(default=2, ge=1)
    n: int = Field(default=3, ge=1)
    cooldown_windows: int = Field(default=2, ge=0)

    @model_validator(mode="after")
    def _check_k(self) -> DebounceSpec:
        if self.k > self.n:
            raise ValueError(f"debounce.k ({self.k}) is larger than debounce.n ({self.n})")
        return self


class DriftSpec(Strict):
    """Drift check: calibrated per-feature thresholds, importance weighting, window decision and debounce.

    A feature drifts when its effect size (``numeric_statistic`` / ``categorical_statistic``) exceeds its
    threshold: the ``1 - false_alarm_rate`` quantile of the statistic over ``resamples`` simulated no-drift
    windows of the window's size, but never less than ``min_effect`` of that statistic (at large windows
    sampling noise is tiny and the floor is what makes a shift worth acting on). ``thresholds`` overrides the
    threshold of a feature (or of ``prediction``) outright. A window drifts when the training importance share
    of its drifted features reaches ``drift_share``, or when the model's scores drifted and
    ``prediction_triggers`` is on. Below ``min_rows`` rows a window has no decision ("insufficient data").
    """

    numeric_statistic: Literal["psi", "jensen_shannon"] = "psi"
    categorical_statistic: Literal["l_infinity", "psi", "jensen_shannon"] = "l_infinity"
    false_alarm_rate: float = Field(default=0.01, gt=0.0, lt=0.5)
    resamples: int = Field(default=1000, ge=100, le=100_000)
    seed: int = 0
    min_rows: int = Field(default=500, ge=1)
    min_effect: dict[Literal["psi", "jensen_shannon", "l_infinity"], float] = {
        "psi": 0.1,
        "jensen_shannon": 0.1,
        "l_infinity": 0.05,
    }
    thresholds: dict[str, float] = {}
    drift_share: float = Field(default=0.3, gt=0.0, le=1.0)
    prediction_triggers: bool = True
    debounce: DebounceSpec = DebounceSpec()

    @model_validator(mode="after")
    def _check_thresholds(self) -> DriftSpec:
        negative = [k for k, v in {**self.min_effect, **self.thresholds}.items() if v < 0]
        if negative:
            raise ValueError(f"drift thresholds must not be negative: {', '.join(negative)}")
        return self


class PerformanceSpec(Strict):
    """Performance check on windows whose labels have arrived.

    A window is degraded when its realized ``metric`` is below ``floor``, or more than ``max_drop`` under the
    same metric on the holdout of the model that scored it. Windows with fewer than ``min_labelled_rows``
    labelled rows (or a single class) get no verdict.
    """

    metric: Literal["roc_auc", "average_precision", "kpi"] = "roc_auc"
    floor: float | None = Field(default=None, ge=0.0, le=1.0)
    max_drop: float | None = Field(default=None, ge=0.0, le=1.0)
    min_labelled_rows: int = Field(default=500, ge=1)


class EstimatedTriggerSpec(Strict):
    """Optional retrain request when the label-free estimate drops: ``metric`` estimated more than ``max_drop``
    under the model's holdout value in k of the last n windows (the drift check's debounce rule)."""

    enabled: bool = False
    metric: Literal["roc_auc", "precision", "recall", "kpi"] = "roc_auc"
    max_drop: float = Field(default=0.05, ge=0.0, le=1.0)
    debounce: DebounceSpec = DebounceSpec()


class EstimationSpec(Strict):
    """Performance estimated from calibrated scores before labels arrive (see tasks/estimation.py)."""

    # the labelled part of the training data the calibration map is fitted on: the latest (holdout) follows the
    # newest relation between inputs and label; validation leaves the holdout unseen by the map
    reference: Literal["validation", "holdout"] = "holdout"
    resamples: int = Field(default=200, ge=20, le=10_000)
    confidence: float = Field(default=0.9, gt=0.5, lt=1.0)
    seed: int = 0
    min_rows: int = Field(default=500, ge=1)
    trigger: EstimatedTriggerSpec = EstimatedTriggerSpec()


class ValueSpec(Strict):
    """What one decision is worth: a payoff per confusion-matrix cell at the decision threshold, in ``unit``."""

    unit: str
    payoff: dict[Literal["tp", "fp", "fn", "tn"], float]

    @model_validator(mode="after")
    def _every_cell(self) -> ValueSpec:
        missing = [c for c in ("tp", "fp", "fn", "tn") if c not in self.payoff]
        if missing:
            raise ValueError(f"value.payoff needs every cell; missing: {', '.join(missing)}")
        return self


class UseCase(Strict):
    """A whole use case: data source, schema, keys, target, features, PII policy, thresholds."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    description: str
    registered_model: str
    source: SourceSpec
    columns: dict[str, ColumnSpec]
    key: tuple[str, ...]
    id_column: str
    derived_time: DatetimeFromParts | None = None
    time_column: str
    period: PeriodSpec = PeriodSpec()
    target: TargetSpec
    leaky_columns: tuple[str, ...] = ()
    features: FeatureSpec
    pii: dict[str, PiiAction] = {}
    validation: ValidationSpec
    split: SplitSpec
    model: ModelSpec
    kpi: KpiSpec
    contract: ContractSpec = ContractSpec()
    gate: GateSpec
    scoring: ScoringSpec = ScoringSpec()
    drift: DriftSpec = DriftSpec()
    performance: PerformanceSpec = PerformanceSpec()
    estimation: EstimationSpec = EstimationSpec()
    value: ValueSpec | None = None

    @model_validator(mode="after")
    def _check_references(self) -> UseCase:
        known = set(self.columns) | {c for lk in self.source.lookups for c in lk.columns}
        if self.source.labels:
            known |= set(self.source.labels.columns)
        derived = {self.id_column, self.target.name} | ({self.derived_time.name} if self.derived_time else set())
        problems = [f"key column '{c}' is not a declared column" for c in self.key if c not in self.columns]
        problems += [
            f"key column '{c}' must be required" for c in self.key if c in self.columns and not self.columns[c].required
        ]
        problems += [f"key column '{c}' cannot have pii action drop" for c in self.key if self.pii.get(c) == "drop"]
        if self.id_column in known:
            problems.append(f"id_column '{self.id_column}' clashes with a raw column of that name")
        problems += self._time_problems(known)
        for col in (*self.features.numeric, *self.features.categorical):
            if col not in known | derived:
                problems.append(f"feature '{col}' is not a declared column")
            if col in self.leaky_columns:
                problems.append(f"feature '{col}' is listed as leaky")
        problems += [f"pii column '{c}' is not a declared column" for c in self.pii if c not in known]
        if self.target.source not in known:
            problems.append(f"target source '{self.target.source}' is not a declared column")
        if self.validation.min_rows > self.validation.max_rows:
            problems.append("validation.min_rows is larger than validation.max_rows")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def _time_problems(self, known: set[str]) -> list[str]:
        if self.derived_time is not None:
            if self.time_column not in known | {self.derived_time.name}:
                return [f"time_column '{self.time_column}' is neither declared nor derived"]
            if self.source.period_columns is None and self.time_column != self.derived_time.name:
                return ["source.period_columns is required when time_column is not derived_time"]
            return []
        spec = self.columns.get(self.time_column)
        if spec is None:
            return [f"time_column '{self.time_column}' is not a column of the primary table (or give derived_time)"]
        if spec.type != "datetime":
            return [f"time_column '{self.time_column}' must have type datetime (it is {spec.type})"]
        if self.time_column in self.pii:
            return [f"time_column '{self.time_column}' cannot be a pii column"]
        return []

    def all_columns(self) -> dict[str, ColumnSpec]:
        """Primary and lookup columns with their specs, lookup columns after the primary ones."""
        merged = dict(self.columns)
        for lookup in self.source.lookups:
            merged.update({c: spec for c, spec in lookup.columns.items() if c not in lookup.join_on})
        return merged
