"""Load config/ once into frozen, validated models: base.yaml + profiles/<profile>.yaml + usecases/<name>.yaml.

Unknown keys and wrong types are errors naming the key and the file. ``${VAR}`` / ``${VAR:-default}`` in values
is filled from the environment (infra wiring only); ``MLOPS_HOME`` defaults to ``var/`` in the repository.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import Field, ValidationError

from tasks.errors import ConfigError
from tasks.serving import ApiSettings
from tasks.stream_settings import StreamSettings
from tasks.usecase import Strict, UseCase

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PROFILE = "local"
M = TypeVar("M", bound=Strict)
_VAR = re.compile(r"\$\{([A-Z0-9_]+)(?::-([^}]*))?\}")


class SecretRef(Strict):
    """Where a secret is found at run time; ``local_file`` is generated on first use (embedded default)."""

    source: Literal["local_file", "env", "prefect_secret"]
    env_var: str
    prefect_block: str
    file: str | None = None


class SecretsSettings(Strict):
    pii_key: SecretRef


class StorageSettings(Strict):
    landing_uri: str
    lake_uri: str
    s3_endpoint_url: str | None = None


class MlflowSettings(Strict):
    tracking_uri: str
    artifact_uri: str | None = None
    # MLflow's own default is 7 retries with backoff: minutes against a dead server; Prefect retries the step
    http_retries: int = 2
    http_timeout_seconds: int = 30


class ComputeSettings(Strict):
    """The thread policy (adapters/compute.py): native threads one model fit or prediction may use."""

    model_threads: int = Field(default=1, ge=1, le=256)


class WaitSettings(Strict):
    """How the demo and the replay wait for a triggered run: while it progresses, and no longer without progress."""

    no_progress_seconds: int = Field(default=900, ge=10)


class BackupSettings(Strict):
    # None: <home>/backups; in production another disk or s3://bucket/prefix
    root: str | None = None
    keep: int = 7  # newest backups kept by `mlops backup create` and the scheduled backup


class Settings(Strict):
    """Everything a flow needs besides the use case."""

    profile: str
    home: str
    usecase: str
    secrets: SecretsSettings
    storage: StorageSettings
    mlflow: MlflowSettings
    compute: ComputeSettings = ComputeSettings()
    waits: WaitSettings = WaitSettings()
    api: ApiSettings = ApiSettings()
    stream: StreamSettings = StreamSettings()
    backup: BackupSettings = BackupSettings()


def config_dir() -> Path:
    return Path(os.environ.get("MLOPS_CONFIG_DIR", REPO_ROOT / "config")).resolve()


def mlops_home() -> Path:
    return Path(os.environ.get("MLOPS_HOME", REPO_ROOT / "var")).resolve()


def load_settings(profile: str | None = None) -> Settings:
    """Base settings merged with one profile, validated.

    Raises:
        ConfigError: a file is missing or malformed, a key is unknown, a type is wrong, a variable is unset.
    """
    profile = profile or os.environ.get("MLOPS_PROFILE") or DEFAULT_PROFILE
    base_path = config_dir() / "base.yaml"
    profile_path = config_dir() / "profiles" / f"{profile}.yaml"
    if not profile_path.is_file():
        known = sorted(p.stem for p in (config_dir() / "profiles").glob("*.yaml"))
        raise ConfigError(f"unknown profile '{profile}' (known: {', '.join(known)})")
    raw = _deep_merge(_read_yaml(base_path), _read_yaml(profile_path))
    raw.update(profile=profile, home=str(mlops_home()))
    raw["usecase"] = os.environ.get("MLOPS_USECASE", raw.get("usecase"))
    files = f"{base_path.name} + profiles/{profile_path.name}"
    return _validate(Settings, raw, files)


def load_usecase(name: str) -> UseCase:
    """The use case ``config/usecases/<name>.yaml``, validated."""
    path = config_dir() / "usecases" / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in (config_dir() / "usecases").glob("*.yaml"))
        raise ConfigError(f"unknown use case '{name}' (known: {', '.join(known)})")
    return _validate(UseCase, _read_yaml(path), f"usecases/{path.name}")


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError as exc:
        raise ConfigError(f"config file not found: {path}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path.name}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path.name}: top level must be a mapping")
    return _interpolate(data, path.name)


def _interpolate(value: Any, source: str) -> Any:
    if isinstance(value, dict):
        return {k: _interpolate(v, source) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, source) for v in value]
    if not isinstance(value, str):
        return value

    def fill(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name == "MLOPS_HOME":
            return str(mlops_home())
        if name in os.environ:
            return os.environ[name]
        if default is None:
            raise ConfigError(f"{source}: environment variable {name} is not set (used in '{value}')")
        return default

    return _VAR.sub(fill, value)


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _validate(model: type[M], raw: dict[str, Any], files: str) -> M:
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{files}: {_describe(exc)}") from None


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"]) or "(top level)"
        if err["type"] == "extra_forbidden":
            parts.append(f"unknown key '{key}'")
        elif err["type"] == "missing":
            parts.append(f"missing key '{key}'")
        else:
            parts.append(f"'{key}': {err['msg']}")
    return "; ".join(parts)
