"""Stream scoring logic that needs no model: payload parsing, batch cuts, backoff, names of output files."""

from __future__ import annotations

import pytest

from tasks.stream_settings import StreamSettings
from tasks.streaming import backoff_ms, batch_due, parse_payload, parse_range_name, range_name, sequence_key


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty payload"),
        (b"   \n", "empty payload"),
        (b"\xff\xfe{}", "not UTF-8"),
        (b"{not json", "not JSON"),
        (b'{"a": NaN}', "not a finite number: NaN"),
        (b'{"a": Infinity}', "not a finite number: Infinity"),
        (b"[1, 2]", "not a JSON object but a JSON list"),
        (b'"text"', "not a JSON object but a JSON str"),
        (b"{" * 1_100_000, "payload larger than"),
    ],
)
def test_a_payload_that_is_not_one_json_object_says_why(data: bytes, reason: str) -> None:
    value, problem = parse_payload(data)
    assert value is None and problem is not None and problem.startswith(reason)


def test_a_json_object_parses() -> None:
    assert parse_payload(b'{"distance": 1.5, "carrier": "UA"}') == ({"distance": 1.5, "carrier": "UA"}, None)


def test_a_batch_is_due_at_its_row_limit_or_its_age_limit() -> None:
    settings = StreamSettings(batch_max_rows=3, batch_max_ms=100)
    assert not batch_due(0, None, 1000.0, settings)
    assert not batch_due(2, 950.0, 1000.0, settings)
    assert batch_due(3, 999.0, 1000.0, settings)
    assert batch_due(1, 900.0, 1000.0, settings)


def test_backoff_grows_exponentially_is_capped_and_jittered() -> None:
    assert [backoff_ms(a, 100, 1000, 1.0) for a in range(6)] == [100, 200, 400, 800, 1000, 1000]
    assert backoff_ms(3, 100, 1000, 0.5) == 400
    assert backoff_ms(3, 100, 1000, 0.0) == 0
    with pytest.raises(ValueError, match="out of range"):
        backoff_ms(-1, 100, 1000, 0.5)


def test_range_names_sort_in_stream_order_and_read_back() -> None:
    small = range_name("9", "12")
    aws = "49590338271490256608559692538361571095921575989136588898"
    large = range_name(aws, aws[:-3] + "999")
    assert small < large
    assert parse_range_name(f"stream=x/shard=y/{small}") == ("9", "12")
    assert sequence_key("7") == "0" * 63 + "7"
    with pytest.raises(ValueError, match="reversed"):
        range_name("12", "9")
    with pytest.raises(ValueError, match="not a Kinesis sequence number"):
        sequence_key("12a")
