"""Register a trained model as @challenger; promote it to @champion only through the gate. Rollback too."""

from __future__ import annotations

import json
import pickle
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
from prefect import flow, runtime
from prefect.artifacts import create_markdown_artifact

from adapters.alias_events import emit_alias_moved
from adapters.registry import ANY_VERSION, MlflowRegistry, VersionRef
from flows.approval import await_answer
from flows.context import Context, build_context
from flows.lifecycle import current_flow_run_id, emit_lifecycle
from flows.snapshots import read_snapshots
from flows.steps import compute_step, io_step
from tasks import approval as approval_rules
from tasks import gate as gate_logic
from tasks import lifecycle_events, metrics, training
from tasks.errors import AliasConflict, MlopsError

CHAMPION, CHALLENGER = "champion", "challenger"
REVOKED_TAG = "rollback.revoked"
# how often a challenger is judged again when @champion moved between its gate and its promotion
MAX_GATE_ROUNDS = 3


@io_step("register-version")
def register_version(ctx: Context, run_id: str) -> VersionRef:
    registry = ctx.registry()
    summary = registry.run_summary(run_id)
    run = registry.training_run(run_id)
    tags = {
        "usecase": ctx.usecase.name,
        "git_sha": summary["tags"].get("git_sha", ""),
        "snapshot_versions": summary["tags"].get("snapshot_versions", ""),
    }
    return registry.register_version(ctx.usecase.registered_model, run, tags)


@io_step("move-alias")
def move_alias(
    ctx: Context,
    alias: str,
    version: str,
    reason: str,
    approval: dict | None = None,
    *,
    expected: str | None = ANY_VERSION,
) -> dict | None:
    """Move an alias under the registry lock; with ``expected``, only if it still points there (else AliasConflict).

    Returns the recorded move, or None when the alias already pointed at ``version``.
    """
    flow_run_id = str(runtime.flow_run.id or "") or None
    name = ctx.usecase.registered_model
    move = ctx.registry().set_alias(
        name, alias, version, reason=reason, flow_run_id=flow_run_id, expected=expected, approval=approval
    )
    if move is None:
        return None
    emit_alias_moved(name, ctx.usecase.name, move.__dict__, flow_run_id)  # running services poll as well
    return move.__dict__


@io_step("load-evaluation-window")
def evaluation_window(ctx: Context, challenger: VersionRef, champion: VersionRef | None) -> tuple[pd.DataFrame, dict]:
    """Labelled rows of the challenger's holdout that the champion was not trained on either."""
    registry = ctx.registry()
    tags = registry.run_summary(challenger.run_id)["tags"]
    labels = json.loads(tags["label_uris"]) if "label_uris" in tags else {}
    frame, _ = read_snapshots(ctx, json.loads(tags["snapshot_uris"]), labels)
    start = pd.Timestamp(tags["split.holdout_start"])
    if champion is not None:
        champion_train_end = pd.Timestamp(registry.run_summary(champion.run_id)["tags"]["split.train_end"])
        start = max(start, champion_train_end + pd.Timedelta(microseconds=1))
    end = pd.Timestamp(tags["split.holdout_end"])
    labelled = training.labelled_rows(frame, ctx.usecase)
    times = labelled[ctx.usecase.time_column]
    window = labelled[(times >= start) & (times <= end)]
    return window, {"start": start.isoformat(), "end": end.isoformat(), "rows": len(window)}


@io_step("load-model")
def load_model(ctx: Context, version: VersionRef):
    target = Path(ctx.settings.home) / "models" / ctx.usecase.registered_model / version.version
    return ctx.registry().load_model(ctx.usecase.registered_model, version.version, str(target))


@compute_step("gate")
def run_gate(ctx: Context, window: pd.DataFrame, challenger_model, champion_model) -> gate_logic.GateDecision:
    uc = ctx.usecase
    X, y = training.feature_frame(window, uc), window[uc.target.name].to_numpy()
    with ctx.model_threads():
        p_challenger = challenger_model.predict_proba(X)[:, 1]
        p_champion = champion_model.predict_proba(X)[:, 1] if champion_model is not None else None
    challenger_metrics = metrics.evaluate(y, p_challenger, uc.model.decision_threshold, uc.kpi)
    champion_metrics = bootstrap = None
    if p_champion is not None:
        champion_metrics = metrics.evaluate(y, p_champion, uc.model.decision_threshold, uc.kpi)
        g = uc.gate
        bootstrap = gate_logic.paired_bootstrap(
            y, p_challenger, p_champion, g.metric, g.bootstrap_resamples, g.confidence, g.seed
        )
    megabytes = len(pickle.dumps(challenger_model)) / 1e6
    return gate_logic.decide(uc.gate, challenger_metrics, champion_metrics, bootstrap, megabytes)


