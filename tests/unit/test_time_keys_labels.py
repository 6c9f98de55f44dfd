"""A timestamp as the time, one-column and PII keys, and labels that arrive later: rows in = rows out + quarantined."""

import pandas as pd
import pytest
from pydantic import ValidationError

from tasks import cleaning, labels
from tasks.batch import prepare_batch
from tasks.errors import InputDataError
from tasks.expectations import ROW_ID, build_ingest_suite
from tasks.landing import check_not_empty, select_by_time
from tasks.privacy import keyed_hash
from tasks.usecase import ColumnSpec, UseCase

KEY = b"unit-test-key-0123456789"


def weekly(**change) -> UseCase:
    """A small use case of the new shape: text timestamps, a one-column key that is PII, weekly periods."""
    raw = {
        "name": "tiny",
        "description": "tiny",
        "registered_model": "tiny-model",
        "source": {
            "adapter": "files",
            "tables": {"events": ["a.csv", "b/*.csv"], "outcomes": "o.parquet"},
            "primary": "events",
            "labels": {"table": "outcomes", "columns": {"value": {"type": "float"}}},
        },
        "columns": {"at": {"type": "datetime"}, "user": {"type": "str"}, "x": {"type": "float", "nullable": True}},
        "key": ["user"],
        "id_column": "event_id",
        "time_column": "at",
        "period": {"unit": "week"},
        "target": {"name": "y", "source": "value", "threshold": 1},
        "features": {"numeric": ["x"], "categorical": []},
        "pii": {"user": "hash"},
        "validation": {"max_quarantine_fraction": 0.5, "min_rows": 1, "max_rows": 100},
        "split": {"validation_fraction": 0.2, "holdout_fraction": 0.2},
        "model": {"estimator": "logistic_regression", "decision_threshold": 0.5, "min_training_rows": 1},
        "kpi": {"name": "k", "top_fraction": 0.1},
        "gate": {"non_inferiority_margin": 0.01},
    }
    for path, value in change.items():
        *parents, leaf = path.split(".")
        node = raw
        for p in parents:
            node = node[p]
        node[leaf] = value
    return UseCase.model_validate(raw)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"id_column": "x"}, "id_column 'x' clashes with a raw column"),
        ({"key": ["ghost"]}, "key column 'ghost' is not a declared column"),
        ({"time_column": "x"}, "time_column 'x' must have type datetime"),
        ({"time_column": "when"}, "time_column 'when' is not a column of the primary table"),
        ({"pii": {"user": "drop"}}, "key column 'user' cannot have pii action drop"),
        ({"source.tables": {"events": [], "outcomes": "o.csv"}}, "lists no file for: events"),
        ({"source.adapter": "python_package"}, "source.package is required"),
        ({"period": {"unit": "fortnight"}}, "period.unit"),
    ],
)
def test_inconsistent_new_shapes_are_refused_in_one_message(change, message):
    with pytest.raises(ValidationError, match=message):
        weekly(**change)


def test_a_one_column_key_is_checked_for_uniqueness_on_its_own():
    suite = build_ingest_suite(weekly())
    assert [s.column for s in suite if s.kind == "unique"] == ["user"]
    assert not [s for s in suite if s.kind == "compound_unique"]


def events(times: list[str | None], users: list[str]) -> dict[str, pd.DataFrame]:
    return {"events": pd.DataFrame({"at": times, "user": users, "x": ["1.0"] * len(times)})}


def test_timestamps_that_do_not_parse_mix_zones_or_fall_outside_the_week_are_quarantined_with_reasons():
    times = [
        "2010-04-05 10:00:00",  # Monday of 2010-W14
        "2010-04-06 10:00:00",
        "2010-04-07T10:00:00",
        "yesterday",  # does not parse
        "2010-04-08 10:00:00+02:00",  # the only value with an offset: mixed zones
        "2010-04-12 00:00:00",  # Monday of the next week
        None,
    ]
    prepared = prepare_batch(events(times, list("abcdefg")), weekly(), "2010-W14", KEY)
    reasons = prepared.reasons.groupby(ROW_ID)["reason"].agg(list).to_dict()
    assert reasons == {
        3: ["type(at:datetime)"],
        4: ["mixed_timezones(at)"],
        5: ["outside_period(at:2010-W14)"],
    }
    assert len(prepared.frame) == len(times)  # nothing dropped: validation and the split see every row
    assert str(prepared.frame["at"].dtype).startswith("datetime64") and prepared.frame["at"].dt.tz is None


