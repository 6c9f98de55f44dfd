"""Settings load from config/ into frozen models; every mistake names the key and the file."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from pydantic import ValidationError

from flows.settings import load_settings, load_usecase
from tasks.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def config(tmp_path, monkeypatch) -> Path:
    target = tmp_path / "config"
    shutil.copytree(REPO / "config", target)
    monkeypatch.setenv("MLOPS_CONFIG_DIR", str(target))
    monkeypatch.setenv("MLOPS_HOME", str(tmp_path / "home"))
    return target


def test_local_profile_resolves_home_and_is_frozen(config, tmp_path):
    settings = load_settings()
    assert settings.profile == "local"
    assert settings.storage.lake_uri == str(tmp_path / "home" / "lake")
    assert settings.mlflow.tracking_uri.startswith("sqlite:///")
    with pytest.raises(ValidationError):
        settings.storage.lake_uri = "elsewhere"  # type: ignore[misc]


def test_stack_profile_takes_endpoints_from_the_environment(config, monkeypatch):
    monkeypatch.setenv("MLOPS_S3_ENDPOINT_URL", "http://127.0.0.1:9999")
    settings = load_settings("stack")
    assert settings.storage.s3_endpoint_url == "http://127.0.0.1:9999"
    assert settings.storage.lake_uri == "s3://mlops-lake"


def test_aws_profile_requires_its_wiring(config, monkeypatch):
    monkeypatch.delenv("MLOPS_LANDING_BUCKET", raising=False)
    with pytest.raises(ConfigError, match="environment variable MLOPS_LANDING_BUCKET is not set"):
        load_settings("aws")


@pytest.mark.parametrize(
    ("file", "old", "new", "message"),
    [
        (
            "profiles/local.yaml",
            "lake_uri:",
            "lake_url:",
            r"profiles/local.yaml: .*unknown key 'storage.lake_url'",
        ),
        ("base.yaml", "source: local_file", "source: vault", r"'secrets.pii_key.source'"),
        (
            "usecases/flight_delay.yaml",
            "min_rows: 100",
            "min_rows: lots",
            r"usecases/flight_delay.yaml: 'validation.min_rows'",
        ),
        ("usecases/flight_delay.yaml", "leaky_columns:", "leaky_colums:", r"unknown key 'leaky_colums'"),
    ],
)
def test_config_mistakes_name_key_and_file(config, file, old, new, message):
    path = config / file
    assert old in path.read_text()
    path.write_text(path.read_text().replace(old, new, 1))
    with pytest.raises(ConfigError, match=message):
        load_usecase(load_settings().usecase)


def test_unknown_profile_and_use_case_list_the_known_ones(config):
    with pytest.raises(ConfigError, match=r"unknown profile 'prod' \(known: aws, local, stack\)"):
        load_settings("prod")
    with pytest.raises(ConfigError, match=r"unknown use case 'churn' \(known: flight_delay, glucose_high\)"):
        load_usecase("churn")


def test_malformed_yaml_is_named(config):
    (config / "base.yaml").write_text("usecase: [unclosed\n")
    with pytest.raises(ConfigError, match=r"base\.yaml: not valid YAML"):
        load_settings()


def test_thread_policy_defaults_to_one_and_follows_its_variable(config, monkeypatch):
    monkeypatch.delenv("MLOPS_MODEL_THREADS", raising=False)
    assert load_settings().compute.model_threads == 1
    monkeypatch.setenv("MLOPS_MODEL_THREADS", "3")
    assert load_settings().compute.model_threads == 3


def test_thread_policy_below_one_names_the_key(config, monkeypatch):
    monkeypatch.setenv("MLOPS_MODEL_THREADS", "0")
    with pytest.raises(ConfigError, match=r"compute\.model_threads"):
        load_settings()


def test_the_command_applies_the_configured_threads_and_survives_a_broken_config(config, monkeypatch, tmp_path):
    from ops.main import configured_model_threads

    monkeypatch.setenv("MLOPS_MODEL_THREADS", "2")
    assert configured_model_threads() == 2
    (config / "base.yaml").write_text("compute: [not, a, mapping")
    assert configured_model_threads() == 1, "the default; the command itself then reports the broken file"
