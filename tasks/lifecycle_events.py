"""Events of the model's life that people must hear about: promoted, rolled back, rejected, a batch refused.

They name the model as their resource (``mlops.model.<name>``, like the drift and performance events) so one
automation can key on model and version; their payload carries what happened, why (the evidence) and where to
look (the flow run, the MLflow run, the report). Ids are derived from what the event is about, so a rerun that
re-sends the same event is one event for the server.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

PROMOTED_EVENT = "mlops.model.promoted"
ROLLED_BACK_EVENT = "mlops.model.rolled_back"
GATE_REJECTED_EVENT = "mlops.gate.rejected"
APPROVAL_REQUESTED_EVENT = "mlops.approval.requested"
CONTRACT_VIOLATED_EVENT = "mlops.contract.violated"
_NAMESPACE = uuid.UUID("0f6c2d8e-3b1a-4f57-9c1e-7a2b5d4e8f13")
_MAX_REASONS = 20


def lifecycle_event_id(event: str, *about: str) -> str:
    """The same event about the same things (model, version, run ...) always gets the same id."""
    return str(uuid.uuid5(_NAMESPACE, "|".join((event, *about))))


def version_resource(model: str, usecase: str, version: str, labels: Mapping[str, str]) -> dict[str, str]:
    """The event resource: a model version (extra labels such as ``mlops.batch`` are added as given)."""
    return {
        "prefect.resource.id": f"mlops.model.{model}",
        "prefect.resource.name": model,
        "mlops.usecase": usecase,
        "mlops.model.version": version,
        **labels,
    }


def gate_event(record: Mapping[str, Any]) -> str | None:
    """Which event a gate decision record announces: promoted, rejected, awaiting approval, or none (dry run)."""
    return {
        "promoted": PROMOTED_EVENT,
        "rejected": GATE_REJECTED_EVENT,
        "not_promoted": GATE_REJECTED_EVENT,
        "awaiting_approval": APPROVAL_REQUESTED_EVENT,
    }.get(str(record.get("outcome")))


def gate_payload(
    record: Mapping[str, Any], mlflow_run_id: str, mlflow_run_url: str | None, evidence_uri: str
) -> dict[str, Any]:
    """What a person needs from a gate decision: the outcome, why (reasons, metrics, interval) and links."""
    reasons = list(record.get("reasons") or [])
    challenger, champion = record.get("challenger_version"), record.get("champion_version")
    what = {
        "promoted": f"version {challenger} promoted to @champion (was {champion or 'none'})",
        "rejected": f"version {challenger} rejected by the gate; @champion stays {champion or 'none'}",
        "not_promoted": f"version {challenger} not promoted; @champion stays {champion or 'none'}",
        "awaiting_approval": f"version {challenger} awaits approval (champion {champion or 'none'})",
    }.get(str(record.get("outcome")), f"gate outcome {record.get('outcome')} for version {challenger}")
    approval = record.get("approval") or {}
    return {
        "reason": f"{what}: {reasons[0] if reasons else 'no reason recorded'}",
        "outcome": record.get("outcome"),
        "mode": record.get("mode"),
        "challenger_version": challenger,
        "champion_version": champion,
        "reasons": reasons[:_MAX_REASONS],
        "metrics": {"challenger": record.get("challenger"), "champion": record.get("champion")},
        "bootstrap": record.get("bootstrap"),
        "window": record.get("window"),
        "trigger": record.get("reason"),
        "approval": dict(approval),
        "mlflow_run_id": mlflow_run_id,
        "mlflow_run_url": mlflow_run_url,
        "evidence_uri": evidence_uri,
        "flow_run_id": record.get("flow_run_id"),
    }


def rollback_payload(
    from_version: str, to_version: str, reason: str, mlflow_run_url: str | None, flow_run_id: str | None
) -> dict[str, Any]:
    return {
        "reason": f"@champion rolled back from version {from_version} to {to_version}: {reason}",
        "from_version": from_version,
        "to_version": to_version,
        "why": reason,
        "mlflow_run_url": mlflow_run_url,
        "flow_run_id": flow_run_id,
    }


def contract_payload(
    model_version: str,
    batch_id: str,
    input_uri: str,
    problems: Sequence[str],
    rows: int,
    columns: int,
    mlflow_run_url: str | None,
    flow_run_id: str | None,
) -> dict[str, Any]:
    """A batch the model's contract refused as a whole: which batch, every reason, and the counts."""
    shown = list(problems[:_MAX_REASONS])
    return {
        "reason": f"batch {batch_id} refused by the contract of version {model_version}: " + "; ".join(shown[:3]),
        "batch_id": batch_id,
        "input_uri": input_uri,
        "model_version": model_version,
        "reasons": shown,
        "counts": {"rows": rows, "columns": columns, "problems": len(problems)},
        "mlflow_run_url": mlflow_run_url,
        "flow_run_id": flow_run_id,
    }
