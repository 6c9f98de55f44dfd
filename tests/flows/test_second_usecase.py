"""The second use case (config/usecases/glucose_high.yaml) through its whole life, on its real data.

Weekly batches cut from a timestamp column, a one-column key, outcomes that arrive later in a table of their
own. Session set-up: weeks 2010-W20..W23 landed and ingested without outcomes; the outcomes of W20..W22 land
later; a model trained on them is promoted and scores W23. Then W23's outcomes arrive, the performance check
finds the window degraded and emits its event, and the retrain the event asks for trains on those late labels
without any re-landing or re-ingestion.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest

from adapters.registry import MlflowRegistry
from flows.drift import drift_check
from flows.ingest import ingest
from flows.labels import land_labels
from flows.land import land
from flows.performance import performance_check
from flows.register import register
from flows.retrain import retrain
from flows.score import score
from flows.train import train
from tasks.errors import MlopsError
from tasks.monitoring import PERFORMANCE_EVENT

pytestmark = [pytest.mark.integration, pytest.mark.slow]
USECASE = "glucose_high"
TRAIN_WEEKS = ("2010-W20", "2010-W21", "2010-W22")
NEXT = "2010-W23"


@pytest.fixture(scope="module")
def life(tmp_path_factory) -> dict:
    home = tmp_path_factory.mktemp("glucose-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLOPS_HOME", str(home))
        mp.delenv("MLOPS_PROFILE", raising=False)
        mp.delenv("MLOPS_CONFIG_DIR", raising=False)
        landed = {w: land(period=w, usecase=USECASE) for w in (*TRAIN_WEEKS, NEXT)}
        ingested = {w: ingest(input_uri=landed[w]["batch_uri"], usecase=USECASE) for w in landed}
        with pytest.raises(MlopsError) as before_labels:
            train(months=f"{TRAIN_WEEKS[0]}..{TRAIN_WEEKS[-1]}", usecase=USECASE)
        labels = {w: land_labels(period=w, usecase=USECASE) for w in TRAIN_WEEKS}
        run = train(months=f"{TRAIN_WEEKS[0]}..{TRAIN_WEEKS[-1]}", usecase=USECASE)
        decision = register(run_id=run["run_id"], usecase=USECASE)
        scored = score(input_uri=ingested[NEXT]["snapshot_uri"], usecase=USECASE)
        drift = drift_check(window=NEXT, usecase=USECASE)
        unlabelled = performance_check(window=NEXT, usecase=USECASE)
        late = land_labels(period=NEXT, usecase=USECASE)
        checked = performance_check(window=NEXT, usecase=USECASE)
        event = checked.get("event")
        # the parameters the retrain deployment's trigger renders from the event (prefect.yaml)
        retrained = (
            retrain(
                window_end=NEXT,
                trailing_months=3,
                reason=f"performance degraded in window {NEXT}",
                evidence=checked["result_uri"],
                usecase=USECASE,
            )
            if event
            else None
        )
    return locals()


def test_weeks_land_from_the_timestamp_column_without_their_outcomes(life):
    for week, batch in life["landed"].items():
        start = pd.Timestamp.fromisocalendar(int(week[:4]), int(week[6:]), 1)
        frame = pd.read_csv(f"{batch['batch_uri']}/readings.csv")
        stamps = pd.to_datetime(frame["datetime"])
        assert stamps.min() >= start and stamps.max() < start + pd.Timedelta(days=7)
        assert "glucose" not in frame.columns  # outcomes arrive with the labels table only
        assert batch["tables"]["readings"]["rows"] == len(frame) > 1000


def test_ingestion_keeps_every_row_and_checks_the_one_column_key(life):
    for summary in life["ingested"].values():
        assert summary["rows_in"] == summary["rows_curated"] + summary["rows_quarantined"]
        assert summary["rows_unlabelled"] == summary["rows_curated"]
        assert summary["expectations_evaluated"] > 3
    curated = pd.read_parquet(life["ingested"][NEXT]["data_uri"])
    assert curated["reading_id"].is_unique and curated["is_high"].isna().all()


def test_training_without_arrived_labels_fails_with_one_line(life):
    message = str(life["before_labels"].value)
    assert "label" in message.lower() and "\n" not in message


def test_late_labels_are_stored_by_id_with_every_row_accounted_for(life):
    for week, stored in life["labels"].items():
        assert stored["rows_in"] == stored["rows_labelled"] + stored["rows_quarantined"]
        curated = pd.read_parquet(life["ingested"][week]["data_uri"])
        labels = pd.read_parquet(f"{stored['uri']}/labels.parquet")
        assert set(labels["reading_id"]) <= set(curated["reading_id"])
        assert len(labels) == stored["rows_labelled"] > 1000 and labels["is_high"].isin([0, 1]).all()


def test_the_model_trained_on_late_labels_is_promoted_and_scores_the_next_week(life):
    assert life["decision"]["promoted"], life["decision"]
    assert life["run"]["metrics"]["holdout"]["roc_auc"] > 0.75
    assert life["scored"]["rows_scored"] > 1000


def test_drift_and_performance_checks_run_on_the_weekly_window(life):
    assert life["drift"]["window"] == NEXT and life["drift"]["drifted"] is not None
    assert life["unlabelled"]["verdict"]["degraded"] is None  # nothing has arrived yet: no verdict, no event
    assert life["checked"]["labels_uri"].startswith(life["late"]["uri"])
    counts = life["checked"]["counts"]
    assert counts["rows_labelled"] == life["late"]["rows_labelled"]
    assert counts["rows_scored"] == counts["rows_labelled"] + counts["rows_unlabelled"] + counts["rows_missing_label"]


def test_a_degraded_window_triggers_a_retrain_that_trains_on_the_labels_that_arrived_after_scoring(life):
    assert life["checked"]["degraded"], life["checked"]["reason"]
    assert life["event"]["name"] == PERFORMANCE_EVENT
    retrained = life["retrained"]
    assert retrained["status"] == "retrained" and retrained["ingested"] == []
    assert retrained["window"] == [*TRAIN_WEEKS[1:], NEXT]
    home = life["home"]
    registry = MlflowRegistry(f"sqlite:///{home / 'mlflow' / 'mlflow.db'}", str(home / "mlflow" / "artifacts"))
    summary = registry.run_summary(retrained["run_id"])
    label_uris = json.loads(summary["tags"]["label_uris"])
    assert label_uris[NEXT] == life["late"]["uri"]
    # the week scored before its outcomes existed is in the training data, labelled only by the late labels
    curated = pd.read_parquet(life["ingested"][NEXT]["data_uri"])
    assert curated["is_high"].isna().all()
    total = sum(int(summary["params"][f"rows.{p}"]) for p in ("train", "validation", "holdout"))
    print(f"holdout auc {life['run']['metrics']['holdout']['roc_auc']:.3f}; {NEXT}: {life['checked']['reason']}")
    assert total == sum(life["labels"][w]["rows_labelled"] for w in TRAIN_WEEKS[1:]) + life["late"]["rows_labelled"]
