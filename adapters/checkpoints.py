"""Per-shard checkpoints and leases in one DynamoDB table, every change a conditional write.

One item per (application + stream, shard): ``lease_key`` (hash) = ``<application>|<stream>``, ``shard_id``
(range). Attributes: ``lease_owner``, ``lease_expires`` (epoch seconds), ``checkpoint`` (last sequence number
whose outputs are durable, or SHARD_END), ``pending_first`` / ``pending_last`` (the range being written now).
Consumers register themselves as ``shard_id = "~worker|<id>"`` items with an expiry, so each knows how many are
alive and takes its fair share.

Why the pending range: a batch's files are named after its sequence range. Before writing them, the owner
records the range (``begin``); the checkpoint moves and the range is cleared in one write (``commit``), only
after the files are durable. A consumer that crashes in between leaves the range behind, and whoever takes the
shard next cuts exactly that batch again: the same names are rewritten, no copy is added.

Every write is conditional on the writer owning the lease, so a consumer that lost its lease (paused, cut off)
can neither move a checkpoint nor start a range; it learns so as ``LeaseLost``.
"""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

from tasks.errors import MlopsError
from tasks.stream_leases import SHARD_END, LeaseRow

_WORKER = "~worker|"


class CheckpointError(MlopsError):
    """The checkpoint table is missing or refused a request."""


class LeaseLost(MlopsError):
    """Another consumer holds the shard now: stop working on it, write nothing more for it."""


def dynamodb_client(region: str, endpoint_url: str | None) -> Any:
    import boto3
    from botocore.config import Config

    config = Config(retries={"max_attempts": 5, "mode": "standard"}, connect_timeout=5, read_timeout=20)
    return boto3.client("dynamodb", region_name=region, endpoint_url=endpoint_url, config=config)


