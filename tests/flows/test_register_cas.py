# ruff: noqa: F401, F811  (fixtures shared with another test module are imported, then requested by name)
"""Promotion is compare-and-swap and withdrawn versions stay withdrawn: through the real register flow.

The lake (Jan–Mar 2013) is ingested once per session as in test_train_register_flow; each test has its own
MLflow store. A concurrent promotion is staged inside the gate of another registration, where it would land
when two registrations run at once (the race itself, with real processes, is tests/faults).
"""

from __future__ import annotations

from test_train_register_flow import MODEL, MONTHS, champion, client, curated_lake, mlhome

import flows.register as register_module
from flows.context import build_context
from flows.register import register, rollback
from flows.train import train
from tasks.errors import AliasConflict


def test_a_rolled_back_version_is_not_promoted_again(mlhome):
    first, second = train(months=MONTHS)["run_id"], train(months=MONTHS)["run_id"]
    register(run_id=first)
    assert register(run_id=second)["outcome"] == "promoted"
    rollback(reason="bad week")
    history_before = build_context().registry().alias_history(MODEL)
    again = register(run_id=second)
    assert again["outcome"] == "revoked" and again["promoted"] is False
    assert "withdrawn by a rollback" in again["reasons"][0]
    assert champion(mlhome) == "1"
    assert build_context().registry().alias_history(MODEL) == history_before


def test_a_champion_moved_during_the_gate_is_judged_again(mlhome, monkeypatch):
    first, second, third = (train(months=MONTHS)["run_id"] for _ in range(3))
    register(run_id=first)
    ctx = build_context()
    registry = ctx.registry()
    other = registry.register_version(MODEL, registry.training_run(second), {})
    real_gate, calls = register_module.run_gate.fn, []

    def gate_while_another_promotes(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:  # another registration promotes version 2 while this gate compares with version 1
            registry.set_alias(MODEL, "champion", other.version, reason="concurrent promotion", flow_run_id=None)
        return real_gate(*args, **kwargs)

    monkeypatch.setattr(register_module.run_gate, "fn", gate_while_another_promotes)
    decision = register(run_id=third)
    assert len(calls) == 2
    assert decision["outcome"] == "promoted" and decision["champion_version"] == "2"
    assert champion(mlhome) == "3"
    moves = [(m.from_version, m.to_version) for m in registry.alias_history(MODEL) if m.alias == "champion"]
    assert moves == [(None, "1"), ("1", "2"), ("2", "3")]  # v3 never replaced a champion it was not compared with
    assert client(mlhome).get_model_version(MODEL, "3").tags["gate.champion_version"] == "2"


def test_a_champion_that_keeps_moving_ends_in_superseded(mlhome, monkeypatch):
    first, second = train(months=MONTHS)["run_id"], train(months=MONTHS)["run_id"]
    register(run_id=first)
    real_move, tries = register_module.move_alias.fn, []

    def champion_always_moved_meanwhile(ctx, alias, version, reason, approval=None, *, expected="*"):
        if alias == "champion":
            tries.append(expected)
            raise AliasConflict(f"@champion points at version 9, not {expected} as expected")
        return real_move(ctx, alias, version, reason, approval, expected=expected)

    monkeypatch.setattr(register_module.move_alias, "fn", champion_always_moved_meanwhile)
    decision = register(run_id=second)
    assert tries == ["1"] * register_module.MAX_GATE_ROUNDS
    assert decision["outcome"] == "superseded" and decision["promoted"] is False
    assert champion(mlhome) == "1"
    assert client(mlhome).get_model_version(MODEL, "2").tags["gate.outcome"] == "superseded"
