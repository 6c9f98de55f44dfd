"""The product's one thread policy: how many native threads (OpenMP, BLAS) a model may use to fit or predict.

scikit-learn's histogram gradient boosting, and the BLAS behind numpy, start one thread per core by default.
On a machine whose cores are busy with other work those teams spin-wait for each other instead of computing:
measured on this 2-core machine at load 12, a fit took 44–127 s with 2 threads vs 3–4 s with 1 (README, "Under
CPU load"). The policy is one number, ``compute.model_threads`` in config/base.yaml, applied two ways:

- ``model_threads(n)``: a context manager around every fit and predict. OpenMP's thread count is per calling
  thread, so it is entered in the thread that runs the model (inside the step), never once "for the process".
- ``thread_env(n)``: the environment variables that set the same limit for a whole process before its native
  libraries load (CLI start, runner/worker children, flow-run subprocesses, containers).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from threadpoolctl import threadpool_limits

DEFAULT_MODEL_THREADS = 1
THREAD_ENV_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


@contextmanager
def model_threads(threads: int = DEFAULT_MODEL_THREADS) -> Iterator[None]:
    """Limit the OpenMP and BLAS pools used by the calling thread to ``threads`` while the block runs.

    Args:
        threads: Native threads a model may use; at least 1.

    Raises:
        ValueError: ``threads`` is below 1.
    """
    if threads < 1:
        raise ValueError(f"model threads must be at least 1, not {threads}")
    with threadpool_limits(limits=threads):
        yield


def thread_env(threads: int = DEFAULT_MODEL_THREADS) -> dict[str, str]:
    """Environment that limits a new process's native thread pools to ``threads`` from its start."""
    if threads < 1:
        raise ValueError(f"model threads must be at least 1, not {threads}")
    return dict.fromkeys(THREAD_ENV_VARS, str(threads))


def apply_to_process(threads: int = DEFAULT_MODEL_THREADS) -> dict[str, str]:
    """Set the policy's variables in this process's environment where the user has not set them.

    Call it at process start, before numpy or scikit-learn load their native libraries; every child process
    (Prefect runner, worker, flow-run subprocess) inherits it. A value the user exported wins.

    Returns:
        The variables as they now are.
    """
    for key, value in thread_env(threads).items():
        os.environ.setdefault(key, value)
    return {key: os.environ[key] for key in THREAD_ENV_VARS}
