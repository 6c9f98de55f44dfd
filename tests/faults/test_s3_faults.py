"""The lifecycle on S3 behind a proxy that fails 20 % of the requests: same results as without faults.

moto serves S3 on 127.0.0.1; tests/faults/s3_fault_proxy.py sits in front of it. Landing, lake and MLflow's
artifacts are all on S3 through the proxy (the `stack` profile); MLflow's tracking store is SQLite.
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import boto3
import pandas as pd
import pytest
import yaml
from s3_fault_proxy import FaultProxy

from adapters.storage import S3_MAX_ATTEMPTS, S3Storage, read_parquet
from flows.ingest import ingest
from flows.land import land
from flows.register import register
from flows.score import score
from flows.train import train
from tasks.errors import TransientStorageError

# a whole lifecycle on a busy machine: beyond the suite's default 600 s per test
pytestmark = [pytest.mark.timeout(1800), pytest.mark.usefixtures("prefect_harness")]

REPO = Path(__file__).resolve().parents[2]
PII_KEY = "test-only-pii-key-0123456789abcdef"
RUN_SPECIFIC = ["scored_at", "flow_run_id", "model_run_id"]


@pytest.fixture(scope="module")
def config(tmp_path_factory) -> Path:
    """The repository's config; the PII key from the environment (both runs hash alike); one month trains."""
    target = tmp_path_factory.mktemp("fault-config") / "config"
    shutil.copytree(REPO / "config", target)
    base = yaml.safe_load((target / "base.yaml").read_text())
    base["secrets"]["pii_key"]["source"] = "env"
    (target / "base.yaml").write_text(yaml.safe_dump(base))
    usecase = target / "usecases" / "flight_delay.yaml"
    data = yaml.safe_load(usecase.read_text())
    data["gate"] = {**data["gate"], "floors": {}, "max_brier": None, "max_calibration_error": None}
    usecase.write_text(yaml.safe_dump(data))
    return target


def lifecycle(endpoint: str, moto: str, home: Path, config: Path) -> dict:
    """Land, ingest, train, register and score January 2013 on fresh buckets; what came out."""
    s3 = boto3.client("s3", endpoint_url=moto)
    tag = uuid.uuid4().hex[:8]
    with pytest.MonkeyPatch.context() as mp:
        for bucket in ("landing", "lake", "mlflow"):
            s3.create_bucket(Bucket=f"f-{bucket}-{tag}")
            mp.setenv(f"MLOPS_{bucket.upper()}_BUCKET", f"f-{bucket}-{tag}")
        mp.setenv("MLOPS_S3_ENDPOINT_URL", endpoint)
        mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{home}/mlflow.db")
        mp.setenv("MLOPS_HOME", str(home))
        mp.setenv("MLOPS_CONFIG_DIR", str(config))
        mp.setenv("MLOPS_PII_KEY", PII_KEY)
        landed = land(period="2013-01", profile="stack")
        ingested = ingest(input_uri=landed["batch_uri"], profile="stack")
        trained = train(months="2013-01", profile="stack")
        decision = register(run_id=trained["run_id"], profile="stack")
        scored = score(input_uri=ingested["snapshot_uri"], profile="stack")
        direct = S3Storage(endpoint_url=moto)
        parts = [u for u in direct.list(scored["scores_uri"]) if u.endswith(".parquet")]
        frame = pd.concat([read_parquet(direct, u) for u in parts], ignore_index=True)
    frame = frame.drop(columns=RUN_SPECIFIC).sort_values("flight_id").reset_index(drop=True)
    return {
        "ingest": {k: ingested[k] for k in ("version", "rows_in", "rows_curated", "rows_quarantined")},
        "metrics": trained["metrics"],
        "decision": (decision["outcome"], decision["version"]),
        "scoring": {k: scored[k] for k in ("batch_id", "rows_in", "rows_scored", "rows_quarantined")},
        "scores": frame,
    }


def test_the_lifecycle_on_a_faulty_s3_gives_the_same_results(s3_server, tmp_path, config):
    with FaultProxy(s3_server, rate=0.0) as clean:
        expected = lifecycle(clean.url, s3_server, tmp_path / "clean", config)
    with FaultProxy(s3_server, rate=0.2, seed=7) as faulty:
        found = lifecycle(faulty.url, s3_server, tmp_path / "faulty", config)
    print(f"\nfault proxy: {dict(faulty.counts)}")
    assert faulty.counts["500"] and faulty.counts["503"] and faulty.counts["reset"]  # every kind happened
    assert sum(faulty.counts[k] for k in ("500", "503", "reset")) >= 0.1 * faulty.counts["requests"]
    scores = found.pop("scores")
    pd.testing.assert_frame_equal(scores, expected.pop("scores"))
    assert found == expected and found["decision"][0] == "promoted"


def test_s3_down_gives_up_after_a_bounded_number_of_tries_with_a_clear_error(s3_server, s3_bucket):
    with FaultProxy(s3_server, rate=1.0) as down:
        storage = S3Storage(endpoint_url=down.url)
        with pytest.raises(TransientStorageError, match=rf"cannot read {s3_bucket}/batch.json: "):
            storage.read_bytes(f"{s3_bucket}/batch.json")
    # S3_MAX_ATTEMPTS tries by boto3; urllib3 may resend once on a pooled connection the server reset
    assert S3_MAX_ATTEMPTS <= down.counts["requests"] <= S3_MAX_ATTEMPTS + 1
