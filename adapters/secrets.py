"""Secrets at run time: from the environment, a Prefect Secret block, or a generated local key file.

The local file is the embedded default only: it is created on first use under MLOPS_HOME (outside git).
A configured secret that cannot be found raises; there is never an empty fallback.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from tasks.errors import ConfigError


def resolve_secret(source: str, env_var: str, prefect_block: str, file: str | None) -> bytes:
    """The secret's bytes, from the configured source (an environment variable always wins when set).

    Raises:
        ConfigError: the secret is not where the config says it is.
    """
    if os.environ.get(env_var):
        return os.environ[env_var].encode("utf-8")
    if source == "env":
        raise ConfigError(f"secret missing: environment variable {env_var} is not set")
    if source == "prefect_secret":
        return _from_prefect_block(prefect_block)
    if file is None:
        raise ConfigError("secret source is local_file but no file path is configured")
    return _from_local_file(Path(file))


def _from_prefect_block(name: str) -> bytes:
    from prefect.blocks.system import Secret  # imported here: only this source needs a Prefect API

    try:
        value = Secret.load(name).get()
    except ValueError as exc:
        raise ConfigError(f"secret missing: Prefect Secret block '{name}' not found ({exc})") from None
    return str(value).encode("utf-8")


def _from_local_file(path: Path) -> bytes:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.parent.chmod(0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(32))
    value = path.read_text(encoding="utf-8").strip()
    if len(value) < 32:
        raise ConfigError(f"secret file {path} holds fewer than 32 characters")
    return value.encode("utf-8")
