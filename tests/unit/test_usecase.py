import pytest
from pydantic import ValidationError

from tasks.usecase import UseCase


def test_flight_config_is_consistent(usecase):
    assert usecase.time_column == usecase.derived_time.name
    assert "tailnum" in usecase.all_columns()
    assert "temp" in usecase.all_columns()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"key": ("year", "nope")}, "key column 'nope'"),
        ({"leaky_columns": ("distance",)}, "feature 'distance' is listed as leaky"),
        ({"pii": {"ghost": "hash"}}, "pii column 'ghost'"),
    ],
)
def test_inconsistent_use_case_is_rejected(usecase, change, message):
    raw = usecase.model_dump() | change
    with pytest.raises(ValidationError, match=message):
        UseCase.model_validate(raw)


def test_unknown_key_is_rejected(usecase):
    with pytest.raises(ValidationError, match="extra"):
        UseCase.model_validate(usecase.model_dump() | {"colums": {}})
