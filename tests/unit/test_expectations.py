from tasks.expectations import ExpectationSpec, build_ingest_suite


def test_suite_covers_schema_nulls_ranges_sets_key_and_size(usecase):
    labels = {s.label for s in build_ingest_suite(usecase)}
    assert {
        "columns_exist",
        "row_count_between",
        "not_null(carrier)",
        "between(distance)",
        "in_set(origin)",
    } <= labels
    assert "match_regex(dest)" in labels
    assert "null_fraction_at_most(wind_gust)" in labels
    assert "compound_unique(year,month,day,carrier,flight,origin)" in labels


def test_hashed_pii_column_gets_only_null_checks(usecase):
    tail = [s for s in build_ingest_suite(usecase) if s.column == "tailnum"]
    assert {s.kind for s in tail} == {"of_type", "null_fraction_at_most"}


def test_dropped_pii_column_is_not_expected(usecase):
    dropping = usecase.model_copy(update={"pii": {"tailnum": "drop"}})
    suite = build_ingest_suite(dropping)
    assert not [s for s in suite if s.column == "tailnum"]
    assert "tailnum" not in suite[0].columns


def test_row_level_flag():
    assert ExpectationSpec("between", column="x").row_level
    assert not ExpectationSpec("row_count_between").row_level
