"""Promotions waiting for a person (gate mode ``approval``): list them, approve or reject one.

A waiting promotion is a ``register`` flow run in a PAUSED state whose pause asks for input; answering resumes
it with that input, exactly as the form in the Prefect UI does.
"""

from __future__ import annotations

import getpass
from typing import Any
from uuid import UUID

from ops.infra import _api
from tasks.errors import MlopsError

REGISTER_FLOW = "register"


def pending(api_url: str) -> list[dict[str, Any]]:
    """The register runs waiting for an answer, oldest first: id, name, what is asked, since and until when."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowFilter,
        FlowFilterName,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType

    with _api(api_url), get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=[REGISTER_FLOW])),
            flow_run_filter=FlowRunFilter(
                state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.PAUSED]))
            ),
        )
        waiting = []
        for run in sorted(runs, key=lambda r: r.created):
            keyset = run.state.state_details.run_input_keyset if run.state else None
            if not keyset:
                continue
            description = _read_input(client, run.id, keyset["description"]) or ""
            timeout = run.state.state_details.pause_timeout
            waiting.append(
                {
                    "flow_run_id": str(run.id),
                    "flow_run": run.name,
                    "run_id": run.parameters.get("run_id"),
                    "asks": description.splitlines()[0].lstrip("# ") if description else "",
                    "since": run.state.timestamp.isoformat() if run.state.timestamp else None,
                    "until": timeout.isoformat() if timeout else None,
                    "description": description,
                }
            )
    return waiting


def _read_input(client: Any, flow_run_id: UUID, key: str) -> str | None:
    from prefect.exceptions import ObjectNotFound

    try:
        value = client.read_flow_run_input(flow_run_id=flow_run_id, key=key)
    except ObjectNotFound:
        return None
    import json

    try:
        return str(json.loads(value))
    except (TypeError, ValueError):
        return str(value)


def answer(api_url: str, flow_run_id: str | None, approve: bool, comment: str, approver: str | None) -> dict:
    """Resume one waiting promotion with the answer; without an id, the only one waiting.

    Raises:
        MlopsError: no comment; no or several promotions waiting (without an id); the run is not waiting or its
            approval timed out.
    """
    from prefect.exceptions import FlowPauseTimeout, NotPausedError
    from prefect.flow_runs import resume_flow_run

    if not comment.strip():
        raise MlopsError("an answer needs a comment (--comment): it is recorded in the alias history")
    who = (approver or _os_user()).strip()
    if flow_run_id is None:
        waiting = pending(api_url)
        if len(waiting) != 1:
            listed = "; ".join(f"{w['flow_run_id']} ({w['asks']})" for w in waiting) or "none"
            raise MlopsError(f"{len(waiting)} promotions wait for an answer on {api_url}: name one ({listed})")
        flow_run_id = waiting[0]["flow_run_id"]
    run_input = {"approve": approve, "approver": who, "comment": comment.strip()}
    with _api(api_url):
        try:
            resume_flow_run(UUID(flow_run_id), run_input=run_input)
        except ValueError:
            raise MlopsError(f"'{flow_run_id}' is not a flow run id") from None
        except NotPausedError:
            raise MlopsError(f"flow run {flow_run_id} is not waiting for an approval") from None
        except FlowPauseTimeout:
            raise MlopsError(f"the approval of flow run {flow_run_id} timed out: it ends not promoted") from None
    return {"flow_run_id": flow_run_id, "decision": "approved" if approve else "rejected", **run_input}


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
