"""The one place where retries, timeouts and caching of steps are decided.

Only I/O steps retry (a flaky store or server deserves a second try); compute steps never do, because the
same input would fail the same way. Nothing is cached: flows hand each other references, and every rerun
must see the current state of the stores.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.errors import MlopsError, Transient

IO_RETRIES = 2
IO_RETRY_DELAYS_SECONDS = [2, 10]
IO_TIMEOUT_SECONDS = 900
COMPUTE_TIMEOUT_SECONDS = 3600


def worth_retrying(task: Any, task_run: Any, state: Any) -> bool:
    """Retry unreachable stores and unknown failures; never bad input, bad config or a missing object."""
    exc = state.result(raise_on_failure=False)
    return not isinstance(exc, MlopsError) or isinstance(exc, Transient)


def io_step(name: str) -> Callable[[Callable[..., Any]], Any]:
    """A Prefect task that reads or writes a store or server: retried, with a timeout."""
    return task(
        name=name,
        retries=IO_RETRIES,
        retry_delay_seconds=IO_RETRY_DELAYS_SECONDS,
        timeout_seconds=IO_TIMEOUT_SECONDS,
        retry_condition_fn=worth_retrying,
        cache_policy=NO_CACHE,
    )


def compute_step(name: str) -> Callable[[Callable[..., Any]], Any]:
    """A Prefect task around pure computation: no retries, generous timeout."""
    return task(name=name, timeout_seconds=COMPUTE_TIMEOUT_SECONDS, cache_policy=NO_CACHE)
