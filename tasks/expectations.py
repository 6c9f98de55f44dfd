"""Expectation suites as plain values, and validation results as plain values.

The suite is built from the use-case config here (pure); ``adapters.gx_validator`` turns the specs into Great
Expectations objects, runs them and hands back a ``ValidationReport``. Row-level expectations send failing
rows to quarantine; table-level ones fail the batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from tasks.usecase import UseCase

ROW_ID = "_row"

ExpectationKind = Literal[
    "columns_exist",  # table: all listed columns are present
    "row_count_between",  # table
    "null_fraction_at_most",  # table: share of nulls in a nullable column
    "of_type",  # table: dtype of a column
    "not_null",  # row
    "between",  # row
    "in_set",  # row
    "match_regex",  # row
    "compound_unique",  # row: a key of two or more columns
    "unique",  # row: a one-column key
]
ROW_LEVEL_KINDS = frozenset({"not_null", "between", "in_set", "match_regex", "compound_unique", "unique"})


@dataclass(frozen=True)
class ExpectationSpec:
    """One expectation, engine-agnostic."""

    kind: ExpectationKind
    column: str | None = None
    columns: tuple[str, ...] = ()
    min_value: float | None = None
    max_value: float | None = None
    value_set: tuple[str, ...] = ()
    regex: str | None = None
    type_name: str | None = None
    max_fraction: float | None = None

    @property
    def row_level(self) -> bool:
        return self.kind in ROW_LEVEL_KINDS

    @property
    def label(self) -> str:
        """Short, stable name used in quarantine reasons and reports, e.g. ``between(distance)``."""
        if self.kind in ("columns_exist", "row_count_between"):
            return self.kind
        target = self.column or ",".join(self.columns)
        return f"{self.kind}({target})"


@dataclass(frozen=True)
class ExpectationResult:
    """Outcome of one expectation; ``failed_rows`` holds ``_row`` ids for row-level ones."""

    spec: ExpectationSpec
    success: bool
    unexpected_count: int = 0
    failed_rows: tuple[int, ...] = ()
    observed: str = ""


@dataclass(frozen=True)
class ValidationReport:
    """All results of one suite run over one frame."""

    results: tuple[ExpectationResult, ...]
    evaluated_rows: int
    engine: str = "great_expectations"
    extras: dict[str, str] = field(default_factory=dict)

    @property
    def table_failures(self) -> tuple[ExpectationResult, ...]:
        return tuple(r for r in self.results if not r.success and not r.spec.row_level)

    @property
    def row_failures(self) -> tuple[ExpectationResult, ...]:
        return tuple(r for r in self.results if not r.success and r.spec.row_level)


_DTYPE_NAMES = {"int": "Int64", "float": "float64", "str": "str", "datetime": "datetime64"}


def build_ingest_suite(usecase: UseCase) -> tuple[ExpectationSpec, ...]:
    """The ingestion suite of a use case: schema, types, nulls, ranges, sets, patterns, key uniqueness, size."""
    specs: list[ExpectationSpec] = [
        ExpectationSpec(
            "columns_exist", columns=tuple(c for c in usecase.all_columns() if usecase.pii.get(c) != "drop")
        ),
        ExpectationSpec(
            "row_count_between",
            min_value=usecase.validation.min_rows,
            max_value=usecase.validation.max_rows,
        ),
    ]
    for name, col in usecase.all_columns().items():
        if usecase.pii.get(name) == "drop":
            continue
        if usecase.pii.get(name) == "hash":
            # validated after hashing (so no raw value reaches the Data Docs): only nulls can be checked
            col = col.model_copy(update={"type": "str", "min": None, "max": None, "allowed": None, "pattern": None})
        if col.type != "datetime":
            specs.append(ExpectationSpec("of_type", column=name, type_name=_DTYPE_NAMES[col.type]))
        if not col.nullable:
            specs.append(ExpectationSpec("not_null", column=name))
        elif col.max_null_fraction is not None:
            specs.append(ExpectationSpec("null_fraction_at_most", column=name, max_fraction=col.max_null_fraction))
        if col.min is not None or col.max is not None:
            specs.append(ExpectationSpec("between", column=name, min_value=col.min, max_value=col.max))
        if col.allowed is not None:
            specs.append(ExpectationSpec("in_set", column=name, value_set=col.allowed))
        if col.pattern is not None:
            specs.append(ExpectationSpec("match_regex", column=name, regex=col.pattern))
    if len(usecase.key) == 1:
        specs.append(ExpectationSpec("unique", column=usecase.key[0]))
    else:
        specs.append(ExpectationSpec("compound_unique", columns=usecase.key))
    return tuple(specs)
