"""Every step that fits or predicts runs under the configured thread policy (config compute.model_threads).

Each test opens a wider OpenMP pool around the step (as a process without OMP_NUM_THREADS has: one thread
per core) and records how many threads the model code inside the step would use.
"""

from __future__ import annotations

import os
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from sklearn.utils._openmp_helpers import _openmp_effective_n_threads
from threadpoolctl import threadpool_limits

from flows import register, score, train
from flows.context import build_context

pytestmark = pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs 2 cores to tell 1 from 2")


class Seen(Exception):
    """Stops the step once the model code has been reached."""


def _record(seen: list[int]):
    def probe(*args, **kwargs):
        seen.append(_openmp_effective_n_threads())
        raise Seen

    return probe


@pytest.fixture
def ctx(home):
    return build_context()


def test_fit_step_uses_the_configured_threads(ctx, monkeypatch):
    seen: list[int] = []
    monkeypatch.setattr(train.training, "fit_pipeline", _record(seen))
    with threadpool_limits(limits=2, user_api="openmp"), pytest.raises(Seen):
        train.fit.fn(ctx, split=None)
    assert seen == [ctx.settings.compute.model_threads] == [1]


def test_evaluation_and_permutation_importance_use_the_configured_threads(ctx, monkeypatch):
    seen: list[int] = []
    monkeypatch.setattr(train, "_evaluate", _record(seen))
    with threadpool_limits(limits=2, user_api="openmp"), pytest.raises(Seen):
        train.evaluate_model.fn(ctx, pipeline=None, split=None)
    assert seen == [1]


def test_a_raised_setting_reaches_the_fit(home, monkeypatch):
    monkeypatch.setenv("MLOPS_MODEL_THREADS", "2")
    seen: list[int] = []
    monkeypatch.setattr(train.training, "fit_pipeline", _record(seen))
    with threadpool_limits(limits=1, user_api="openmp"), pytest.raises(Seen):
        train.fit.fn(build_context(), split=None)
    assert seen == [2]


def test_gate_evaluation_uses_the_configured_threads(ctx, monkeypatch):
    seen: list[int] = []

    class Model:
        predict_proba = staticmethod(_record(seen))

    window = pd.DataFrame({ctx.usecase.target.name: np.array([0, 1])})
    monkeypatch.setattr(register.training, "feature_frame", lambda frame, usecase: frame)
    with threadpool_limits(limits=2, user_api="openmp"), pytest.raises(Seen):
        register.run_gate.fn(ctx, window, Model(), Model())
    assert seen == [1]


def test_scoring_partition_uses_the_configured_threads(ctx, monkeypatch):
    seen: list[int] = []
    monkeypatch.setattr(score, "_model", lambda ctx, ref: None)
    monkeypatch.setattr(score, "_score_partition", _record(seen))
    with threadpool_limits(limits=2, user_api="openmp"), pytest.raises(Seen):
        score.score_partition.fn(ctx, job=SimpleNamespace(model=None), part=None)
    assert seen == [1]
