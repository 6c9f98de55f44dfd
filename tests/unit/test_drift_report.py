"""The drift report: a plot per input and the scores, the decision and why, drifted inputs first."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tasks import contract, drift, drift_report
from tasks.usecase import DriftSpec

RNG = np.random.default_rng(7)
REFERENCE = pd.DataFrame(
    {"x": RNG.normal(0, 1, 4000), "z": RNG.normal(0, 1, 4000), "c": RNG.choice(["a", "b", "c"], 4000)}
)
SKETCH = contract.ReferenceSketch(
    numeric={k: contract.numeric_sketch(REFERENCE[k], 10) for k in ("x", "z")},
    categorical={"c": contract.categorical_sketch(REFERENCE["c"])},
    prediction=contract.sketch_predictions(RNG.uniform(0, 1, 4000), 10),
    rows=4000,
)
CURRENT = pd.DataFrame(
    {
        "x": RNG.normal(2, 1, 3000),  # shifted
        "z": RNG.normal(0, 1, 3000),
        "c": RNG.choice(["a", "b", "c", "new"], 3000),
        "p": RNG.uniform(0, 1, 3000),
    }
)


def judged() -> tuple[drift.CurrentProfile, drift.WindowDrift, drift.RetrainDecision]:
    profile = drift.current_profile(CURRENT, SKETCH, "p")
    window = drift.check_drift(profile, SKETCH, DriftSpec(resamples=200, seed=1), {"x": 0.5, "z": 0.3, "c": 0.2})
    return profile, window, drift.should_retrain([True, window.drifted], 2, 3)


def test_markdown_table_puts_drifted_inputs_first_and_the_scores_last():
    _, window, _ = judged()
    rows = [line for line in drift_report.markdown_table(window).splitlines()[2:]]
    assert rows[0].startswith("| `x` |") and "DRIFT" in rows[0]
    assert rows[-1].startswith("| `prediction` | prediction |")
    assert len(rows) == 4


def test_html_report_has_one_plot_per_input_and_the_scores_and_states_the_decision():
    profile, window, decision = judged()
    html = drift_report.report_html(window, profile, SKETCH, decision, {"window": "2013-05", "model": "m v1"})
    assert html.count('<img alt="') == 4
    assert "window 2013-05 — DRIFTED" in html
    assert "Retraining:</b> requested" in html
    assert "m v1" in html


def test_verdict_words():
    _, window, _ = judged()
    by_name = {r.feature: drift_report.verdict(r) for r in window.features}
    assert by_name["x"] == "DRIFT" and by_name["z"] == "stable"