def test_aware_times_are_compared_in_the_declared_zone():
    use = weekly(
        **{"columns.at": {"type": "datetime", "timezone": "UTC"}, "period": {"unit": "day", "timezone": "Asia/Tokyo"}}
    )
    # 16:00 UTC on the 4th is 01:00 on the 5th in Tokyo; 15:30 UTC on the 5th is already the 6th there
    times = ["2010-04-04T16:00:00Z", "2010-04-05T14:30:00+00:00", "2010-04-05T15:30:00Z"]
    prepared = prepare_batch(events(times, ["a", "b", "c"]), use, "2010-04-05", KEY)
    assert prepared.reasons[["_row", "reason"]].values.tolist() == [[2, "outside_period(at:2010-04-05)"]]
    assert prepared.frame["at"].tolist()[:2] == [pd.Timestamp("2010-04-05 01:00"), pd.Timestamp("2010-04-05 23:30")]


def test_a_pii_key_reaches_the_id_only_hashed():
    prepared = prepare_batch(
        events(["2010-04-05 10:00:00"] * 2, ["alice@example.org", "bob"]), weekly(), "2010-W14", KEY
    )
    ids = prepared.frame["event_id"].tolist()
    assert ids == [keyed_hash("alice@example.org", KEY), keyed_hash("bob", KEY)]
    assert not prepared.frame.astype("str").apply(lambda c: c.str.contains("alice")).any().any()
    assert "alice@example.org" not in prepared.raw.to_string()


def test_a_raw_column_named_like_the_id_is_one_line_error():
    tables = events(["2010-04-05 10:00:00"], ["a"])
    tables["events"]["event_id"] = ["raw"]
    with pytest.raises(InputDataError, match="has a column named 'event_id'"):
        prepare_batch(tables, weekly(), "2010-W14", KEY)


def test_a_missing_key_column_is_one_line_error():
    with pytest.raises(InputDataError, match=r"events: missing required column\(s\): user"):
        prepare_batch({"events": pd.DataFrame({"at": ["2010-04-05"], "x": ["1"]})}, weekly(), "2010-W14", KEY)


def test_late_labels_join_by_the_hashed_id_and_every_row_is_accounted_for():
    use = weekly()
    known = pd.Series([keyed_hash(u, KEY) for u in ("a", "b", "c")])
    table = pd.DataFrame(
        {
            "at": ["2010-04-05 10:00"] * 5 + ["not a time"],
            "user": ["a", "b", "b", "zed", "c", "a"],
            "value": ["3", "0", "5", "2", None, "1"],
        }
    )
    prepared = labels.prepare_labels(table, use, "2010-W14", KEY, known)
    assert prepared.rows_in == len(prepared.labels) + len(prepared.quarantine) == 6
    assert prepared.labels.to_dict("list") == {"event_id": [known[0], known[1]], "y": [1, 0]}
    why = dict(zip(prepared.quarantine["user"], prepared.quarantine["quarantine_reasons"], strict=True))
    assert set(prepared.quarantine["user"]) == {keyed_hash(u, KEY) for u in ("b", "zed", "c", "a")}
    assert sorted(why.values()) == sorted(
        ["duplicate_id(event_id)", "id_not_ingested(2010-W14)", "no_outcome(value)", "type(at:datetime)"]
    )


def test_labels_attach_onto_curated_rows_by_id():
    curated = pd.DataFrame({"event_id": ["p", "q", "r"], "y": pd.array([pd.NA, pd.NA, 1], dtype="Int8")})
    late = pd.DataFrame({"event_id": ["q", "r"], "y": pd.array([1, 0], dtype="Int8")})
    assert labels.attach_labels(curated, late, "event_id", "y")["y"].tolist() == [pd.NA, 1, 0]


def test_landing_cuts_a_week_by_the_timestamp_and_an_empty_week_is_an_error():
    frame = pd.DataFrame({"at": ["2010-04-04 23:59", "2010-04-05 00:00", "garbage", "2010-04-11 23:59"]})
    rows, timeless = select_by_time(frame, "at", ColumnSpec(type="datetime"), "2010-W14", None)
    assert rows["at"].tolist() == ["2010-04-05 00:00", "2010-04-11 23:59"] and timeless == 1
    empty, _ = select_by_time(frame, "at", ColumnSpec(type="datetime"), "2011-W14", None)
    with pytest.raises(Exception, match="no row of events falls in period 2011-W14"):
        check_not_empty(len(empty), "events", "2011-W14", "2010-04-04 .. 2010-04-11")


def test_a_datetime_column_from_parquet_is_localized_not_reparsed():
    values = pd.Series(pd.to_datetime(["2010-04-05 10:00"]))
    converted = cleaning.to_utc(values, "Europe/Paris")
    assert converted.iloc[0] == pd.Timestamp("2010-04-05 08:00", tz="UTC")
