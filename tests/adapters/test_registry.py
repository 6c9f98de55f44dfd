"""MLflow registry adapter against a real MLflow on SQLite with local artifacts (one store, tests isolate by name)."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from urllib.parse import unquote, urlparse

import numpy as np
import pandas as pd
import pytest
import yaml
from mlflow import MlflowClient
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder

from adapters.registry import DatasetRef, MlflowRegistry, TrainingRun
from tasks.errors import ConfigError, RegistryError, RegistryUnavailable, UntrustedModelError

PIP = ["scikit-learn==1.9.1", "skops==0.16.0"]


class _Identity(TransformerMixin, BaseEstimator):
    """A class defined outside the allow-listed packages: skops can store it, the registry must refuse it."""

    def fit(self, x, y=None):
        return self

    def transform(self, x):
        return x


@pytest.fixture(scope="module")
def frame() -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(7)
    x = pd.DataFrame({"amount": rng.normal(size=200), "kind": rng.choice(["a", "b", "c"], size=200)})
    y = pd.Series(((x["amount"] + (x["kind"] == "a")) > 0.5).astype(int), name="label")
    return x, y


def make_pipeline(*extra: tuple[str, object]) -> Pipeline:
    pre = ColumnTransformer(
        [("num", "passthrough", ["amount"]), ("cat", OneHotEncoder(handle_unknown="ignore"), ["kind"])],
        sparse_threshold=0,
    )
    return Pipeline([("pre", pre), *extra, ("clf", HistGradientBoostingClassifier(max_iter=15, random_state=0))])


@pytest.fixture(scope="module")
def fitted(frame: tuple[pd.DataFrame, pd.Series]) -> Pipeline:
    return make_pipeline().fit(*frame)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mlflow")


@pytest.fixture(scope="module")
def tracking_uri(store: Path) -> str:
    return f"sqlite:///{store}/mlflow.db"


@pytest.fixture(scope="module")
def registry(tracking_uri: str, store: Path) -> MlflowRegistry:
    return MlflowRegistry(tracking_uri, str(store / "artifacts"), http_retries=0)


@pytest.fixture(scope="module")
def client(tracking_uri: str) -> MlflowClient:
    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def log_run(registry: MlflowRegistry, model: Pipeline, frame, *, experiment: str = "training") -> TrainingRun:
    x, _ = frame
    return registry.log_training_run(
        experiment=experiment,
        run_name="train-test",
        params={"max_iter": 15, "features": "amount,kind"},
        metrics={"roc_auc": 0.91, "log_loss": 0.3},
        tags={"git_sha": "abc123", "usecase": "demo"},
        model=model,
        input_example=x.head(5),
        datasets=[
            DatasetRef("train", "s3://lake/snapshots/v1/train.parquet", "d" * 64, 160, "training"),
            DatasetRef("holdout", "/data/snapshots/v1/holdout.parquet", "e" * 64, 40, "holdout"),
        ],
        artifacts={"contract.json": b'{"columns": 2}', "plots/roc.html": b"<html></html>"},
        pip_requirements=PIP,
    )


@pytest.fixture(scope="module")
def run(registry: MlflowRegistry, fitted: Pipeline, frame) -> TrainingRun:
    return log_run(registry, fitted, frame)


def local_dir(uri: str) -> Path:
    return Path(unquote(urlparse(uri).path))


# --- training runs ---------------------------------------------------------------------------------------


def test_training_run_records_params_metrics_tags_and_artifacts(run: TrainingRun, client: MlflowClient) -> None:
    logged = client.get_run(run.run_id)
    assert logged.info.status == "FINISHED"
    assert logged.info.run_name == "train-test"
    assert logged.info.experiment_id == run.experiment_id
    assert logged.data.params == {"max_iter": "15", "features": "amount,kind"}
    assert logged.data.metrics == {"roc_auc": 0.91, "log_loss": 0.3}
    assert {"git_sha": "abc123", "usecase": "demo"}.items() <= logged.data.tags.items()
    paths = {a.path for a in client.list_artifacts(run.run_id)} | {
        a.path for a in client.list_artifacts(run.run_id, "plots")
    }
    assert {"contract.json", "plots/roc.html"} <= paths
    assert run.model_uri.startswith("models:/m-")
    assert run.run_url is None  # no web UI behind SQLite


def test_experiment_artifacts_live_under_artifact_uri(run: TrainingRun, client: MlflowClient, store: Path) -> None:
    location = client.get_experiment(run.experiment_id).artifact_location
    assert local_dir(location) == store / "artifacts" / "training"


def test_datasets_are_logged_as_references_with_context(run: TrainingRun, client: MlflowClient) -> None:
    inputs = {d.dataset.name: d for d in client.get_run(run.run_id).inputs.dataset_inputs}
    assert set(inputs) == {"train", "holdout"}
    train = inputs["train"]
    tags = {t.key: t.value for t in train.tags}
    assert tags == {"mlflow.data.context": "training", "digest": "d" * 64, "rows": "160"}
    assert train.dataset.digest == "d" * 36  # MLflow's limit; the full digest is the input tag
    assert json.loads(train.dataset.source)["uri"] == "s3://lake/snapshots/v1/train.parquet"
    assert json.loads(train.dataset.profile) == {"num_rows": 160}  # the real size, not the schema frame's 0
    assert [c["name"] for c in json.loads(train.dataset.schema)["mlflow_colspec"]] == ["amount", "kind"]
    assert {t.key: t.value for t in inputs["holdout"].tags}["mlflow.data.context"] == "holdout"


def test_model_is_stored_as_skops_with_signature_and_requirements(run: TrainingRun, client: MlflowClient) -> None:
    model_dir = local_dir(client.get_logged_model(run.model_uri.removeprefix("models:/")).artifact_location)
    mlmodel = yaml.safe_load((model_dir / "MLmodel").read_text())
    flavor = mlmodel["flavors"]["sklearn"]
    assert flavor["serialization_format"] == "skops"
    assert flavor["skops_trusted_types"] == ["sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"]
    assert mlmodel["flavors"]["python_function"]["predict_fn"] == "predict_proba"
    assert [c["name"] for c in json.loads(mlmodel["signature"]["inputs"])] == ["amount", "kind"]
    assert (model_dir / "input_example.json").is_file()
    assert set(PIP) <= set((model_dir / "requirements.txt").read_text().split())  # exactly as given, plus mlflow
    assert not list(model_dir.glob("*.pkl"))


def test_model_loads_back_and_predicts_identically(
    registry: MlflowRegistry, run: TrainingRun, fitted: Pipeline, frame, tmp_path: Path
) -> None:
    version = registry.register_version("roundtrip", run, {})
    loaded = registry.load_model("roundtrip", version.version, str(tmp_path / "dl"))
    x, _ = frame
    assert type(loaded) is Pipeline
    np.testing.assert_array_equal(loaded.predict_proba(x), fitted.predict_proba(x))
    assert list((tmp_path / "dl").rglob("model.skops"))  # downloaded where asked, not into a temp folder


@pytest.mark.parametrize(
    ("extra_step", "refused_type"),
    [
        (("custom", _Identity()), "_Identity"),
        (("fn", FunctionTransformer(lambda x: x)), "<lambda>"),
        (("fn", FunctionTransformer(eval)), "builtins.eval"),
    ],
    ids=["class-outside-allow-list", "lambda", "builtin-function"],
)
def test_model_with_untrusted_type_is_refused_before_logging(
    registry: MlflowRegistry, client: MlflowClient, frame, extra_step, refused_type: str
) -> None:
    experiment = f"refused-{refused_type.strip('<>').replace('.', '-')}"
    model = make_pipeline(extra_step) if extra_step[0] == "custom" else Pipeline([extra_step])
    with pytest.raises(UntrustedModelError, match=r"outside the allow-list.*" + refused_type.replace(".", r"\.")):
        log_run(registry, model, frame, experiment=experiment)
    assert client.get_experiment_by_name(experiment) is None  # nothing was written


def test_load_ignores_the_models_own_allow_list(
    registry: MlflowRegistry, client: MlflowClient, fitted: Pipeline, frame, tmp_path: Path
) -> None:
    import skops.io

    version = registry.register_version("tampered", log_run(registry, fitted, frame), {})
    model_dir = local_dir(client.get_model_version_download_uri("tampered", version.version))
    skops.io.dump(make_pipeline(("custom", _Identity())).fit(*frame), model_dir / "model.skops")
    mlmodel = yaml.safe_load((model_dir / "MLmodel").read_text())
    mlmodel["flavors"]["sklearn"]["skops_trusted_types"].append(f"{__name__}._Identity")  # a forged allow-list
    (model_dir / "MLmodel").write_text(yaml.safe_dump(mlmodel))
    with pytest.raises(UntrustedModelError, match="_Identity"):
        registry.load_model("tampered", version.version, str(tmp_path))


def test_load_refuses_pickled_models(
    registry: MlflowRegistry, client: MlflowClient, fitted: Pipeline, frame, tmp_path: Path
) -> None:
    version = registry.register_version("pickled", log_run(registry, fitted, frame), {})
    mlmodel_file = local_dir(client.get_model_version_download_uri("pickled", version.version)) / "MLmodel"
    mlmodel = yaml.safe_load(mlmodel_file.read_text())
    mlmodel["flavors"]["sklearn"]["serialization_format"] = "cloudpickle"
    mlmodel_file.write_text(yaml.safe_dump(mlmodel))
    with pytest.raises(UntrustedModelError, match="stored as cloudpickle, not skops"):
        registry.load_model("pickled", version.version, str(tmp_path))


def test_damaged_model_file_is_a_registry_error(
    registry: MlflowRegistry, client: MlflowClient, fitted: Pipeline, frame, tmp_path: Path
) -> None:
    version = registry.register_version("damaged", log_run(registry, fitted, frame), {})
    model_dir = local_dir(client.get_model_version_download_uri("damaged", version.version))
    (model_dir / "model.skops").write_bytes(b"not a zip file")
    with pytest.raises(RegistryError, match="not a readable skops file"):
        registry.load_model("damaged", version.version, str(tmp_path))


def test_metrics_run_and_summary(registry: MlflowRegistry) -> None:
    run_id = registry.log_metrics_run(
        experiment="monitoring",
        run_name="window-2024-01",
        metrics={"psi_max": 0.12, "alarms": 1},
        tags={"window": "2024-01"},
        artifacts={"drift/report.json": b"{}"},
    )
    summary = registry.run_summary(run_id)
    assert summary["status"] == "FINISHED"
    assert summary["run_name"] == "window-2024-01"
    assert summary["metrics"] == {"psi_max": 0.12, "alarms": 1.0}
    assert summary["params"] == {}
    assert summary["tags"]["window"] == "2024-01"
    assert registry.read_run_artifact(run_id, "drift/report.json") == b"{}"


def test_run_artifact_round_trip_into_a_finished_run(registry: MlflowRegistry, run: TrainingRun) -> None:
    data = json.dumps({"decision": "promote", "delta": 0.013}).encode()
    registry.log_run_artifact(run.run_id, "gate/decision.json", data)
    assert registry.read_run_artifact(run.run_id, "gate/decision.json") == data
    registry.log_run_artifact(run.run_id, "gate/decision.json", b"{}")  # replaced, not duplicated
    assert registry.read_run_artifact(run.run_id, "gate/decision.json") == b"{}"
    assert registry.read_run_artifact(run.run_id, "contract.json") == b'{"columns": 2}'


def test_missing_artifact_is_a_registry_error(registry: MlflowRegistry, run: TrainingRun) -> None:
    with pytest.raises(RegistryError, match=r"no-such\.json"):
        registry.read_run_artifact(run.run_id, "no-such.json")


@pytest.mark.parametrize("path", ["/etc/passwd", "../escape.json", "a/../../b", ""])
def test_artifact_paths_must_stay_inside_the_run(registry: MlflowRegistry, run: TrainingRun, path: str) -> None:
    with pytest.raises(RegistryError, match="artifact path must be relative"):
        registry.log_run_artifact(run.run_id, path, b"x")


def test_unknown_run_is_a_registry_error(registry: MlflowRegistry) -> None:
    with pytest.raises(RegistryError, match="read run 0123456789abcdef"):
        registry.run_summary("0123456789abcdef")


# --- versions and aliases -----------------------------------------------------------------------------------


def test_registering_the_same_run_twice_gives_one_version(
    registry: MlflowRegistry, client: MlflowClient, run: TrainingRun
) -> None:
    first = registry.register_version("idem", run, {"stage_note": "first"})
    again = registry.register_version("idem", run, {"stage_note": "again"})
    assert (first.version, again.version) == ("1", "1")
    assert first.run_id == run.run_id
    assert again.tags == {"stage_note": "again"}
    assert len(client.search_model_versions("name='idem'")) == 1


def test_another_run_gives_the_next_version(registry: MlflowRegistry, run: TrainingRun, fitted, frame) -> None:
    registry.register_version("two-runs", run, {})
    second = registry.register_version("two-runs", log_run(registry, fitted, frame), {})
    assert second.version == "2"
    assert registry.get_version("two-runs", "2").run_id == second.run_id


def test_get_version_of_unknown_model_is_a_registry_error(registry: MlflowRegistry) -> None:
    with pytest.raises(RegistryError, match="read version 1 of model 'nobody'"):
        registry.get_version("nobody", "1")


def test_set_version_tags(registry: MlflowRegistry, run: TrainingRun) -> None:
    version = registry.register_version("tagged", run, {"a": "1"})
    registry.set_version_tags("tagged", version.version, {"a": "2", "gate": "passed"})
    assert registry.get_version("tagged", version.version).tags == {"a": "2", "gate": "passed"}


def test_alias_is_none_until_set(registry: MlflowRegistry, run: TrainingRun) -> None:
    assert registry.get_alias("no-model-here", "champion") is None
    registry.register_version("aliased", run, {})
    assert registry.get_alias("aliased", "champion") is None
    move = registry.set_alias("aliased", "champion", "1", reason="first model", flow_run_id="fr-1")
    assert (move.from_version, move.to_version, move.alias) == (None, "1", "champion")
    champion = registry.get_alias("aliased", "champion")
    assert champion is not None
    assert (champion.version, champion.run_id, champion.aliases) == ("1", run.run_id, ("champion",))


def test_alias_to_a_missing_version_is_refused(registry: MlflowRegistry, run: TrainingRun) -> None:
    registry.register_version("one-version", run, {})
    with pytest.raises(RegistryError, match="move alias 'champion'"):
        registry.set_alias("one-version", "champion", "7", reason="typo", flow_run_id=None)
    assert registry.alias_history("one-version") == []


@pytest.mark.parametrize("reason", ["", "   "])
def test_alias_move_needs_a_reason(registry: MlflowRegistry, run: TrainingRun, reason: str) -> None:
    registry.register_version("no-reason", run, {})
    with pytest.raises(RegistryError, match="needs a reason"):
        registry.set_alias("no-reason", "champion", "1", reason=reason, flow_run_id=None)
    assert registry.get_alias("no-reason", "champion") is None


def test_alias_history_in_order_and_durable(
    registry: MlflowRegistry, run: TrainingRun, fitted, frame, tracking_uri: str, store: Path
) -> None:
    registry.register_version("history", run, {})
    registry.register_version("history", log_run(registry, fitted, frame), {})
    registry.set_alias("history", "champion", "1", reason="first model", flow_run_id="fr-1")
    registry.set_alias("history", "challenger", "2", reason="new training", flow_run_id="fr-2")
    registry.set_alias("history", "champion", "2", reason="gate passed: +0.013 AUC", flow_run_id="fr-3")
    registry.set_alias("history", "champion", "1", reason="rollback: alert 42", flow_run_id=None)

    reopened = MlflowRegistry(tracking_uri, str(store / "artifacts"), actor="someone-else")
    history = reopened.alias_history("history")
    assert [(m.alias, m.from_version, m.to_version, m.reason, m.flow_run_id) for m in history] == [
        ("champion", None, "1", "first model", "fr-1"),
        ("challenger", None, "2", "new training", "fr-2"),
        ("champion", "1", "2", "gate passed: +0.013 AUC", "fr-3"),
        ("champion", "2", "1", "rollback: alert 42", None),
    ]
    assert [m.at for m in history] == sorted(m.at for m in history)
    assert all(m.at.endswith("+00:00") for m in history)
    assert {m.actor for m in history} == {registry.actor}
    assert reopened.get_alias("history", "champion").version == "1"


def test_alias_history_of_unknown_model_is_empty(registry: MlflowRegistry) -> None:
    assert registry.alias_history("never-registered") == []


def test_long_reason_is_cut_to_fit_the_tag_column(
    registry: MlflowRegistry, client: MlflowClient, run: TrainingRun
) -> None:
    registry.register_version("long-reason", run, {})
    registry.set_alias("long-reason", "champion", "1", reason='"quoted" ' * 2000, flow_run_id=None)
    (value,) = [v for k, v in client.get_registered_model("long-reason").tags.items() if k.startswith("alias_")]
    assert len(value) <= 5000
    (move,) = registry.alias_history("long-reason")
    assert move.reason.startswith('"quoted" "quoted"')
    assert move.reason.endswith("…")


# --- configuration, failures, global state ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tracking_uri", "artifact_uri"),
    [("sqlite:///relative.db", None), ("mlruns", None), ("sqlite:////abs/mlflow.db", "relative/artifacts")],
)
def test_relative_locations_are_config_errors(tracking_uri: str, artifact_uri: str | None) -> None:
    with pytest.raises(ConfigError):
        MlflowRegistry(tracking_uri, artifact_uri)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.timeout(60)  # MLflow's default retries would take minutes; http_retries=0 must answer at once
def test_dead_tracking_server_is_reported_unavailable(fitted: Pipeline, frame) -> None:
    uri = f"http://user:secret@127.0.0.1:{free_port()}"
    dead = MlflowRegistry(uri, http_retries=0, http_timeout_seconds=5)
    with pytest.raises(RegistryUnavailable, match=r"MLflow at http://user:\*\*\*@127\.0\.0\.1:\d+ is unreachable"):
        dead.get_alias("model", "champion")
    with pytest.raises(RegistryUnavailable, match="Connection refused") as caught:
        log_run(dead, fitted, frame)
    assert "secret" not in str(caught.value)
    assert "\n" not in str(caught.value)


def test_mlflow_global_state_is_restored(
    registry: MlflowRegistry, fitted: Pipeline, frame, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import mlflow

    elsewhere = f"sqlite:///{tmp_path}/elsewhere.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", elsewhere)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "9")
    monkeypatch.delenv("MLFLOW_HTTP_REQUEST_TIMEOUT", raising=False)
    log_run(registry, fitted, frame)
    assert mlflow.get_tracking_uri() == elsewhere
    assert os.environ["MLFLOW_TRACKING_URI"] == elsewhere
    assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "9"
    assert "MLFLOW_HTTP_REQUEST_TIMEOUT" not in os.environ
    assert mlflow.active_run() is None
    assert not (tmp_path / "elsewhere.db").exists()  # nothing went to the process-wide URI
