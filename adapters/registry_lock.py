"""One lock per registered model, held in the MLflow registry itself, around every alias move.

Why in the registry: register, retrain and rollback may run in different processes or on different machines
(CLI, process worker, Kubernetes jobs); the one store they all share is MLflow. MLflow has no lock or
compare-and-swap call, but creating a registered model is atomic in every backend (the name is a primary
key): the lock is a registered model named ``<model>.lock`` that exists while someone holds it. Its tags say
who holds it and until when (a lease): a holder that dies (SIGKILL, lost machine) leaves the lock behind, and
a waiter removes it once the lease has expired and the holder is still the same one it saw expire.
Breaking a stale lock races only with another waiter breaking the same stale lock in the same milliseconds.
Leases use the holder's clock: machines sharing a registry need synchronized clocks (NTP), as usual.
"""

from __future__ import annotations

import os
import random
import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime, timedelta
from typing import Any

from tasks.errors import RegistryBusy

LOCK_SUFFIX = ".lock"
_ALREADY_EXISTS = ("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS")
_NOT_FOUND = "RESOURCE_DOES_NOT_EXIST"


def lock_name(model: str) -> str:
    """The registered model that serves as the lock of ``model``."""
    return f"{model}{LOCK_SUFFIX}"


def new_holder(actor: str) -> str:
    """A token naming this process uniquely (and readably, for whoever finds a lock left behind)."""
    return f"{actor}@{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@contextmanager
def held(client: Any, model: str, holder: str, *, lease_seconds: float, wait_seconds: float) -> Iterator[None]:
    """Hold the lock of ``model`` for the block.

    Raises:
        RegistryBusy: another holder kept it for more than ``wait_seconds`` (and its lease had not expired).
    """
    _acquire(client, model, holder, lease_seconds, wait_seconds)
    try:
        yield
    finally:
        _release(client, model, holder)


def _acquire(client: Any, model: str, holder: str, lease_seconds: float, wait_seconds: float) -> None:
    from mlflow.exceptions import MlflowException

    name, deadline, pause = lock_name(model), time.monotonic() + wait_seconds, 0.05
    while True:
        expires = (datetime.now(UTC) + timedelta(seconds=lease_seconds)).isoformat(timespec="milliseconds")
        try:
            client.create_registered_model(
                name,
                tags={"lock.holder": holder, "lock.expires_at": expires},
                description=f"Lock of the alias moves of model '{model}'; exists only while a move is under way.",
            )
            return
        except MlflowException as exc:
            if exc.error_code not in _ALREADY_EXISTS and not _is_contention(exc):
                raise
        other = _break_if_stale(client, name)
        if time.monotonic() >= deadline:
            raise RegistryBusy(
                f"registry lock of model '{model}' is held by {other or 'another process'}: "
                f"gave up after {wait_seconds:.0f} s"
            )
        time.sleep(pause * (0.5 + random.random()))  # noqa: S311  # jitter: waiters must not retry in lockstep
        pause = min(pause * 2, 1.0)


def _break_if_stale(client: Any, name: str) -> str | None:
    """Remove the lock if its lease has expired; return its holder (None if it vanished meanwhile)."""
    from mlflow.exceptions import MlflowException

    try:
        tags = client.get_registered_model(name).tags
    except MlflowException as exc:
        if exc.error_code == _NOT_FOUND or _is_contention(exc):
            return None
        raise
    holder, expires = tags.get("lock.holder"), tags.get("lock.expires_at")
    if expires is None or datetime.fromisoformat(expires) > datetime.now(UTC):
        return holder  # a lock being created has no tags yet: it is young, not stale
    with suppress(MlflowException):  # another waiter may have broken it first
        if client.get_registered_model(name).tags.get("lock.holder") == holder:
            client.delete_registered_model(name)
    return holder


def _release(client: Any, model: str, holder: str) -> None:
    from mlflow.exceptions import MlflowException

    name = lock_name(model)
    try:
        if client.get_registered_model(name).tags.get("lock.holder") == holder:
            client.delete_registered_model(name)
    except MlflowException as exc:
        if exc.error_code != _NOT_FOUND:  # our lease expired and someone broke it: nothing left to release
            raise


def _is_contention(exc: Exception) -> bool:
    """SQLite answers concurrent writers with 'database is locked': a reason to wait, not to fail."""
    return "database is locked" in str(exc) or "UNIQUE constraint failed" in str(exc)
