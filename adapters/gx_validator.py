"""Run an expectation suite over a pandas frame with Great Expectations 1.x.

``tasks.expectations`` holds the suite as plain ``ExpectationSpec`` values; this adapter is the only place
that knows GX. Each call builds a throw-away ephemeral context whose Data Docs site lives in a temporary
directory, validates the frame once, returns plain results plus the rendered site as bytes, and leaves
nothing on disk.

``observed`` strings carry counts, shares, dtypes and column names only, never cell values: values may be
sensitive. The Data Docs do show unexpected values, which is why callers hash PII before validating.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from tasks.expectations import ROW_ID, ExpectationResult, ExpectationSpec, ValidationReport

_SITE = "local_site"
# logos, animated GIFs and fonts are 3.4 of the 4.3 MB of a site; pages read fine without them, and every
# batch keeps its own copy of the site next to its snapshot
_DECORATION = ("static/images/", "static/fonts/")
# GX's pandas of_type check compares ``dtype.type``: for the nullable Int64 dtype that is numpy.int64, and
# no spelling of "Int64" maps to it, so the GX check uses "int64" (numpy int64 columns pass it too).
_GX_TYPE_NAMES = {"Int64": "int64"}


def validate_frame(
    frame: pd.DataFrame, specs: Sequence[ExpectationSpec], *, suite_name: str
) -> tuple[ValidationReport, dict[str, bytes]]:
    """Validate ``frame`` against ``specs`` and render the GX Data Docs of that run.

    Args:
        frame: Data to check; must hold a unique integer ``_row`` column naming each row.
        specs: The suite; a spec whose column is missing fails with ``observed`` "column missing: <name>".
        suite_name: Name of the GX suite (shows in the Data Docs paths and titles).

    Returns:
        One result per spec in spec order, and the Data Docs site as ``{relative path: bytes}``.

    Raises:
        ValueError: ``frame`` has no ``_row`` column.
    """
    if ROW_ID not in frame.columns:
        raise ValueError(f"frame needs a {ROW_ID!r} column to name failing rows")
    # Set here rather than at import so importing this module changes nothing; GX 1.24 sends no events
    # anyway, this only guards older/newer releases.
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx  # deferred: importing GX takes seconds

    present = set(frame.columns)
    # GX expectations per run, each tagged with (index of its spec, column or None). Table-level checks run
    # apart in BASIC format: COMPLETE would collect the `_row` of every null behind null_fraction_at_most
    # (tens of thousands of rows, seconds) for nothing.
    runs: dict[str, list[tuple[int, str | None, Any]]] = {"table": [], "rows": []}
    for i, spec in enumerate(specs):
        bucket = runs["rows" if spec.row_level else "table"]
        if spec.kind == "columns_exist":
            # one set check instead of one expectation per column: each GX expectation costs ~5 ms
            check = gx.expectations.ExpectTableColumnsToMatchSet(column_set=list(spec.columns), exact_match=False)
            bucket.append((i, None, check))
        elif not _missing(spec, present):  # GX survives a missing column too, but with a traceback per spec
            bucket.append((i, None, _to_gx(spec)))
    # Row checks run twice only when something fails: a cheap pass/fail run over all of them, then the
    # failing ones again with COMPLETE results to get the `_row` of each failing row. Clean batches, the
    # common case, skip the costly unexpected-index bookkeeping altogether.
    row_detail = {
        "result_format": "COMPLETE",
        "unexpected_index_column_names": [ROW_ID],
        "return_unexpected_index_query": False,  # a pandas filter string repeating every id
    }

    gx_results: list[list[tuple[str | None, Any]]] = [[] for _ in specs]
    with tempfile.TemporaryDirectory(prefix="gx-docs-") as site_dir:
        context = gx.get_context(mode="ephemeral", project_config=_project_config(site_dir))
        asset = context.data_sources.add_pandas("pandas").add_dataframe_asset("frame")
        batch = asset.add_batch_definition_whole_dataframe("whole_frame")
        started = time.perf_counter()
        row_data = _numpy_ints(frame)  # dtypes matter only to the table run
        table = _run(context, batch, f"{suite_name}.table", runs["table"], frame, {"result_format": "BASIC"})
        rows = _run(context, batch, f"{suite_name}.rows", runs["rows"], row_data, {"result_format": "BOOLEAN_ONLY"})
        failing = [t for t, r in zip(runs["rows"], rows, strict=True) if not r.success]
        detail = _run(
            context,
            batch,
            f"{suite_name}.failing_rows",
            [(i, c, _to_gx(specs[i])) for i, c, _ in failing],
            row_data,
            row_detail,
        )
        by_spec = {i: r for (i, *_), r in zip(failing, detail, strict=True)}
        for (i, col, _), result in [*zip(runs["table"], table, strict=True), *zip(runs["rows"], rows, strict=True)]:
            gx_results[i].append((col, by_spec.get(i, result)))
        validated = time.perf_counter()
        context.build_data_docs(site_names=[_SITE])
        files = (p for p in Path(site_dir).rglob("*") if p.is_file())
        docs = {p.relative_to(site_dir).as_posix(): p.read_bytes() for p in files if not _decoration(p, site_dir)}
        rendered = time.perf_counter()

    results = tuple(_to_result(s, r, frame, present) for s, r in zip(specs, gx_results, strict=True))
    timings = {"validate_seconds": f"{validated - started:.3f}", "data_docs_seconds": f"{rendered - validated:.3f}"}
    report = ValidationReport(results, evaluated_rows=len(frame), extras={"gx_version": gx.__version__, **timings})
    return report, docs


def _project_config(site_dir: str) -> Any:
    """In-memory stores, no progress bars or analytics, and the Data Docs site inside ``site_dir``."""
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    # GX's own ephemeral site goes to a fresh temp path it never removes: ours is deleted after the run
    site = {
        "class_name": "SiteBuilder",
        "show_how_to_buttons": False,
        "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": site_dir},
        "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
    }
    return DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(),
        data_docs_sites={_SITE: site},
        progress_bars=ProgressBarsConfig(globally=False),
        analytics_enabled=False,
    )


def _numpy_ints(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with its null-free nullable Int64 columns as numpy int64 (``frame`` itself if none).

    GX's pandas ``between`` is vectorized for numpy dtypes only and calls a Python function per cell for
    Int64: this keeps the row checks linear in C, values and nulls unchanged.
    """
    ints = [c for c, t in frame.dtypes.items() if isinstance(t, pd.Int64Dtype) and not frame[c].hasnans]
    return frame.astype(dict.fromkeys(ints, "int64")) if ints else frame