class CheckpointTable:
    """Checkpoints and leases of one application reading one stream.

    Args:
        table: DynamoDB table name.
        application: Name of the consuming application (two applications keep separate checkpoints).
        stream: Stream name.
        client: A boto3 DynamoDB client (``dynamodb_client``).
    """

    def __init__(self, table: str, application: str, stream: str, client: Any) -> None:
        self.table, self.client = table, client
        self.key = f"{application}|{stream}"

    def create(self) -> None:
        """Create the table unless it exists (local stack and tests; production tables come from terraform)."""
        try:
            self.client.create_table(
                TableName=self.table,
                KeySchema=[
                    {"AttributeName": "lease_key", "KeyType": "HASH"},
                    {"AttributeName": "shard_id", "KeyType": "RANGE"},
                ],
                AttributeDefinitions=[
                    {"AttributeName": "lease_key", "AttributeType": "S"},
                    {"AttributeName": "shard_id", "AttributeType": "S"},
                ],
                BillingMode="PAY_PER_REQUEST",
            )
        except self.client.exceptions.ResourceInUseException:
            return
        self.client.get_waiter("table_exists").wait(TableName=self.table)

    # --- reading -------------------------------------------------------------------------------------

    def rows(self) -> dict[str, LeaseRow]:
        """Every shard's row (workers' heartbeats left out)."""
        return {r.shard_id: r for r in (_row(item) for item in self._query()) if not r.shard_id.startswith(_WORKER)}

    def row(self, shard_id: str) -> LeaseRow:
        """One shard's row, read consistently (after taking a lease: the row may have moved since ``rows``)."""
        answer = self._call(
            lambda: self.client.get_item(TableName=self.table, Key=self._key(shard_id), ConsistentRead=True)
        )
        return _row(answer["Item"]) if "Item" in answer else LeaseRow(shard_id)

    def live_workers(self, now: float) -> int:
        """Consumers whose heartbeat has not expired."""
        return sum(
            1
            for item in self._query()
            if item["shard_id"]["S"].startswith(_WORKER) and float(item["lease_expires"]["N"]) > now
        )

    def _query(self) -> list[dict]:
        items, start = [], None
        while True:
            kwargs: dict[str, Any] = {
                "TableName": self.table,
                "KeyConditionExpression": "lease_key = :k",
                "ExpressionAttributeValues": {":k": {"S": self.key}},
                "ConsistentRead": True,
            }
            if start:
                kwargs["ExclusiveStartKey"] = start
            page = self._call(lambda kwargs=kwargs: self.client.query(**kwargs))
            items += page.get("Items", [])
            start = page.get("LastEvaluatedKey")
            if not start:
                return items

    # --- leases --------------------------------------------------------------------------------------

    def heartbeat(self, worker: str, now: float, ttl: float) -> None:
        """Say this consumer is alive until ``now + ttl``."""
        self._call(
            lambda: self.client.put_item(
                TableName=self.table,
                Item={**self._key(_WORKER + worker), "lease_expires": _number(now + ttl)},
            )
        )

    def leave(self, worker: str) -> None:
        """Remove this consumer's heartbeat (a clean stop: the others rebalance at once)."""
        self._call(lambda: self.client.delete_item(TableName=self.table, Key=self._key(_WORKER + worker)))

    def acquire(self, shard_id: str, worker: str, now: float, ttl: float) -> bool:
        """Take the shard if nobody holds it, its lease expired, or it is ours already; True if taken."""
        return self._update(
            shard_id,
            "SET lease_owner = :me, lease_expires = :until",
            "attribute_not_exists(lease_owner) OR lease_owner = :me OR lease_expires <= :now",
            {":me": {"S": worker}, ":until": _number(now + ttl), ":now": _number(now)},
        )

    def renew(self, shard_id: str, worker: str, now: float, ttl: float) -> None:
        """Extend our lease. Raises LeaseLost if another consumer has the shard."""
        self._owned(shard_id, worker, "SET lease_expires = :until", {":until": _number(now + ttl)})

    def release(self, shard_id: str, worker: str) -> None:
        """Hand the shard back (the checkpoint stays); a lease already lost is not an error."""
        self._update(
            shard_id,
            "REMOVE lease_owner SET lease_expires = :zero",
            "lease_owner = :me",
            {":me": {"S": worker}, ":zero": _number(0)},
        )

    # --- checkpoints ---------------------------------------------------------------------------------

    def begin(self, shard_id: str, worker: str, first: str, last: str) -> None:
        """Record the range about to be written. Raises LeaseLost if the shard is no longer ours."""
        self._owned(
            shard_id,
            worker,
            "SET pending_first = :first, pending_last = :last",
            {":first": {"S": first}, ":last": {"S": last}},
        )

    def commit(self, shard_id: str, worker: str, last: str) -> None:
        """Move the checkpoint to ``last`` (or SHARD_END) and clear the pending range, in one write.

        Raises:
            LeaseLost: the shard is no longer ours; the checkpoint did not move.
        """
        self._owned(
            shard_id, worker, "SET checkpoint = :last REMOVE pending_first, pending_last", {":last": {"S": last}}
        )

    def finish(self, shard_id: str, worker: str) -> None:
        """Mark a closed shard done (its children may start) and let its lease go."""
        self._owned(
            shard_id,
            worker,
            "SET checkpoint = :end, lease_expires = :zero REMOVE lease_owner",
            {":end": {"S": SHARD_END}, ":zero": _number(0)},
        )

    # --- plumbing ------------------------------------------------------------------------------------

    def _owned(self, shard_id: str, worker: str, update: str, values: dict[str, Any]) -> None:
        if not self._update(shard_id, update, "lease_owner = :me", {**values, ":me": {"S": worker}}):
            raise LeaseLost(f"shard {shard_id}: lease taken by another consumer")

    def _update(self, shard_id: str, update: str, condition: str, values: dict[str, Any]) -> bool:
        client = self.client
        try:
            client.update_item(
                TableName=self.table,
                Key=self._key(shard_id),
                UpdateExpression=update,
                ConditionExpression=condition,
                ExpressionAttributeValues=values,
            )
        except client.exceptions.ConditionalCheckFailedException:
            return False
        except client.exceptions.ResourceNotFoundException:
            raise CheckpointError(f"checkpoint table '{self.table}' does not exist") from None
        return True

    def _call(self, action: Any) -> Any:
        try:
            return action()
        except self.client.exceptions.ResourceNotFoundException:
            raise CheckpointError(f"checkpoint table '{self.table}' does not exist") from None

    def _key(self, shard_id: str) -> dict[str, Any]:
        return {"lease_key": {"S": self.key}, "shard_id": {"S": shard_id}}


def _number(value: float) -> dict[str, str]:
    return {"N": str(Decimal(str(round(value, 3))))}


def _row(item: dict) -> LeaseRow:
    pending = None
    if "pending_first" in item and "pending_last" in item:
        pending = (item["pending_first"]["S"], item["pending_last"]["S"])
    return LeaseRow(
        shard_id=item["shard_id"]["S"],
        owner=item.get("lease_owner", {}).get("S"),
        expires_at=float(item.get("lease_expires", {}).get("N", "0")),
        checkpoint=item.get("checkpoint", {}).get("S"),
        pending=pending,
    )


def now() -> float:
    """Wall-clock seconds: leases compare times written by different hosts (keep their clocks in sync)."""
    return time.time()