@io_step("record-decision")
def record_decision(ctx: Context, version: VersionRef, record: dict) -> None:
    registry = ctx.registry()
    stamp = record["decided_at"].replace(":", "").replace("-", "")
    registry.log_run_artifact(
        version.run_id, f"gate/decision-{stamp}.json", json.dumps(record, indent=2, default=str).encode()
    )
    registry.set_version_tags(
        ctx.usecase.registered_model,
        version.version,
        {
            "gate.outcome": record["outcome"],
            "gate.mode": record["mode"],
            "gate.decided_at": record["decided_at"],
            "gate.champion_version": str(record["champion_version"]),
            "gate.reasons": " | ".join(record["reasons"])[:4900],
        },
    )


@flow(name="register", log_prints=False)
def register(
    run_id: str, reason: str = "new training run", profile: str | None = None, usecase: str | None = None
) -> dict:
    """Register a training run as @challenger and let the gate decide whether it becomes @champion."""
    ctx = build_context(profile, usecase)
    version = register_version(ctx, run_id)
    if version.tags.get(REVOKED_TAG) == "true":
        return _not_judged(version, "revoked", f"version {version.version} was withdrawn by a rollback: never again")
    mlflow_run = registry_run_url(ctx, version)
    for round_ in range(MAX_GATE_ROUNDS):
        champion = ctx.registry().get_alias(ctx.usecase.registered_model, CHAMPION)
        if champion is not None and champion.version == version.version:
            return _not_judged(version, "already_champion", "this version is already the champion")
        if round_ == 0:  # a move to the version it already points at is no move (a run resumed after approval)
            move_alias(ctx, CHALLENGER, version.version, reason)
        record = _judge(ctx, version, champion, reason, mlflow_run)
        if record["outcome"] != "promoted":
            break
        try:  # compare-and-swap: only over the champion the gate compared with
            move_alias(
                ctx,
                CHAMPION,
                version.version,
                approval_rules.move_reason(record),
                record.get("approval"),
                expected=record["champion_version"],
            )
            break
        except AliasConflict:
            continue  # another registration or a rollback moved @champion meanwhile: judge against the new one
    else:
        record = {**record, "outcome": "superseded", "reasons": [*record["reasons"], _SUPERSEDED]}
        record_decision(ctx, version, record)
    _publish(ctx, record)
    announce(ctx, version, record, mlflow_run)
    return {"version": version.version, "promoted": record["outcome"] == "promoted", **record}


_SUPERSEDED = f"@champion moved during each of {MAX_GATE_ROUNDS} gate decisions: not promoted, register it again"


def _not_judged(version: VersionRef, outcome: str, reason: str) -> dict:
    return {"version": version.version, "outcome": outcome, "promoted": False, "reasons": [reason]}


def _judge(ctx: Context, version: VersionRef, champion: VersionRef | None, reason: str, mlflow_run: str | None) -> dict:
    """Run the gate of ``version`` against ``champion`` (waiting for a person in approval mode) and record it."""
    window, window_info = evaluation_window(ctx, version, champion)
    if len(window) < ctx.usecase.gate.min_evaluation_rows:
        decision = gate_logic.reject_for_data(ctx.usecase.gate, len(window))
    else:
        champion_model = load_model(ctx, champion) if champion is not None else None
        decision = run_gate(ctx, window, load_model(ctx, version), champion_model)
    record = {
        **decision.to_dict(),
        "outcome": _outcome(decision),
        "registered_model": ctx.usecase.registered_model,
        "challenger_version": version.version,
        "champion_version": champion.version if champion else None,
        "window": window_info,
        "reason": reason,
        "decided_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "flow_run_id": str(runtime.flow_run.id or ""),
    }
    if decision.applied and decision.promote and decision.mode == "approval":
        record = await_answer(ctx, version, record, mlflow_run)
    record_decision(ctx, version, record)
    return record


