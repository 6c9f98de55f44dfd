"""Duplicate ids in a scored batch: which rows are copies, and where they fall in the partition plan."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tasks import scoring
from tasks.scoring import Partition


def test_the_first_row_of_each_id_is_kept_and_later_copies_are_found():
    ids = pd.Series(["a", "b", "a", "c", "b", "a"])
    assert scoring.duplicate_positions(ids).tolist() == [2, 4, 5]
    assert scoring.duplicate_positions(pd.Series(["x", "y"])).tolist() == []


def test_positions_are_split_by_partition_across_files_and_row_groups():
    row_groups = [(3, 3), (4,)]  # file 0: rows 0-5 in two groups; file 1: rows 6-9
    plan = scoring.plan_partitions(row_groups, 3)
    assert plan == (Partition(0, 0, (0, 1), 3), Partition(1, 0, (1, 2), 3), Partition(2, 1, (0, 1), 4))
    found = scoring.positions_by_partition(np.array([1, 4, 5, 6, 9]), row_groups, plan)
    assert {k: v.tolist() for k, v in found.items()} == {0: [1], 1: [1, 2], 2: [0, 3]}
    assert scoring.positions_by_partition(np.array([], dtype=int), row_groups, plan) == {}


def test_duplicate_rows_fail_with_the_reason_beside_other_reasons():
    verdict = scoring.RowVerdict(
        np.array([True, False, False]), np.array(["null x", "", ""], dtype=object), {"null x": 1}
    )
    marked = scoring._with_failure(verdict, np.array([True, False, True]), "duplicate id")
    assert marked.failed.tolist() == [True, False, True]
    assert marked.reasons.tolist() == ["null x; duplicate id", "", "duplicate id"]
    assert marked.counts == {"null x": 1, "duplicate id": 2}
