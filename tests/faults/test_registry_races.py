"""Alias moves raced by real processes against one MLflow store (SQLite): the registry lock and compare-and-swap.

Each child is a fresh Python process; a file barrier makes the races certain instead of likely: every child
reads the registry before any of them writes.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from mlflow import MlflowClient

from adapters.registry import MlflowRegistry
from adapters.registry_lock import lock_name, new_holder
from tasks.errors import AliasConflict, RegistryBusy

REPO = Path(__file__).resolve().parents[2]

CHILD_PRELUDE = """
import json, os, sys, time
from pathlib import Path
from adapters.registry import MlflowRegistry
from tasks.errors import AliasConflict

uri, model, barrier, me, count = sys.argv[1], sys.argv[2], Path(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
registry = MlflowRegistry(uri, http_retries=0, actor=f"child-{me}")


def wait_for_all():
    (barrier / f"ready-{me}").touch()
    while len(list(barrier.glob("ready-*"))) < count:
        time.sleep(0.01)
"""


def run_children(script: str, tracking_uri: str, model: str, tmp_path: Path, count: int) -> list[dict]:
    """Start ``count`` processes running ``script`` at once; return what each printed as JSON."""
    barrier = tmp_path / f"barrier-{model}"
    barrier.mkdir()
    code = CHILD_PRELUDE + textwrap.dedent(script)
    children = [
        subprocess.Popen(
            [sys.executable, "-c", code, tracking_uri, model, str(barrier), str(i), str(count)],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(count)
    ]
    results = []
    for child in children:
        out, err = child.communicate(timeout=300)
        assert child.returncode == 0, err[-2000:]
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


@pytest.fixture
def store(tmp_path: Path) -> tuple[str, MlflowClient]:
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    return uri, client


def versions(client: MlflowClient, model: str, count: int) -> None:
    """A registered model with ``count`` versions (alias moves need versions, not real models)."""
    client.create_registered_model(model)
    for _ in range(count):
        client.create_model_version(model, source="file:///nowhere/model")


def test_concurrent_moves_lose_no_history_entry(store, tmp_path):
    uri, client = store
    versions(client, "raced", 2)
    script = """
    wait_for_all()
    moves = [registry.set_alias(model, f"slot{me}", str(1 + i % 2), reason=f"move {i}", flow_run_id=None)
             for i in range(10)]
    print(json.dumps({"moves": sum(m is not None for m in moves)}))
    """
    results = run_children(script, uri, "raced", tmp_path, 4)
    assert [r["moves"] for r in results] == [10, 10, 10, 10]
    history = MlflowRegistry(uri).alias_history("raced")
    assert len(history) == 40
    for me in range(4):  # each alias' moves chain up: every entry starts where the one before ended
        chain = [m for m in history if m.alias == f"slot{me}"]
        assert [m.reason for m in chain] == [f"move {i}" for i in range(10)]
        assert [m.from_version for m in chain[1:]] == [m.to_version for m in chain[:-1]]
    assert lock_name("raced") not in {m.name for m in client.search_registered_models()}


def test_compare_and_swap_lets_one_of_two_stale_promotions_through(store, tmp_path):
    uri, client = store
    versions(client, "cas", 3)
    MlflowRegistry(uri).set_alias("cas", "champion", "1", reason="first", flow_run_id=None)
    script = """
    seen = registry.get_alias(model, "champion").version  # both judge against version 1
    wait_for_all()
    try:
        registry.set_alias(model, "champion", str(2 + me), reason=f"gate of child {me}", flow_run_id=None,
                           expected=seen)
        print(json.dumps({"moved": True, "seen": seen}))
    except AliasConflict as exc:
        print(json.dumps({"moved": False, "seen": seen, "error": str(exc)}))
    """
    results = run_children(script, uri, "cas", tmp_path, 2)
    assert sorted(r["moved"] for r in results) == [False, True]
    assert all(r["seen"] == "1" for r in results)
    loser = next(r for r in results if not r["moved"])
    assert "not 1 as expected" in loser["error"] and "stale champion" in loser["error"]
    champion_moves = [m for m in MlflowRegistry(uri).alias_history("cas") if m.alias == "champion"]
    assert [m.from_version for m in champion_moves] == [None, "1"]  # nobody moved over an unseen champion


def test_same_move_twice_at_once_is_one_move(store, tmp_path):
    uri, client = store
    versions(client, "twice", 2)
    script = """
    wait_for_all()
    move = registry.set_alias(model, "champion", "2", reason=f"child {me}", flow_run_id=None)
    print(json.dumps({"recorded": move is not None}))
    """
    results = run_children(script, uri, "twice", tmp_path, 2)
    assert sorted(r["recorded"] for r in results) == [False, True]
    history = MlflowRegistry(uri).alias_history("twice")
    assert [(m.from_version, m.to_version) for m in history] == [(None, "2")]  # no "2 -> 2"


def test_a_lock_left_by_a_dead_holder_expires_and_a_live_one_makes_waiters_give_up(store):
    uri, client = store
    versions(client, "locked", 1)
    holder = new_holder("killed-process")
    client.create_registered_model(
        lock_name("locked"), tags={"lock.holder": holder, "lock.expires_at": "2000-01-01T00:00:00.000+00:00"}
    )
    registry = MlflowRegistry(uri, lock_wait_seconds=5)
    assert registry.set_alias("locked", "champion", "1", reason="after a crash", flow_run_id=None) is not None
    client.create_registered_model(
        lock_name("locked"), tags={"lock.holder": "busy-process", "lock.expires_at": "2999-01-01T00:00:00.000+00:00"}
    )
    impatient = MlflowRegistry(uri, lock_wait_seconds=0.3)
    with pytest.raises(RegistryBusy, match="registry lock of model 'locked' is held by busy-process"):
        impatient.set_alias("locked", "challenger", "1", reason="blocked", flow_run_id=None)
    assert impatient.get_alias("locked", "challenger") is None


def test_no_move_records_nothing_but_a_crash_gap_is_filled(store):
    uri, client = store
    versions(client, "gap", 2)
    registry = MlflowRegistry(uri)
    registry.set_alias("gap", "champion", "1", reason="first", flow_run_id=None)
    assert registry.set_alias("gap", "champion", "1", reason="again", flow_run_id=None) is None
    client.set_registered_model_alias("gap", "champion", "2")  # moved, then the process died before recording
    late = registry.set_alias("gap", "champion", "2", reason="retry", flow_run_id=None)
    assert late is not None and (late.from_version, late.to_version) == ("1", "2") and "recorded late" in late.reason
    assert len(registry.alias_history("gap")) == 2
    with pytest.raises(AliasConflict, match="points at version 2, not 1"):
        registry.set_alias("gap", "champion", "1", reason="stale", flow_run_id=None, expected="1")


def test_the_same_run_registered_twice_at_once_is_one_version_and_one_move(store, tmp_path):
    import numpy as np
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    from adapters.registry import DatasetRef

    uri, client = store
    registry = MlflowRegistry(uri, str(tmp_path / "artifacts"))
    x = pd.DataFrame({"a": np.arange(40, dtype="float64")})
    y = (x["a"] > 20).astype(int)
    run = registry.log_training_run(
        experiment="races",
        run_name="one",
        params={},
        metrics={},
        tags={},
        model=LogisticRegression().fit(x, y),
        input_example=x.head(3),
        datasets=[DatasetRef("train", "file:///data/train.parquet", "f" * 64, 40, "training")],
        artifacts={},
        pip_requirements=["scikit-learn"],
    )
    script = f"""
    run = registry.training_run({run.run_id!r})
    wait_for_all()
    version = registry.register_version(model, run, {{}})
    move = registry.set_alias(model, "challenger", version.version, reason=f"child {{me}}", flow_run_id=None)
    print(json.dumps({{"version": version.version, "recorded": move is not None}}))
    """
    results = run_children(script, uri, "same-run", tmp_path, 2)
    assert [r["version"] for r in results] == ["1", "1"]
    assert sorted(r["recorded"] for r in results) == [False, True]
    assert len(client.search_model_versions("name='same-run'")) == 1
    assert [(m.from_version, m.to_version) for m in MlflowRegistry(uri).alias_history("same-run")] == [(None, "1")]
