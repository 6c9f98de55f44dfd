"""The alias-moved Prefect event: register and rollback emit it, long-running services listen for it.

``mlops.model.alias_moved`` on resource ``mlops.model.<registered model>``, payload ``{model, alias,
from_version, to_version, reason, at, actor}``. It is an accelerator, not the source of truth: services also
poll the registry, so an event lost while a service was down (or never sent because no Prefect API was
reachable) delays a swap by one poll interval at most.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import os
import threading
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from adapters import events

ALIAS_MOVED = "mlops.model.alias_moved"
_NAMESPACE = uuid.UUID("5b0c1d0e-6a43-4f0c-9d7e-0a1b2c3d4e5f")
log = logging.getLogger(__name__)


def alias_resource(model: str, usecase: str) -> dict[str, str]:
    """The event's resource: the registered model, as the drift and performance events name it."""
    return {"prefect.resource.id": f"mlops.model.{model}", "prefect.resource.name": model, "mlops.usecase": usecase}


def emit_alias_moved(model: str, usecase: str, move: Mapping[str, Any], flow_run_id: str | None = None) -> str | None:
    """Send the event for one recorded alias move; None (and a warning) when the Prefect API cannot take it.

    The id is derived from the move (model, alias, versions, time): a retried step sends the same event.
    """
    payload = {
        "model": model,
        "alias": move["alias"],
        "from_version": move.get("from_version"),
        "to_version": move.get("to_version"),
        "reason": move.get("reason", ""),
        "at": move.get("at"),
        "actor": move.get("actor"),
    }
    key = f"{model}|{payload['alias']}|{payload['from_version']}|{payload['to_version']}|{payload['at']}"
    try:
        return events.emit(
            ALIAS_MOVED,
            alias_resource(model, usecase),
            payload,
            str(uuid.uuid5(_NAMESPACE, key)),
            related=events.flow_run_resource(flow_run_id),
        )
    except events.EventError as exc:
        log.warning("alias moved but the event was not sent (services notice by polling): %s", exc)
        return None


class AliasEventListener:
    """Calls ``on_move(payload)`` for every alias-moved event of ``model``, in a background thread.

    Connects to the Prefect API of the environment (``PREFECT_API_URL``); without one it does nothing (never
    starts a temporary server). Reconnects after ``retry_seconds`` when the connection drops.
    """

    def __init__(self, model: str, on_move: Callable[[dict[str, Any]], None], retry_seconds: float = 5.0) -> None:
        self.model = model
        self.on_move = on_move
        self.retry_seconds = retry_seconds
        self.connected = threading.Event()
        self.last_error: str | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    @property
    def enabled(self) -> bool:
        from prefect.settings import PREFECT_API_URL

        return bool(os.environ.get("PREFECT_API_URL") or PREFECT_API_URL.value())

    def start(self) -> bool:
        """Start listening; False when there is no Prefect API to listen to."""
        if not self.enabled:
            self.last_error = "no Prefect API configured: following the alias by polling only"
            return False
        # Prefect's settings live in context variables: the thread runs in a copy of this context, so it talks
        # to the same API as its starter (a test harness's too) and never falls back to a temporary server
        context = contextvars.copy_context()
        self._thread = threading.Thread(
            target=context.run, args=(self._run,), name=f"alias-events-{self.model}", daemon=True
        )
        self._thread.start()
        return True

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        loop, task = self._loop, self._task
        if loop is not None and task is not None:
            loop.call_soon_threadsafe(task.cancel)
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        self._loop = asyncio.new_event_loop()
        try:
            self._task = self._loop.create_task(self._listen())
            self._loop.run_until_complete(self._task)
        except asyncio.CancelledError:
            pass
        finally:
            self._loop.close()

    async def _listen(self) -> None:
        from prefect.events.clients import get_events_subscriber
        from prefect.events.filters import EventFilter, EventNameFilter, EventResourceFilter

        wanted = EventFilter(
            event=EventNameFilter(name=[ALIAS_MOVED]),
            resource=EventResourceFilter(id=[f"mlops.model.{self.model}"]),
        )
        while not self._stopping.is_set():
            try:
                async with get_events_subscriber(filter=wanted, reconnect_on_clean_close=True) as subscriber:
                    self.connected.set()
                    self.last_error = None
                    async for event in subscriber:
                        self._deliver(dict(event.payload))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a dropped connection or an API that is not up yet: retry later
                self.connected.clear()
                self.last_error = f"event subscription failed: {type(exc).__name__}: {exc}"
                log.warning("%s; retrying in %.0f s", self.last_error, self.retry_seconds)
            await asyncio.sleep(self.retry_seconds)

    def _deliver(self, payload: dict[str, Any]) -> None:
        if payload.get("model") not in (None, self.model):
            return
        try:
            self.on_move(payload)
        except Exception:  # the callback's failure must not end the subscription
            log.exception("alias event handler failed")