def _missing(spec: ExpectationSpec, present: set[str]) -> list[str]:
    """Columns a spec needs that the frame lacks (``columns_exist`` is answered by GX itself)."""
    needed = [spec.column] if spec.column else list(spec.columns)
    return [c for c in needed if c not in present] if spec.kind != "columns_exist" else []


def _to_gx(spec: ExpectationSpec) -> Any:
    """The GX expectation checking ``spec`` (``columns_exist`` is expanded by the caller)."""
    import great_expectations.expectations as gxe

    col = spec.column
    match spec.kind:
        case "row_count_between":
            return gxe.ExpectTableRowCountToBeBetween(min_value=spec.min_value, max_value=spec.max_value)
        case "null_fraction_at_most":
            # an aggregate metric: a third of the cost of not-null with `mostly`, which maps every cell
            return gxe.ExpectColumnProportionOfNonNullValuesToBeBetween(
                column=col, min_value=1.0 - (spec.max_fraction or 0.0), max_value=1.0
            )
        case "of_type":
            type_name = _GX_TYPE_NAMES.get(spec.type_name or "", spec.type_name)
            return gxe.ExpectColumnValuesToBeOfType(column=col, type_=type_name)
        case "not_null":
            return gxe.ExpectColumnValuesToNotBeNull(column=col)
        case "between":
            return gxe.ExpectColumnValuesToBeBetween(column=col, min_value=spec.min_value, max_value=spec.max_value)
        case "in_set":
            return gxe.ExpectColumnValuesToBeInSet(column=col, value_set=list(spec.value_set))
        case "match_regex":
            return gxe.ExpectColumnValuesToMatchRegex(column=col, regex=spec.regex)
        case "compound_unique":
            return gxe.ExpectCompoundColumnsToBeUnique(column_list=list(spec.columns))
        case "unique":
            # GX refuses a compound-uniqueness check over one column: a one-column key is checked as this
            return gxe.ExpectColumnValuesToBeUnique(column=col)
    raise ValueError(f"unknown expectation kind: {spec.kind}")


