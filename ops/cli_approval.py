"""`mlops approvals`, `mlops approve`, `mlops reject`: answer promotions waiting in gate mode ``approval``."""

from __future__ import annotations

from typing import Annotated

import typer

from ops.commands import JsonOpt, ProfileOpt, app, run_command, show_mapping

FlowRunArg = Annotated[
    str | None,
    typer.Argument(help="Flow run id of the waiting register run (see `mlops approvals`); default: the only one."),
]
CommentOpt = Annotated[str, typer.Option("--comment", help="Why: recorded in the alias history with your name.")]
ApproverOpt = Annotated[
    str | None, typer.Option("--as", help="Your name as recorded (default: your login name).", show_default=False)
]


@app.command()
def approvals(profile: ProfileOpt = None, as_json: JsonOpt = False) -> None:
    """List the promotions waiting for a person's approval."""
    from ops import approvals as pending_approvals
    from ops.infra import resolve_api_url

    def show(waiting: list[dict]) -> None:
        if not waiting:
            show_mapping("Waiting promotions", {"none": "nothing waits for an approval"})
            return
        for w in waiting:
            rows = {"asks": w["asks"], "flow run": w["flow_run"], "since": w["since"], "until": w["until"]}
            show_mapping(f"Waiting: {w['flow_run_id']}", rows)

    run_command(
        as_json, "listing waiting promotions", lambda: pending_approvals.pending(resolve_api_url(profile)), show
    )


def _answer(
    flow_run: str | None, approve: bool, comment: str, approver: str | None, profile: str | None, as_json: bool
):
    from ops import approvals as pending_approvals
    from ops.infra import resolve_api_url

    def work() -> dict:
        return pending_approvals.answer(resolve_api_url(profile), flow_run, approve, comment, approver)

    def show(r: dict) -> None:
        show_mapping(
            f"Promotion {r['decision']}", {"flow run": r["flow_run_id"], "by": r["approver"], "comment": r["comment"]}
        )

    run_command(as_json, "answering", work, show)


@app.command()
def approve(
    flow_run: FlowRunArg = None,
    comment: CommentOpt = ...,
    approver: ApproverOpt = None,
    profile: ProfileOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Approve a waiting promotion: the register run resumes and moves @champion."""
    _answer(flow_run, True, comment, approver, profile, as_json)


@app.command()
def reject(
    flow_run: FlowRunArg = None,
    comment: CommentOpt = ...,
    approver: ApproverOpt = None,
    profile: ProfileOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Reject a waiting promotion: the register run resumes and records "not promoted"."""
    _answer(flow_run, False, comment, approver, profile, as_json)
