"""Send the model's lifecycle events (promoted, rolled back, rejected, awaiting approval, batch refused).

Automations declared in infra/automations turn them into notifications; the flow run that sent an event is its
related resource, so a message can link to that run.
"""

from __future__ import annotations

from prefect import runtime

from adapters import events
from flows.context import Context
from tasks import lifecycle_events
from tasks.serialization import json_safe


def current_flow_run_id() -> str | None:
    return str(runtime.flow_run.id) if runtime.flow_run.id else None


def emit_lifecycle(
    ctx: Context, event: str, version: str, payload: dict, *about: str, labels: dict[str, str] | None = None
) -> str:
    """Send ``event`` about ``version`` of the use case's model; ``about`` keys its id (a rerun re-sends it).

    ``labels`` are added to the event's resource (e.g. ``mlops.batch``), for automations to match or key on.
    """
    model = ctx.usecase.registered_model
    flow_run_id = current_flow_run_id()
    return events.emit(
        event,
        lifecycle_events.version_resource(model, ctx.usecase.name, version, labels or {}),
        json_safe(payload),
        lifecycle_events.lifecycle_event_id(event, model, version, *about),
        related=events.flow_run_resource(flow_run_id),
    )