def _raised(info: dict[str, Any]) -> bool:
    """Whether GX caught an exception: flat for the expectation, or nested per metric that failed."""
    nested = (v for v in info.values() if isinstance(v, dict))
    return bool(info.get("raised_exception")) or any(v.get("raised_exception") for v in nested)


def _to_result(
    spec: ExpectationSpec, gx_results: list[tuple[str | None, Any]], frame: pd.DataFrame, present: set[str]
) -> ExpectationResult:
    """Fold the GX result(s) of one spec into an ``ExpectationResult`` with a value-free ``observed``."""
    if missing := _missing(spec, present):
        return ExpectationResult(spec, success=False, observed="column missing: " + ", ".join(missing))
    if spec.kind == "columns_exist":
        absent = [col for col in spec.columns if col not in present]
        return ExpectationResult(
            spec, not absent, len(absent), observed="missing: " + ", ".join(absent) if absent else ""
        )
    ((_, r),) = gx_results
    res = r.result or {}
    if _raised(r.exception_info or {}):
        # GX caught an error computing this expectation; its message may quote data, so do not forward it
        return ExpectationResult(spec, success=False, observed="error while evaluating")
    if spec.kind == "row_count_between":
        return ExpectationResult(spec, r.success, observed=f"{res.get('observed_value')} rows")
    if spec.kind == "of_type":
        return ExpectationResult(spec, r.success, observed=f"dtype {frame[spec.column].dtype}")
    if spec.kind == "null_fraction_at_most":
        count = int(frame[spec.column].isna().sum())
        share, limit = (count / len(frame) if len(frame) else 0.0), spec.max_fraction or 0.0
        return ExpectationResult(spec, r.success, count, observed=f"null share {share:.2%} (max {limit:.2%})")
    count = int(res.get("unexpected_count") or 0)
    rows = tuple(sorted(int(row[ROW_ID]) for row in res.get("unexpected_index_list") or ()))
    return ExpectationResult(spec, r.success, count, rows, observed=f"{count} of {len(frame)} rows unexpected")


def _decoration(path: Path, site_dir: str) -> bool:
    return path.relative_to(site_dir).as_posix().startswith(_DECORATION)


def _run(
    context: Any, batch: Any, name: str, tagged: list[tuple[int, str | None, Any]], data: pd.DataFrame, fmt: dict
) -> list[Any]:
    """Run one suite of GX expectations; results come back in the order of ``tagged``."""
    if not tagged:
        return []
    import great_expectations as gx

    suite = context.suites.add(gx.ExpectationSuite(name=name, expectations=[e for *_, e in tagged]))
    definition = context.validation_definitions.add(gx.ValidationDefinition(name=name, data=batch, suite=suite))
    run = definition.run(batch_parameters={"dataframe": data}, result_format=fmt)
    # GX does not return results in suite order: match them back through the ids the suite assigned
    by_id = {r.expectation_config.id: r for r in run.results}
    return [by_id[expectation.id] for expectation in suite.expectations]
