"""Stream records decoded with the served version's contract: the API's field rules, per record, not per batch."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from tasks import scoring, serving
from tasks.expectations import ExpectationSpec
from tasks.scoring import OutlierReference
from tasks.streaming import StreamRecord, dead_letter_frame, decode_records, refused_rows, row_payloads
from tasks.training import model_inputs


@pytest.fixture
def contract(usecase) -> serving.ServingContract:
    numeric, categorical = usecase.features.numeric, usecase.features.categorical
    specs = (
        ExpectationSpec("columns_exist", columns=model_inputs(usecase)),
        *(ExpectationSpec("of_type", column=c, type_name="float64") for c in numeric),
        *(ExpectationSpec("of_type", column=c, type_name="str") for c in categorical),
        ExpectationSpec("of_type", column=usecase.time_column, type_name="datetime64"),
        ExpectationSpec("between", column="distance", min_value=1.0, max_value=6000.0),
        ExpectationSpec("not_null", column=usecase.time_column),
    )
    return serving.serving_contract(specs, OutlierReference({}, {}), usecase)


def _row(usecase, **changes) -> dict:
    row = {c: 1.0 for c in usecase.features.numeric}
    row.update({c: "UA" for c in usecase.features.categorical}, **{usecase.time_column: "2013-02-01T06:00:00"})
    return {**row, **changes}


def _records(payloads: list[bytes]) -> list[StreamRecord]:
    at = datetime(2013, 2, 1, tzinfo=UTC)
    return [StreamRecord("shard-0", str(i + 1), f"key-{i}", p, at) for i, p in enumerate(payloads)]


def test_good_records_become_typed_rows_and_bad_ones_are_refused_alone(usecase, contract) -> None:
    payloads = [
        json.dumps(_row(usecase, flight_id="f-0")).encode(),
        b"not json",
        json.dumps({k: v for k, v in _row(usecase).items() if k != "carrier"}).encode(),
        json.dumps(_row(usecase, distance="far")).encode(),
        json.dumps(_row(usecase)).encode(),  # no id: its partition key is its id
    ]
    decoded = decode_records(_records(payloads), contract)
    assert decoded.rows == (0, 4)
    assert decoded.frame[usecase.id_column].tolist() == ["f-0", "key-4"]
    assert decoded.frame["distance"].dtype == "float64"
    assert str(decoded.frame[usecase.time_column].dtype).startswith("datetime64")
    reasons = dict(decoded.rejected)
    assert reasons[1].startswith("not JSON")
    assert reasons[2] == "field 'carrier': missing required field"
    assert reasons[3].startswith("field 'distance': expected a number")


def test_a_batch_of_only_bad_records_gives_an_empty_frame(usecase, contract) -> None:
    decoded = decode_records(_records([b"", b"[]"]), contract)
    assert decoded.frame.empty and [i for i, _ in decoded.rejected] == [0, 1]


def test_rows_the_contract_refuses_get_the_apis_reason(usecase, contract) -> None:
    payloads = [json.dumps(_row(usecase, distance=d)).encode() for d in (100.0, 99999.0)]
    decoded = decode_records(_records(payloads), contract)
    verdict = scoring.check_rows(decoded.frame, contract.row_specs)
    reasons = refused_rows(decoded.frame, verdict.failed, verdict.reasons[verdict.failed], contract)
    assert verdict.failed.tolist() == [False, True]
    assert reasons == ["field 'distance': value 99999.0 is outside the contract's range [1, 6000]"]


def test_dead_letter_rows_keep_the_raw_bytes_and_where_they_were() -> None:
    records = _records([b"\xff", b"{}"])
    frame = dead_letter_frame(records, [(0, "not UTF-8 text (byte 0)")], "flights", "3")
    assert frame.to_dict("records")[0] | {"arrived_at": None} == {
        "stream": "flights",
        "shard_id": "shard-0",
        "sequence_number": "1",
        "partition_key": "key-0",
        "payload": b"\xff",
        "arrived_at": None,
        "reason": "not UTF-8 text (byte 0)",
        "model_version": "3",
    }


def test_produced_rows_are_json_objects_a_consumer_decodes_back(usecase, contract) -> None:
    frame = pd.DataFrame([_row(usecase, flight_id="f-1", temp=np.nan)]).assign(
        **{usecase.time_column: pd.Timestamp("2013-02-01 06:00")}
    )
    payloads = row_payloads(frame, ("flight_id", *model_inputs(usecase)), "flight_id")
    assert payloads[0][0] == "f-1" and json.loads(payloads[0][1])["temp"] is None
    decoded = decode_records(_records([p for _, p in payloads]), contract)
    assert decoded.rows == (0,) and decoded.frame[usecase.time_column].iloc[0] == pd.Timestamp("2013-02-01 06:00")
    with pytest.raises(ValueError, match="not in the rows"):
        row_payloads(frame, ("nope",), "flight_id")
