"""NannyML's CBPE on the windows ``bench/estimate.py`` wrote; run by the NannyML interpreter, not .venv.

NannyML is never a dependency of the product: it lives in a throw-away environment (Makefile NANNYML_ENV).
Reads ``<dir>/reference.parquet`` (the calibration reference: label, score, decision) and ``<dir>/window-*.parquet``
(score and decision of each later month), fits CBPE on the reference and estimates ROC AUC, precision and
recall of each window as one chunk. Writes ``<dir>/peer.json``.
Usage: $NANNYML_PYTHON bench/estimate_peer.py DIR
"""

from __future__ import annotations

import json
import sys
import time
import warnings
from pathlib import Path

import nannyml
import pandas as pd

METRICS = ["roc_auc", "precision", "recall"]


def main(folder: Path) -> None:
    warnings.filterwarnings("ignore")
    reference = pd.read_parquet(folder / "reference.parquet")
    out: dict = {"version": nannyml.__version__, "pandas": pd.__version__, "windows": {}}
    for path in sorted(folder.glob("window-*.parquet")):
        window = path.stem.removeprefix("window-")
        analysis = pd.read_parquet(path)
        started = time.perf_counter()
        cbpe = nannyml.CBPE(
            y_pred_proba="proba",
            y_pred="flagged",
            y_true="label",
            metrics=METRICS,
            problem_type="classification_binary",
            chunk_number=1,
        )
        cbpe.fit(reference)
        frame = cbpe.estimate(analysis).filter(period="analysis").to_df()
        seconds = time.perf_counter() - started
        found = {}
        for metric in METRICS:
            found[metric] = {
                "value": float(frame[(metric, "value")].iloc[0]),
                "lower": float(frame[(metric, "lower_confidence_boundary")].iloc[0]),
                "upper": float(frame[(metric, "upper_confidence_boundary")].iloc[0]),
            }
        out["windows"][window] = {"metrics": found, "seconds": seconds}
    (folder / "peer.json").write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
