"""Prefect events: the only way a check asks for retraining (a deployment trigger decides what runs).

Events are sent synchronously over the events client of the configured Prefect API, so when ``emit`` returns
the server has the event (a process that exits right after cannot lose it in a background queue).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from uuid import UUID

from tasks.errors import MlopsError


class EventError(MlopsError):
    """The event could not be sent to the Prefect API."""


def emit(
    event: str,
    resource: Mapping[str, str],
    payload: Mapping[str, Any],
    event_id: str,
    related: list[Mapping[str, str]] | None = None,
) -> str:
    """Send one event and return its id.

    The id is chosen by the caller: the same id sent twice is one event for the server's triggers.

    Raises:
        EventError: the Prefect API refused or could not be reached.
    """
    from prefect.events import Event, RelatedResource
    from prefect.utilities.asyncutils import run_coro_as_sync

    related_resources = [RelatedResource(dict(r)) for r in related or []]
    built = Event(
        event=event, resource=dict(resource), payload=dict(payload), id=UUID(event_id), related=related_resources
    )
    try:
        run_coro_as_sync(_send(built))
    except Exception as exc:
        raise EventError(f"cannot send event {event} for {resource.get('prefect.resource.id')}: {exc}") from exc
    return event_id


async def _send(event: Any) -> None:
    from prefect.events.clients import get_events_client

    async with get_events_client() as client:
        await client.emit(event)


def flow_run_resource(flow_run_id: str | None) -> list[Mapping[str, str]]:
    """The emitting flow run as a related resource, so the UI links the event to the run."""
    if not flow_run_id:
        return []
    return [{"prefect.resource.id": f"prefect.flow-run.{flow_run_id}", "prefect.resource.role": "flow-run"}]
