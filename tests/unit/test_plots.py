import io

import numpy as np
import pytest
from PIL import Image

from tasks import plots

RNG = np.random.default_rng(0)
Y = (RNG.random(300) < 0.3).astype(int)
GOOD = np.clip(0.3 + 0.4 * (Y - 0.3) + RNG.normal(0, 0.15, 300), 0, 1)
NOISE = RNG.random(300)

CASES = {
    "roc": lambda: plots.roc_curve_png(Y, {"challenger": GOOD, "champion": NOISE}),
    "calibration": lambda: plots.calibration_png(Y, GOOD),
    "confusion": lambda: plots.confusion_png({"tn": 150, "fp": 60, "fn": 30, "tp": 60}),
    "importance": lambda: plots.importance_png({"a": 0.1, "b": 0.03, "a_long_column_name": -0.01}),
}


@pytest.mark.parametrize("name", CASES)
def test_plots_are_deterministic_png_images(name):
    first, second = CASES[name](), CASES[name]()
    assert first.startswith(b"\x89PNG\r\n\x1a\n")
    assert first == second
    width, height = Image.open(io.BytesIO(first)).size
    assert 300 <= width <= 1000 and 300 <= height <= 1000


@pytest.mark.parametrize(
    ("draw", "other"),
    [
        (lambda: plots.calibration_png(Y, GOOD), lambda: plots.calibration_png(Y, NOISE)),
        (
            lambda: plots.confusion_png({"tn": 1, "fp": 2, "fn": 3, "tp": 4}),
            lambda: plots.confusion_png({"tn": 4, "fp": 3, "fn": 2, "tp": 1}),
        ),
        (lambda: plots.roc_curve_png(Y, {"m": GOOD}), lambda: plots.roc_curve_png(Y, {"m": NOISE})),
    ],
    ids=["calibration", "confusion", "roc"],
)
def test_plots_change_with_their_data(draw, other):
    assert draw() != other()


def test_importance_plot_grows_with_the_number_of_features():
    few = Image.open(io.BytesIO(plots.importance_png({"a": 1.0, "b": 0.5})))
    many = Image.open(io.BytesIO(plots.importance_png({f"col_{i}": 1.0 / (i + 1) for i in range(30)})))
    assert many.size[1] > few.size[1]


def test_confusion_plot_of_an_all_zero_matrix_still_draws():
    assert plots.confusion_png({"tn": 0, "fp": 0, "fn": 0, "tp": 0}).startswith(b"\x89PNG")


def test_confusion_plot_needs_all_four_cells():
    with pytest.raises(KeyError, match="tp"):
        plots.confusion_png({"tn": 1, "fp": 2, "fn": 3})
