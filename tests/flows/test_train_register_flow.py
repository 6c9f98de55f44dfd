"""Training and registration through the real flows: MLflow on SQLite in tmp_path, real 2013 months.

Jan–Mar 2013 are landed and ingested once per session; every test gets its own MLflow store.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from mlflow import MlflowClient

import flows.register as register_module
from flows.ingest import ingest
from flows.land import land
from flows.register import register, rollback
from flows.train import train
from tasks.errors import MlopsError, RegistryUnavailable

REPO = Path(__file__).resolve().parents[2]
MONTHS = "2013-01..2013-03"
MODEL = "flight-delay-classifier"


@pytest.fixture(scope="session")
def curated_lake(tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("lake-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLOPS_HOME", str(home))
        mp.setenv("MLOPS_PII_KEY", "test-only-pii-key-0123456789abcdef")
        for month in ("2013-01", "2013-02", "2013-03"):
            ingest(input_uri=land(period=month)["batch_uri"])
    return home / "lake"


@pytest.fixture
def mlhome(home, curated_lake) -> Path:
    home.mkdir(parents=True)
    (home / "lake").symlink_to(curated_lake)
    return home


@pytest.fixture
def configure(tmp_path, monkeypatch):
    """Copy config/ and change the use case: ``configure(gate={"mode": "dry_run"})``."""

    def apply(**changes) -> None:
        target = tmp_path / "config"
        if not target.exists():
            shutil.copytree(REPO / "config", target)
        path = target / "usecases" / "flight_delay.yaml"
        data = yaml.safe_load(path.read_text())
        for section, values in changes.items():
            data[section] = {**data[section], **values} if isinstance(values, dict) else values
        path.write_text(yaml.safe_dump(data))
        monkeypatch.setenv("MLOPS_CONFIG_DIR", str(target))

    return apply


def client(home: Path) -> MlflowClient:
    return MlflowClient(tracking_uri=f"sqlite:///{home}/mlflow/mlflow.db")


def champion(home: Path) -> str | None:
    aliases = client(home).get_registered_model(MODEL).aliases
    value = aliases.get("champion")
    return None if value is None else str(value)


def test_first_model_is_trained_logged_and_promoted(mlhome):
    trained = train(months=MONTHS)
    run = client(mlhome).get_run(trained["run_id"])
    tags = run.data.tags
    assert len(json.loads(tags["snapshot_uris"])) == 3 and tags["git_sha"] and tags["prefect.flow_run_id"]
    assert tags["split.train_end"] < tags["split.holdout_start"]
    assert run.data.metrics["holdout_roc_auc"] > 0.6
    artifacts = {a.path for a in client(mlhome).list_artifacts(trained["run_id"], "plots")}
    assert {
        "plots/roc_curve.png",
        "plots/calibration.png",
        "plots/confusion_matrix.png",
        "plots/permutation_importance.png",
    } <= artifacts
    contract = {a.path for a in client(mlhome).list_artifacts(trained["run_id"], "contract")}
    assert "contract/reference_sketch.json" in contract and "contract/expectations.json" in contract
    assert len(run.inputs.dataset_inputs) == 3

    decision = register(run_id=trained["run_id"])
    assert decision["outcome"] == "promoted" and decision["version"] == "1"
    assert champion(mlhome) == "1"
    version = client(mlhome).get_model_version(MODEL, "1")
    assert version.tags["gate.outcome"] == "promoted"
    gate_files = [a.path for a in client(mlhome).list_artifacts(trained["run_id"], "gate")]
    assert len(gate_files) == 1
    again = register(run_id=trained["run_id"])
    assert again["outcome"] == "already_champion" and len(client(mlhome).search_model_versions(f"name='{MODEL}'")) == 1


def test_worse_challenger_stays_challenger(mlhome, configure):
    configure(gate={"floors": {"roc_auc": 0.5}})
    register(run_id=train(months=MONTHS)["run_id"])
    configure(model={"params": {"max_iter": 3, "max_leaf_nodes": 4, "learning_rate": 0.05}})
    worse = register(run_id=train(months=MONTHS)["run_id"])
    assert worse["outcome"] == "rejected" and worse["version"] == "2"
    assert worse["bootstrap"]["high"] < 0
    assert any("non-inferior" in r or "inferior" in r for r in worse["reasons"])
    assert champion(mlhome) == "1"
    assert str(client(mlhome).get_registered_model(MODEL).aliases["challenger"]) == "2"
    assert client(mlhome).get_model_version(MODEL, "2").tags["gate.outcome"] == "rejected"


def test_dry_run_decides_records_and_moves_nothing(mlhome, configure):
    configure(gate={"mode": "dry_run"})
    decision = register(run_id=train(months=MONTHS)["run_id"])
    assert decision["outcome"] == "dry_run_promote" and decision["promoted"] is False
    assert champion(mlhome) is None
    assert client(mlhome).get_model_version(MODEL, "1").tags["gate.mode"] == "dry_run"


def test_rollback_restores_the_previous_champion_and_records_why(mlhome):
    first = train(months=MONTHS)["run_id"]
    second = train(months=MONTHS)["run_id"]  # same data and seed: equal, so non-inferior
    register(run_id=first)
    assert register(run_id=second)["outcome"] == "promoted"
    assert champion(mlhome) == "2"
    result = rollback(reason="late flights spiked after deploy")
    assert (result["from_version"], result["to_version"]) == ("2", "1")
    assert champion(mlhome) == "1"
    from flows.context import build_context

    moves = build_context().registry().alias_history(MODEL)
    assert moves[-1].reason == "rollback: late flights spiked after deploy" and moves[-1].from_version == "2"
    with pytest.raises(MlopsError, match="no earlier champion"):
        rollback(reason="again")


def test_failure_mid_registration_moves_no_alias_and_a_rerun_succeeds(mlhome, monkeypatch):
    first = train(months=MONTHS)["run_id"]
    second = train(months=MONTHS)["run_id"]
    register(run_id=first)
    monkeypatch.setattr(register_module.record_decision, "retries", 0)
    real = register_module.MlflowRegistry.set_version_tags

    def down(self, *args, **kwargs):
        raise RegistryUnavailable("MLflow at sqlite:///... is unreachable (set tags): connection refused")

    monkeypatch.setattr(register_module.MlflowRegistry, "set_version_tags", down)
    with pytest.raises(RegistryUnavailable, match="unreachable"):
        register(run_id=second)
    assert champion(mlhome) == "1"
    monkeypatch.setattr(register_module.MlflowRegistry, "set_version_tags", real)
    assert register(run_id=second)["outcome"] == "promoted"
    assert champion(mlhome) == "2"


def test_unreachable_tracking_server_fails_clearly(mlhome, tmp_path, monkeypatch, configure):
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    configure()
    profile = tmp_path / "config" / "profiles" / "local.yaml"
    data = yaml.safe_load(profile.read_text())
    data["mlflow"] = {"tracking_uri": f"http://127.0.0.1:{port}", "artifact_uri": None, "http_retries": 0}
    profile.write_text(yaml.safe_dump(data))
    monkeypatch.setattr(register_module.register_version, "retry_delay_seconds", [0, 0])
    with pytest.raises(RegistryUnavailable, match=f"MLflow at http://127.0.0.1:{port} is unreachable"):
        register(run_id="0" * 32)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"model": {"min_training_rows": 10_000_000}}, "labelled rows"),
        ({"features": {"numeric": ["distance", "no_such_column"], "categorical": ["origin"], "time_parts": []}}, None),
    ],
)
def test_bad_training_input_fails_with_a_clear_message(mlhome, configure, change, message):
    if message is None:  # an undeclared feature is refused when the config is loaded
        from tasks.errors import ConfigError

        configure(**change)
        with pytest.raises(ConfigError, match="feature 'no_such_column' is not a declared column"):
            train(months=MONTHS)
        return
    configure(**change)
    with pytest.raises(MlopsError, match=message):
        train(months=MONTHS)


def test_training_on_a_month_never_ingested_says_what_to_run(mlhome):
    with pytest.raises(MlopsError, match=r"no curated snapshot for 2013-07: run `mlops land --month 2013-07`"):
        train(months="2013-07")