def registry_run_url(ctx: Context, version: VersionRef) -> str | None:
    return ctx.registry().training_run(version.run_id).run_url


@io_step("announce-decision")
def announce(ctx: Context, version: VersionRef, record: dict, mlflow_run: str | None = None) -> str | None:
    """Send the decision's event (promoted / rejected / not promoted); a dry run announces nothing."""
    event = lifecycle_events.gate_event(record)
    if event is None or event == lifecycle_events.APPROVAL_REQUESTED_EVENT:
        return None
    payload = lifecycle_events.gate_payload(record, version.run_id, mlflow_run, f"runs:/{version.run_id}/gate")
    return emit_lifecycle(ctx, event, version.version, payload, str(record.get("flow_run_id")), record["decided_at"])


def _outcome(decision: gate_logic.GateDecision) -> str:
    if not decision.applied:
        return "dry_run_promote" if decision.promote else "dry_run_reject"
    return "promoted" if decision.promote else "rejected"


@flow(name="rollback", log_prints=False)
def rollback(reason: str, profile: str | None = None, usecase: str | None = None) -> dict:
    """Move @champion back to the previous champion and record why."""
    if not reason.strip():
        raise MlopsError("a rollback needs a reason")
    ctx = build_context(profile, usecase)
    registry, name = ctx.registry(), ctx.usecase.registered_model
    current = registry.get_alias(name, CHAMPION)
    if current is None:
        raise MlopsError(f"'{name}' has no champion to roll back")
    target = previous_champion(registry, name, current.version)
    registry.set_version_tags(name, current.version, {REVOKED_TAG: "true", "rollback.reason": reason[:4900]})
    # compare-and-swap: a promotion that landed after the read above is not rolled back blindly
    move = move_alias(ctx, CHAMPION, target, f"rollback: {reason}", expected=current.version)
    run_url = registry.training_run(current.run_id).run_url
    payload = lifecycle_events.rollback_payload(current.version, target, reason, run_url, current_flow_run_id())
    event = lifecycle_events.ROLLED_BACK_EVENT
    emit_lifecycle(ctx, event, current.version, payload, target, move["at"])
    return {"from_version": current.version, "to_version": target, "move": move}


def previous_champion(registry: MlflowRegistry, name: str, current: str) -> str:
    """The most recent earlier champion that was not itself rolled back."""
    earlier = [m.to_version for m in registry.alias_history(name) if m.alias == CHAMPION and m.to_version]
    for version in reversed(earlier):
        if version != current and registry.get_version(name, version).tags.get(REVOKED_TAG) != "true":
            return version
    raise MlopsError(f"'{name}' has no earlier champion to roll back to")


def _publish(ctx: Context, record: dict) -> None:
    if runtime.flow_run.id is None:
        return
    lines = [
        f"# Gate: version {record['challenger_version']} → **{record['outcome']}** ({record['mode']})",
        "",
        f"Champion before: {record['champion_version'] or 'none'} · window {record['window']}",
        "",
        "| metric | challenger | champion |",
        "|---|---:|---:|",
    ]
    champion = record.get("champion") or {}
    for name, value in (record.get("challenger") or {}).items():
        other = champion.get(name)
        lines.append(f"| {name} | {value:.4f} | {'' if other is None else f'{other:.4f}'} |")
    if record.get("bootstrap"):
        b = record["bootstrap"]
        lines += [
            "",
            f"Paired bootstrap {ctx.usecase.gate.metric} difference: "
            f"{b['diff']:+.4f} [{b['low']:+.4f}, {b['high']:+.4f}]",
        ]
    approval = record.get("approval")
    if approval:
        who = f" by {approval['by']}" if approval.get("by") else ""
        lines += ["", f"Approval: **{approval['decision']}**{who} at {approval['at']}: {approval.get('comment') or ''}"]
    lines += ["", "Reasons:", *[f"- {r}" for r in record["reasons"]]]
    create_markdown_artifact(
        key=f"gate-{ctx.usecase.name}".replace("_", "-"),
        markdown="\n".join(lines),
        description="Promotion gate decision",
    )
