"""The model holder against a real registry: loads the champion, swaps when the alias moves (poll or event),
keeps in-flight requests on their version, and keeps serving the old version when a candidate fails its check."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
from conftest import MODEL, request_rows

from adapters.alias_events import ALIAS_MOVED, emit_alias_moved
from adapters.model_holder import ModelHolder, ModelNotReady, follow_alias_events
from adapters.registry import MlflowRegistry
from flows.context import build_context
from tasks import contract
from tasks.errors import MlopsError


def _holder(ctx, registry=None, **kwargs) -> ModelHolder:
    return ModelHolder(
        registry or ctx.registry(),
        ctx.usecase,
        download_root=f"{ctx.settings.home}/models",
        **{"poll_seconds": 600.0, **kwargs},
    )


def _move(ctx, version: str, reason: str) -> None:
    move = ctx.registry().set_alias(MODEL, "champion", version, reason=reason, flow_run_id=None)
    emit_alias_moved(MODEL, ctx.usecase.name, move.__dict__)


@pytest.fixture
def ctx(service_env):
    return build_context()


@pytest.fixture
def champion_restored(ctx, served):
    yield
    ctx.registry().set_alias(MODEL, "champion", served["versions"][-1], reason="test cleanup", flow_run_id=None)


def test_holder_serves_the_champion_and_scores_rows(ctx, served):
    holder = _holder(ctx)
    with pytest.raises(ModelNotReady):
        holder.current()
    assert holder.refresh("start").ok
    served_model = holder.current()
    assert served_model.version == served["versions"][-1]
    scored = served_model.score(request_rows(served["feb_frame"], 5), "req-1", "api-test", datetime.now(UTC))
    assert [r["row"] for r in scored.rows] == [0, 1, 2, 3, 4]
    assert all(0.0 <= r["probability"] <= 1.0 for r in scored.rows)
    assert scored.scores["model_version"].astype(str).unique().tolist() == [served_model.version]
    assert holder.refresh("poll") is None  # nothing moved: no reload
    assert holder.status().swaps == 1


def test_alias_move_swaps_and_requests_in_flight_keep_their_version(ctx, served, champion_restored):
    first, second = served["versions"]
    holder = _holder(ctx)
    holder.refresh("start")
    in_flight = holder.current()
    assert in_flight.version == second
    _move(ctx, first, "test: roll back to version 1")
    swap = holder.refresh("poll")
    assert swap is not None and swap.ok and (swap.from_version, swap.to_version) == (second, first)
    assert holder.current().version == first
    # the request that started before the swap finishes on its own version
    scored = in_flight.score(request_rows(served["feb_frame"], 3), "req-2", "api-test", datetime.now(UTC))
    assert scored.scores["model_version"].astype(str).unique().tolist() == [second]


class _BrokenSketchRegistry(MlflowRegistry):
    """The real registry, except that one run's reference sketch reads back damaged."""

    broken_run: str = ""

    def read_run_artifact(self, run_id: str, path: str) -> bytes:
        if run_id == self.broken_run and path == contract.SKETCH_ARTIFACT:
            return b'{"numeric": {}, "rows": 1}'
        return super().read_run_artifact(run_id, path)


def test_candidate_that_fails_its_check_leaves_the_old_version_serving(ctx, served, champion_restored):
    first, second = served["versions"]
    real = ctx.registry()
    broken = _BrokenSketchRegistry(real.tracking_uri, real.artifact_uri)
    broken.broken_run = real.get_version(MODEL, first).run_id
    holder = _holder(ctx, registry=broken)
    holder.refresh("start")
    _move(ctx, first, "test: move to a version whose sketch is damaged")
    swap = holder.refresh("poll")
    assert swap is not None and not swap.ok
    assert "reference sketch" in swap.reason and f"version {second} serves" in swap.reason
    status = holder.status()
    assert status.version == second and status.failed_version == first and status.failures == 1
    assert "refused" in (status.last_error or "")
    assert holder.refresh("poll") is None  # the same broken version is not reloaded on every poll
    assert holder.current().version == second


def test_fixed_version_ignores_the_alias(ctx, served, champion_restored):
    first, _ = served["versions"]
    holder = _holder(ctx, version=first)
    holder.refresh("start")
    assert holder.current().version == first and holder.status().alias is None


def test_alias_moved_event_wakes_the_holder(ctx, served, champion_restored):
    first, second = served["versions"]
    holder = _holder(ctx, poll_seconds=600.0)  # only the event can make it look before the test ends
    holder.start()
    listener = follow_alias_events(holder)
    try:
        assert listener is not None and listener.connected.wait(60), listener and listener.last_error
        _move(ctx, first, "test: an event says the alias moved")
        assert holder.wait_for_version(first, 60), holder.status()
        assert holder.status().history[-1].trigger == "event"
    finally:
        if listener is not None:
            listener.stop()
        holder.stop()
    assert holder.current().version == first != second


def test_holder_refuses_bad_settings(ctx):
    with pytest.raises(MlopsError, match="poll_seconds"):
        _holder(ctx, poll_seconds=0)


def _alias_events(since: float, wait_for: int) -> list[dict]:
    from prefect.client.orchestration import get_client

    start = datetime.fromtimestamp(since, UTC).isoformat()
    deadline = time.monotonic() + 30
    while True:
        with get_client(sync_client=True) as client:
            body = {"filter": {"event": {"name": [ALIAS_MOVED]}, "occurred": {"since": start}}, "limit": 50}
            found = client.request("POST", "/events/filter", json=body).json()["events"]
        if len(found) >= wait_for or time.monotonic() > deadline:
            return found
        time.sleep(0.5)


def test_rollback_flow_emits_the_alias_moved_event(ctx, served, champion_restored):
    from flows.register import rollback

    first, second = served["versions"]
    since = time.time() - 1
    moved = rollback(reason="test: the event of a rollback")
    assert (moved["from_version"], moved["to_version"]) == (second, first)
    events = [e for e in _alias_events(since, 1) if e["payload"]["to_version"] == first]
    assert events, "no alias-moved event for the rollback"
    event = events[0]
    assert event["resource"]["prefect.resource.id"] == f"mlops.model.{MODEL}"
    assert event["payload"] | {"model": MODEL, "alias": "champion", "from_version": second} == event["payload"]
    ctx.registry().set_version_tags(MODEL, second, {"rollback.revoked": "false"})  # the next tests may promote it
