"""The REST API on a real model version (session fixture): scoring, every bad input, model info, metrics, and
the prediction log read back by the real drift check as a window of API traffic."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd
import pytest
from conftest import MODEL, USECASE, request_rows
from fastapi.testclient import TestClient

from ops.cli_api import build_services
from services.api import create_app

QUIET = {"poll_seconds": 600.0, "follow_events": False, "log_flush_rows": 100_000, "log_flush_seconds": 600.0}


def _ready(client: TestClient) -> None:
    deadline = time.monotonic() + 120
    while client.get("/ready").status_code != 200:
        assert time.monotonic() < deadline, client.get("/ready").json()
        time.sleep(0.1)


@pytest.fixture
def api(service_env):
    services = build_services(overrides={**QUIET, "max_rows": 200, "max_body_bytes": 200_000})
    with TestClient(create_app(services)) as client:
        _ready(client)
        yield client, services


@pytest.fixture
def rows(served) -> list[dict]:
    return request_rows(served["feb_frame"], 5)


def test_predict_scores_rows_with_the_champion(api, rows, served):
    client, _ = api
    response = client.post("/v1/predict", json=rows, headers={"X-Request-ID": "abc-123"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert response.headers["X-Request-ID"] == body["request_id"] == "abc-123"
    assert body["model"]["name"] == MODEL and body["model"]["version"] == served["versions"][-1]
    assert response.headers["X-Model-Version"] == served["versions"][-1]
    assert [r["id"] for r in body["rows"]] == [r["flight_id"] for r in rows]
    for row in body["rows"]:
        assert 0.0 <= row["probability"] <= 1.0
        assert row["label"] == int(row["probability"] >= body["decision_threshold"])
        assert isinstance(row["outlier"], bool) and isinstance(row["unseen"], bool)


def test_every_body_format_gives_the_same_scores(api, rows):
    client, _ = api
    reference = [r["probability"] for r in client.post("/v1/predict", json=rows).json()["rows"]]
    columns = list(rows[0])
    split = {"dataframe_split": {"columns": columns, "data": [[r[c] for c in columns] for r in rows]}}
    for body in ({"records": rows}, {"dataframe_records": rows}, split):
        got = client.post("/v1/predict", json=body).json()["rows"]
        assert [r["probability"] for r in got] == pytest.approx(reference)
    single = client.post("/v1/predict", json=rows[0]).json()["rows"]
    assert [r["probability"] for r in single] == pytest.approx(reference[:1])


def test_invocations_answers_like_mlflow(api, rows):
    client, _ = api
    body = client.post(
        "/invocations", json={"dataframe_split": {"columns": list(rows[0]), "data": [list(r.values()) for r in rows]}}
    ).json()
    assert len(body["predictions"]) == len(rows)
    for pair, row in zip(body["predictions"], body["rows"], strict=True):
        assert pair == pytest.approx([1 - row["probability"], row["probability"]])


def test_a_request_without_id_gets_one(api, rows):
    client, _ = api
    response = client.post("/v1/predict", json=rows[:1])
    assert len(response.headers["X-Request-ID"]) == 32


@pytest.mark.parametrize(
    ("send", "status", "row", "field", "words"),
    [
        (
            lambda c, r: c.post("/v1/predict", content=b"[{", headers={"Content-Type": "application/json"}),
            400,
            None,
            None,
            "malformed JSON",
        ),
        (lambda c, r: c.post("/v1/predict", json=17), 400, None, None, "not int"),
        (lambda c, r: c.post("/v1/predict", json=[{**r[0], "colour": "red"}]), 422, 0, "colour", "unknown field"),
        (
            lambda c, r: c.post("/v1/predict", json=[r[0], {k: v for k, v in r[1].items() if k != "distance"}]),
            422,
            1,
            "distance",
            "missing required field",
        ),
        (lambda c, r: c.post("/v1/predict", json=[{**r[0], "temp": "warm"}]), 422, 0, "temp", "expected a number"),
        (
            lambda c, r: c.post("/v1/predict", json=[{**r[0], "sched_dep_local": None}]),
            422,
            0,
            "sched_dep_local",
            "null is not allowed",
        ),
        (
            lambda c, r: c.post("/v1/predict", json=[r[0], r[1], {**r[2], "distance": 99999.0}]),
            422,
            2,
            "distance",
            "outside the contract's range",
        ),
        (lambda c, r: c.post("/v1/predict", json=[]), 422, None, None, "no rows"),
        (lambda c, r: c.post("/v1/predict", json=r[:1] * 201), 413, None, None, "201 rows; at most 200"),
        (
            lambda c, r: c.post("/v1/predict", content=b" " * 200_001, headers={"Content-Type": "application/json"}),
            413,
            None,
            None,
            "200001 bytes; at most 200000",
        ),
        (
            lambda c, r: c.post("/v1/predict", content=json.dumps(r).encode(), headers={"Content-Type": "text/plain"}),
            415,
            None,
            None,
            "must be application/json, not text/plain",
        ),
        (lambda c, r: c.post("/v1/predict", content=json.dumps(r).encode()), 415, None, None, "no content type"),
    ],
    ids=[
        "malformed-json",
        "not-object-or-list",
        "unknown-field",
        "missing-field",
        "wrong-type",
        "null-not-allowed",
        "out-of-domain",
        "empty-list",
        "too-many-rows",
        "body-too-large",
        "wrong-content-type",
        "no-content-type",
    ],
)
def test_bad_input_gets_a_4xx_naming_row_field_and_reason(api, rows, send, status, row, field, words):
    client, _ = api
    response = send(client, rows)
    assert response.status_code == status, response.text
    body = response.json()
    assert words in body["error"] and body["request_id"] == response.headers["X-Request-ID"]
    first = body["problems"][0]
    assert (first["row"], first["field"]) == (row, field)


def test_unseen_category_is_scored_and_flagged(api, rows):
    client, _ = api
    body = client.post("/v1/predict", json=[rows[0], {**rows[1], "dest": "ZZZ"}]).json()
    assert [r["unseen"] for r in body["rows"]] == [False, True]
    assert body["rows"][1]["unseen_features"] == ["dest"]


def test_a_partly_bad_request_scores_nothing_and_counts_refused_rows(api, rows):
    client, services = api
    bad = [rows[0], {**rows[1], "distance": 99999.0}, rows[2], {**rows[3], "carrier": 9}]
    response = client.post("/v1/predict", json=bad)
    assert response.status_code == 422
    assert [(p["row"], p["field"]) for p in response.json()["problems"]] == [(3, "carrier")]  # typing comes first
    bad[3] = rows[3]
    response = client.post("/v1/predict", json=bad)
    assert [(p["row"], p["field"]) for p in response.json()["problems"]] == [(1, "distance")]
    assert services.log.pending == 0  # nothing of a refused request is scored or logged
    metrics = client.get("/metrics").text
    assert 'mlops_api_rows_total{outcome="refused"} 2.0' in metrics
    assert 'mlops_api_requests_total{endpoint="/v1/predict",status="422"} 2.0' in metrics


def test_health_ready_model_and_metrics(api, rows, served):
    client, _ = api
    assert client.get("/health").json() == {"status": "alive"}
    ready = client.get("/ready").json()
    assert ready["ready"] and ready["version"] == served["versions"][-1] and ready["last_error"] is None
    info = client.get("/v1/model").json()
    assert info["name"] == MODEL and info["alias"] == "champion" and info["run_id"]
    assert "distance" in info["features"] and info["contract"]["ranges"]["distance"][1] >= 4983
    assert info["status"]["swaps"] == 1
    client.post("/v1/predict", json=rows)
    metrics = client.get("/metrics").text
    assert f'mlops_api_model_version{{model="{MODEL}",version="{served["versions"][-1]}"}} 1.0' in metrics
    assert 'mlops_api_rows_total{outcome="scored"} 5.0' in metrics
    assert 'mlops_api_model_swaps_total{outcome="ok"} 1.0' in metrics
    assert "mlops_api_request_seconds_bucket" in metrics and "mlops_api_model_ready 1.0" in metrics


def test_prediction_log_is_a_window_the_drift_check_judges(service_env, served):
    from flows.drift import drift_check

    services = build_services(overrides=QUIET)
    feb = served["feb_frame"]
    with TestClient(create_app(services)) as client:
        _ready(client)
        for start in range(0, 600, 150):
            assert client.post("/v1/predict", json=request_rows(feb, 150, start)).status_code == 200
        assert services.log.pending == 600
    # leaving the client shut the app down: the log was flushed on shutdown
    assert services.log.pending == 0 and services.log.rows_written == 600
    root = service_env / "lake" / USECASE / "predictions"
    manifests = sorted(root.rglob("_manifest.json"))
    assert len(manifests) == 1
    manifest = json.loads(manifests[0].read_text())
    logged = pd.concat(pd.read_parquet(f) for f in manifest["input_files"])
    assert len(logged) == manifest["rows_scored"] == 600
    assert logged["request_id"].nunique() == 4 and set(logged["model_version"]) == {served["versions"][-1]}
    for column in ("model_name", "model_run_id", "batch_id", "scored_at", "flow_run_id", "probability", "temp"):
        assert column in logged.columns
    result = drift_check(window=manifest["batch_id"], scores_uri=str(root))
    stored = json.loads(Path(result["result_uri"]).read_text())
    assert result["window"] == manifest["batch_id"] and stored["verdict"]["rows"] == 600
    assert result["model"]["version"] == served["versions"][-1]
    assert result["drifted"] in (True, False)  # judged: a window under the minimum size would give None


def test_shadow_alias_scores_the_same_rows_off_the_request_path(service_env, served):
    services = build_services(overrides={**QUIET, "shadow_alias": "challenger"})
    rows = request_rows(served["feb_frame"], 4)
    with TestClient(create_app(services)) as client:
        _ready(client)
        assert services.shadow.wait_for_version(services.shadow.registry.get_alias(MODEL, "challenger").version, 120)
        for i in range(3):
            assert client.post("/v1/predict", json=rows, headers={"X-Request-ID": f"shadow-{i}"}).status_code == 200
        info = client.get("/v1/model").json()
        assert info["shadow"]["alias"] == "challenger"
    lake = service_env / "lake" / USECASE
    main = pd.concat(pd.read_parquet(p) for p in (lake / "predictions").rglob("*.parquet"))
    shadow = pd.concat(pd.read_parquet(p) for p in (lake / "predictions_shadow").rglob("*.parquet"))
    assert (
        sorted(shadow["request_id"].unique())
        == sorted(main["request_id"].unique())
        == ["shadow-0", "shadow-1", "shadow-2"]
    )
    assert len(shadow) == len(main) == 12
    assert set(shadow["model_alias"]) == {"challenger"} and set(main["model_alias"]) == {"champion"}
