"""The thread policy: the helper limits the pools of the calling thread, and only while its block runs."""

from __future__ import annotations

import os

import pytest
from sklearn.utils._openmp_helpers import _openmp_effective_n_threads  # the count a HistGradientBoosting fit uses
from threadpoolctl import threadpool_limits

from adapters import compute

needs_two_cores = pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs 2 cores to tell 1 from 2")


@needs_two_cores
def test_model_threads_limits_openmp_inside_the_block_and_restores_it_after():
    with threadpool_limits(limits=2, user_api="openmp"):
        assert _openmp_effective_n_threads() == 2
        with compute.model_threads(1):
            assert _openmp_effective_n_threads() == 1
        assert _openmp_effective_n_threads() == 2


@needs_two_cores
def test_model_threads_can_allow_more_than_one():
    with threadpool_limits(limits=1, user_api="openmp"), compute.model_threads(2):
        assert _openmp_effective_n_threads() == 2


@pytest.mark.parametrize("threads", [0, -1])
def test_fewer_than_one_thread_is_refused(threads):
    with pytest.raises(ValueError, match="at least 1"), compute.model_threads(threads):
        pass
    with pytest.raises(ValueError, match="at least 1"):
        compute.thread_env(threads)


def test_thread_env_names_every_native_pool():
    assert compute.thread_env(3) == {"OMP_NUM_THREADS": "3", "OPENBLAS_NUM_THREADS": "3", "MKL_NUM_THREADS": "3"}


def test_apply_to_process_fills_missing_variables_and_keeps_the_users(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("MKL_NUM_THREADS", raising=False)
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "4")
    applied = compute.apply_to_process(1)
    assert applied == {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "4", "MKL_NUM_THREADS": "1"}
    assert os.environ["OMP_NUM_THREADS"] == "1"
