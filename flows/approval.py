"""Approval mode: a challenger the gate would promote waits for a person's answer before @champion moves.

A deployment run *suspends* (``suspend_flow_run``): its process exits and nothing runs while a person reads the
form in the Prefect UI (or runs `mlops approve` / `mlops reject`). Answering reschedules the run, which executes
the register flow again from the start: registering and the challenger move are idempotent, the gate is computed
again (same data, same seed: the same decision), and the call that suspended now returns the answer. A run outside
a deployment (a subflow of retrain, a local call) cannot be suspended: it pauses in place, its process waiting.

Unanswered within ``gate.approval_timeout_seconds``, the server fails the suspended run ("paused and never
resumed"); the ``approval-timeout`` deployment (triggered by that state change, see prefect.yaml) records
"not promoted" for the version.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from prefect import flow
from prefect.context import FlowRunContext
from prefect.exceptions import FlowPauseTimeout
from prefect.flow_runs import pause_flow_run, suspend_flow_run
from prefect.input import RunInput
from prefect.settings import get_current_settings
from pydantic import Field

from adapters.registry import VersionRef
from flows.context import Context, build_context
from flows.lifecycle import emit_lifecycle
from flows.steps import io_step
from tasks import approval, lifecycle_events
from tasks.errors import MlopsError

PENDING_ARTIFACT = "gate/awaiting-approval.json"
PAUSE_KEY = "promotion-approval"
FLOW_RUN_TAG = "approval.flow_run_id"


class PromotionAnswer(RunInput):
    """The approver's answer (the Prefect UI renders it as a form under the description)."""

    approve: bool = Field(default=False, description="Tick to make this version @champion; unticked rejects it.")
    approver: str = Field(min_length=1, max_length=100, description="Your name, recorded in the alias history.")
    comment: str = Field(min_length=1, max_length=1000, description="Why, recorded in the alias history.")


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@io_step("request-approval")
def request_approval(ctx: Context, version: VersionRef, record: dict, mlflow_run: str | None) -> None:
    """Record the pending decision on the version and tell people (``mlops.approval.requested``), once per run."""
    registry = ctx.registry()
    if version.tags.get(FLOW_RUN_TAG) != (record["flow_run_id"] or None):
        registry.log_run_artifact(version.run_id, PENDING_ARTIFACT, json.dumps(record, indent=2, default=str).encode())
        registry.set_version_tags(
            ctx.usecase.registered_model,
            version.version,
            {
                "gate.outcome": approval.AWAITING,
                "gate.mode": record["mode"],
                "gate.decided_at": record["decided_at"],
                "gate.champion_version": str(record["champion_version"]),
                FLOW_RUN_TAG: record["flow_run_id"],
            },
        )
    payload = lifecycle_events.gate_payload(record, version.run_id, mlflow_run, evidence_uri(version))
    event = lifecycle_events.APPROVAL_REQUESTED_EVENT
    emit_lifecycle(ctx, event, version.version, payload, str(record["flow_run_id"]))


def evidence_uri(version: VersionRef) -> str:
    return f"runs:/{version.run_id}/gate"


def await_answer(ctx: Context, version: VersionRef, record: dict, mlflow_run: str | None) -> dict:
    """The decision record once a person answered (or the champion moved meanwhile, or, in place, time ran out)."""
    asked_against = version.tags.get("gate.champion_version")
    if version.tags.get(FLOW_RUN_TAG) == record["flow_run_id"] and asked_against != str(record["champion_version"]):
        return approval.superseded(record, asked_against, now())
    context = FlowRunContext.get()
    suspendable = context is not None and context.flow_run is not None and context.flow_run.deployment_id is not None
    if not suspendable and not get_current_settings().api.url:
        raise MlopsError(
            "gate mode 'approval' needs a Prefect server people can answer on: run register as a deployment "
            "(`mlops stack up`, then `prefect deployment run register/register`) or set PREFECT_API_URL"
        )
    request_approval(ctx, version, record, mlflow_run)
    gate = ctx.usecase.gate
    description = approval.approval_markdown(record, gate.metric, evidence_uri(version), mlflow_run or version.run_id)
    form = PromotionAnswer.with_initial_data(description=description, approve=False)
    if suspendable:
        answer = suspend_flow_run(wait_for_input=form, timeout=gate.approval_timeout_seconds, key=PAUSE_KEY)
    else:
        try:
            answer = pause_flow_run(wait_for_input=form, timeout=gate.approval_timeout_seconds, key=PAUSE_KEY)
        except FlowPauseTimeout:
            return approval.timed_out(record, gate.approval_timeout_seconds, now())
    return approval.answered(record, answer.approve, answer.approver.strip(), answer.comment.strip(), now())


@flow(name="approval-timeout", log_prints=False)
def approval_timeout(flow_run_id: str) -> dict:
    """Record "not promoted" for a promotion whose approval was never given in time."""
    from flows.register import announce, record_decision  # register imports this module

    run_id, parameters = _expired_run(flow_run_id.removeprefix("prefect.flow-run."))
    ctx = build_context(parameters.get("profile"), parameters.get("usecase"))
    registry, name = ctx.registry(), ctx.usecase.registered_model
    version = registry.version_of_run(name, parameters["run_id"])
    if version is None or version.tags.get(FLOW_RUN_TAG) != run_id:
        raise MlopsError(f"flow run {run_id} left no pending approval on model {name!r}: nothing to record")
    if version.tags.get("gate.outcome") != approval.AWAITING:
        return {"version": version.version, "outcome": version.tags.get("gate.outcome"), "changed": False}
    pending = json.loads(registry.read_run_artifact(version.run_id, PENDING_ARTIFACT).decode("utf-8"))
    record = approval.timed_out(pending, ctx.usecase.gate.approval_timeout_seconds, now())
    record["decided_at"] = record["approval"]["at"]
    record_decision(ctx, version, record)
    announce(ctx, version, record)
    return {"version": version.version, "outcome": record["outcome"], "changed": True}


def _expired_run(flow_run_id: str) -> tuple[str, dict]:
    from uuid import UUID

    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        run = client.read_flow_run(UUID(flow_run_id))
    return str(run.id), dict(run.parameters)
