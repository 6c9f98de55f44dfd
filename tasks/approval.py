"""Approval mode of the gate, as pure rules: what the approver is shown, and what their answer records.

The gate decides first, exactly as in ``enforce``; only a challenger it would promote is put to a person. Their
answer (approve or reject, a comment, their name) becomes part of the decision record and of the alias move.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

AWAITING = "awaiting_approval"
NOT_PROMOTED = "not_promoted"
PROMOTED = "promoted"


def approval_markdown(record: Mapping[str, Any], metric: str, evidence_uri: str, mlflow_run: str) -> str:
    """The form's description: what would change, the metrics side by side, the interval, the gate's reasons."""
    champion = record.get("champion_version") or "none (first model)"
    lines = [
        f"## Promote version {record['challenger_version']} of `{record['registered_model']}` to @champion?",
        "",
        f"Current champion: **{champion}** · evaluation window {_window(record.get('window'))} · "
        f"trigger: {record.get('reason')}",
        "",
        "| metric | challenger | champion |",
        "|---|---:|---:|",
    ]
    champion_metrics = record.get("champion") or {}
    for name, value in (record.get("challenger") or {}).items():
        other = champion_metrics.get(name)
        lines.append(f"| {name} | {_number(value)} | {'' if other is None else _number(other)} |")
    bootstrap = record.get("bootstrap")
    if bootstrap:
        lines += [
            "",
            f"Paired bootstrap, {metric} challenger − champion: **{bootstrap['diff']:+.4f}** "
            f"[{bootstrap['low']:+.4f}, {bootstrap['high']:+.4f}] ({bootstrap['resamples']} resamples)",
        ]
    lines += ["", "Gate:", *[f"- {r}" for r in record.get("reasons") or []]]
    lines += ["", f"Evidence: `{evidence_uri}` · MLflow run: {mlflow_run}"]
    lines += ["", "Tick **approve** to promote, leave it unticked to reject; your name and comment are recorded."]
    return "\n".join(lines)


def _window(window: Any) -> str:
    if not isinstance(window, Mapping):
        return str(window)
    return f"{window.get('start')} to {window.get('end')} ({window.get('rows', 0):,} rows)"


def _number(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, int | float) else str(value)


def answered(record: Mapping[str, Any], approve: bool, approver: str, comment: str, at: str) -> dict[str, Any]:
    """The decision record once a person answered: promoted, or not promoted with their reason first."""
    approval = {"decision": "approved" if approve else "rejected", "by": approver, "comment": comment, "at": at}
    verb = "approved" if approve else "rejected"
    reasons = [f"{verb} by {approver}: {comment}", *record.get("reasons", [])]
    return {**record, "outcome": PROMOTED if approve else NOT_PROMOTED, "approval": approval, "reasons": reasons}


def superseded(record: Mapping[str, Any], asked_against: str | None, at: str) -> dict[str, Any]:
    """Not promoted: the champion moved while the approver looked at a comparison with another one."""
    now = record.get("champion_version")
    reason = (
        f"not promoted: the champion moved from {asked_against or 'none'} to {now or 'none'} while this promotion "
        "awaited approval; register the run again to be judged against the current champion"
    )
    approval = {"decision": "superseded", "by": "", "comment": "", "at": at}
    return {**record, "outcome": NOT_PROMOTED, "approval": approval, "reasons": [reason, *record.get("reasons", [])]}


def timed_out(record: Mapping[str, Any], timeout_seconds: int, at: str) -> dict[str, Any]:
    """Not promoted: nobody answered within the configured time."""
    reason = f"not promoted: nobody approved or rejected within {timeout_seconds:,} s (gate.approval_timeout_seconds)"
    approval = {"decision": "timed_out", "by": "", "comment": "", "at": at}
    return {**record, "outcome": NOT_PROMOTED, "approval": approval, "reasons": [reason, *record.get("reasons", [])]}


def move_reason(record: Mapping[str, Any]) -> str:
    """The alias history's reason for a promotion (who approved and why, when a person did)."""
    approval = record.get("approval") or {}
    if approval.get("decision") == "approved":
        return f"promoted by gate, approved by {approval['by']}: {approval['comment']} ({record.get('reason')})"
    return f"promoted by gate ({record.get('reason')})"
