"""``mlops land-labels`` and ``mlops usecases``: labels that arrive later, and the use cases this repository holds."""

from __future__ import annotations

from typing import Annotated

import typer

from ops.commands import JsonOpt, ProfileOpt, UsecaseOpt, app, run_command, show_mapping


@app.command("land-labels")
def land_labels(
    period: Annotated[str, typer.Option("--period", "--month", help="Period whose labels arrived, e.g. 2010-W20.")],
    profile: ProfileOpt = None,
    usecase: UsecaseOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Store the labels of a period that arrived after scoring; checks and retraining use them by id."""
    from flows.labels import land_labels as land_labels_flow

    def show(r: dict) -> None:
        rows = {
            "labels": r["uri"],
            "rows in": f"{r['rows_in']:,}",
            "rows labelled": f"{r['rows_labelled']:,}",
            "rows quarantined": f"{r['rows_quarantined']:,}",
            "stored (merged)": f"{r['rows_stored']:,}",
        }
        rows |= {f"quarantined: {q['reason']}": f"{q['rows']:,}" for q in r["quarantine_reasons"][:5]}
        show_mapping(f"Labels of {r['period']}", rows)

    run_command(as_json, f"landing labels of {period}", lambda: land_labels_flow(period, profile, usecase), show)


@app.command("usecases")
def usecases(as_json: JsonOpt = False) -> None:
    """List the use cases in config/usecases/ with their source, period unit and model name."""
    from flows.settings import config_dir, load_usecase

    def work() -> dict:
        found = {}
        for path in sorted((config_dir() / "usecases").glob("*.yaml")):
            uc = load_usecase(path.stem)
            found[uc.name] = {
                "registered_model": uc.registered_model,
                "source": uc.source.adapter,
                "period": uc.period.unit,
                "late_labels": uc.source.labels is not None,
            }
        return found

    def show(r: dict) -> None:
        show_mapping(
            "Use cases", {k: f"{v['source']}, per {v['period']}, model {v['registered_model']}" for k, v in r.items()}
        )

    run_command(as_json, "reading use cases", work, show)
