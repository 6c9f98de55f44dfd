"""Which shards a consumer should hold: shard lineage (split/merge), lease expiry and a fair share per consumer.

Pure: the shard list, the checkpoint table's rows and the time come in, a decision goes out. The adapter
(``adapters.checkpoints``) applies it with conditional writes, so two consumers deciding at the same moment
cannot both win a shard.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

SHARD_END = "SHARD_END"  # the checkpoint of a closed shard whose every record is processed


@dataclass(frozen=True)
class ShardInfo:
    """A shard as the stream lists it: its parents (after a split or merge) and whether it is closed."""

    shard_id: str
    parents: tuple[str, ...] = ()
    ending_sequence: str | None = None  # set once the shard is closed (split or merged away)


@dataclass(frozen=True)
class LeaseRow:
    """A shard's row of the checkpoint table."""

    shard_id: str
    owner: str | None = None
    expires_at: float = 0.0
    checkpoint: str | None = None
    pending: tuple[str, str] | None = None  # the range being written; a replay must cut exactly this batch

    @property
    def finished(self) -> bool:
        return self.checkpoint == SHARD_END


@dataclass(frozen=True)
class LeasePlan:
    """Shards to try to take (free or expired) and shards to hand back (above this consumer's share)."""

    acquire: tuple[str, ...]
    release: tuple[str, ...]
    target: int


def ready_shards(shards: list[ShardInfo], rows: dict[str, LeaseRow]) -> list[str]:
    """Shards with work that may start now: not finished, and every parent still listed is finished.

    Children wait for their parents so a key's records are processed in order across a split or merge; a
    parent no longer listed (trimmed after the retention period) holds nothing more to wait for.
    """
    listed = {s.shard_id for s in shards}
    ready = []
    for shard in shards:
        row = rows.get(shard.shard_id)
        if row is not None and row.finished:
            continue
        parents = [p for p in shard.parents if p in listed]
        if all(p in rows and rows[p].finished for p in parents):
            ready.append(shard.shard_id)
    return sorted(ready)


def held(rows: dict[str, LeaseRow], me: str, now: float) -> list[str]:
    """Shards whose lease this consumer holds and has not let expire."""
    return sorted(s for s, r in rows.items() if r.owner == me and r.expires_at > now and not r.finished)


def plan_leases(shards: list[ShardInfo], rows: dict[str, LeaseRow], me: str, workers: int, now: float) -> LeasePlan:
    """This consumer's move: take free shards up to its share, hand back what is above it.

    The share is ``ceil(ready shards / live consumers)``: two consumers on 4 shards hold 2 each; when one dies
    its leases expire and the other's share grows to all 4.
    """
    ready = ready_shards(shards, rows)
    target = math.ceil(len(ready) / max(1, workers)) if ready else 0
    mine = [s for s in held(rows, me, now) if s in ready]
    if len(mine) > target:
        return LeasePlan((), tuple(mine[target:]), target)
    free = [s for s in ready if s not in mine and _free(rows.get(s), now)]
    return LeasePlan(tuple(free[: target - len(mine)]), (), target)


def _free(row: LeaseRow | None, now: float) -> bool:
    return row is None or row.owner is None or row.expires_at <= now
