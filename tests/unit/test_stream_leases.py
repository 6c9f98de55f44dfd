"""Lease planning: shard lineage after split/merge, expiry, fair shares between consumers."""

from __future__ import annotations

import pytest

from tasks.stream_leases import SHARD_END, LeaseRow, ShardInfo, held, plan_leases, ready_shards

FOUR = [ShardInfo(f"s{i}") for i in range(4)]


def test_two_consumers_split_four_shards_and_the_second_takes_only_free_ones() -> None:
    first = plan_leases(FOUR, {}, "a", workers=2, now=100.0)
    assert first.acquire == ("s0", "s1") and first.target == 2
    rows = {s: LeaseRow(s, owner="a", expires_at=120.0) for s in first.acquire}
    second = plan_leases(FOUR, rows, "b", workers=2, now=100.0)
    assert second.acquire == ("s2", "s3")


def test_a_dead_consumers_shards_are_taken_only_after_its_lease_expires() -> None:
    rows = {
        s.shard_id: LeaseRow(s.shard_id, owner="a", expires_at=120.0) if i < 2 else LeaseRow(s.shard_id, "b", 200.0)
        for i, s in enumerate(FOUR)
    }
    assert plan_leases(FOUR, rows, "b", workers=1, now=110.0).acquire == ()
    after = plan_leases(FOUR, rows, "b", workers=1, now=121.0)
    assert after.acquire == ("s0", "s1") and after.target == 4


def test_a_consumer_above_its_share_hands_shards_back() -> None:
    rows = {s.shard_id: LeaseRow(s.shard_id, owner="a", expires_at=120.0) for s in FOUR}
    plan = plan_leases(FOUR, rows, "a", workers=2, now=100.0)
    assert plan.release == ("s2", "s3") and plan.acquire == ()
    assert held(rows, "a", now=100.0) == ["s0", "s1", "s2", "s3"]
    assert held(rows, "a", now=130.0) == []


@pytest.mark.parametrize(
    ("finished", "ready"),
    [
        ((), ["parent", "solo"]),
        (("parent",), ["left", "right", "solo"]),
    ],
)
def test_children_of_a_split_wait_until_the_parent_is_finished(finished: tuple[str, ...], ready: list[str]) -> None:
    shards = [
        ShardInfo("parent", ending_sequence="10"),
        ShardInfo("left", ("parent",)),
        ShardInfo("right", ("parent",)),
        ShardInfo("solo"),
    ]
    rows = {s: LeaseRow(s, checkpoint=SHARD_END) for s in finished}
    assert ready_shards(shards, rows) == ready


def test_a_merged_child_waits_for_both_parents_and_a_trimmed_parent_is_not_waited_for() -> None:
    shards = [ShardInfo("a", ending_sequence="5"), ShardInfo("b", ending_sequence="7"), ShardInfo("ab", ("a", "b"))]
    only_a = {"a": LeaseRow("a", checkpoint=SHARD_END)}
    assert ready_shards(shards, only_a) == ["b"]
    both = {**only_a, "b": LeaseRow("b", checkpoint=SHARD_END)}
    assert ready_shards(shards, both) == ["ab"]
    assert ready_shards([ShardInfo("ab", ("gone", "also-gone"))], {}) == ["ab"]


def test_no_ready_shard_means_nothing_to_take() -> None:
    rows = {s.shard_id: LeaseRow(s.shard_id, checkpoint=SHARD_END) for s in FOUR}
    plan = plan_leases(FOUR, rows, "a", workers=1, now=0.0)
    assert plan.acquire == () and plan.release == () and plan.target == 0
