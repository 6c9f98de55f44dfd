"""The model a long-running service scores with: follows an alias (or holds a fixed version) and swaps safely.

Shared by the REST API and the stream consumer. Interface (stable):

    holder = ModelHolder(registry, usecase, alias="champion", download_root=".../models", poll_seconds=5)
    holder.start()                      # first load (errors recorded, not raised), then polls in a thread
    served = holder.current()           # ServedModel; raises ModelNotReady before any version loaded
    served.score(records, request_id, batch_id, scored_at)  # -> tasks.serving.ScoredRequest (or RequestError)
    holder.request_refresh("event")     # wake the poller now (an alias-moved event arrived)
    holder.refresh("manual")            # check the registry now, in this thread; the Swap or None
    holder.status()                     # HolderStatus: ready, version, last error, swaps, failures
    holder.wait_for_version("3", 30)    # True once version 3 serves (tests, benchmarks)
    holder.stop()

``follow_alias_events(holder)`` starts an ``AliasEventListener`` that calls ``request_refresh`` on every
alias-moved event of the model (returns None without a Prefect API).

How a swap works: the poller sees the alias point at another version; it loads that version *beside* the one
serving (fresh download folder, skops allow-list), reads its contract and reference sketch, builds the request
contract, and scores ``check_rows`` rows built from the sketch (they must pass the contract and give
probabilities). Only then is the served reference replaced, in one assignment: a caller holds the
``ServedModel`` it got from ``current()`` for the whole request, so requests already running finish on the version
they started with, and the old model is freed when the last of them ends. A candidate that fails to load or
check leaves the old version serving; ``status()`` says which version failed and why, and the holder does not
retry it on every poll (a registry that could not be reached is retried). Before any version loaded,
``current()`` raises ``ModelNotReady`` (the API answers 503 and ``/ready`` is false).
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from adapters.alias_events import AliasEventListener
from adapters.registry import MlflowRegistry, VersionRef
from tasks import contract, scoring, serving
from tasks.contract import ReferenceSketch
from tasks.errors import MlopsError, RegistryUnavailable
from tasks.scoring import Lineage
from tasks.serving import ScoredRequest, ServingContract
from tasks.training import model_inputs
from tasks.usecase import UseCase

log = logging.getLogger(__name__)


class ModelNotReady(MlopsError):
    """No model version has loaded yet (or none exists behind the alias)."""


@dataclass(frozen=True)
class ServedModel:
    """One loaded, checked model version: what a request scores with from start to end."""

    name: str
    alias: str | None
    version: str
    run_id: str
    model: Any
    contract: ServingContract
    sketch: ReferenceSketch
    usecase: UseCase
    loaded_at: str

    def lineage(self, batch_id: str, scored_at: datetime, flow_run_id: str = "") -> Lineage:
        return Lineage(self.name, self.version, self.run_id, batch_id, scored_at, flow_run_id)

    def score(self, records: Sequence[Any], request_id: str, batch_id: str, scored_at: datetime) -> ScoredRequest:
        """Type, check and score request rows; ids missing from rows become ``<request_id>-<row>``.

        Raises:
            RequestError: a row is bad (every bad row named); nothing is scored.
        """
        ids = [f"{request_id}-{i}" for i in range(len(records))]
        frame = serving.records_frame(records, self.contract, ids)
        return serving.score_request(frame, self.model, self.usecase, self.contract, self.lineage(batch_id, scored_at))

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "alias": self.alias,
            "version": self.version,
            "run_id": self.run_id,
            "loaded_at": self.loaded_at,
            "features": list(model_inputs(self.usecase)),
            "decision_threshold": self.usecase.model.decision_threshold,
            "contract": serving.contract_summary(self.contract),
        }


@dataclass(frozen=True)
class Swap:
    """One attempt to serve another version: done (``ok``) or refused with the reason; timings in seconds."""

    at: str
    from_version: str | None
    to_version: str
    trigger: str
    ok: bool
    reason: str
    load_seconds: float


@dataclass(frozen=True)
class HolderStatus:
    """What a service reports on /ready and /metrics."""

    ready: bool
    name: str
    alias: str | None
    version: str | None
    target_version: str | None
    last_check_at: str | None
    last_error: str | None
    failed_version: str | None
    swaps: int
    failures: int
    history: tuple[Swap, ...] = field(default_factory=tuple)


class ModelHolder:
    """Holds the served version of ``usecase.registered_model`` and moves it when the alias moves.

    Args:
        registry: The MLflow registry.
        usecase: Model name, inputs, contract rules, decision threshold.
        alias: The alias to follow (ignored when ``version`` is given).
        version: A fixed version to hold instead of following an alias.
        download_root: Folder for model downloads (each load uses a fresh subfolder, removed after loading).
        poll_seconds: How often the registry is asked where the alias points.
        check_rows: Rows from the reference sketch a candidate must score before it serves.
        on_swap: Called (in the poller's thread) with every Swap, done or refused: metrics, logs.
    """

    def __init__(
        self,
        registry: MlflowRegistry,
        usecase: UseCase,
        *,
        alias: str = "champion",
        version: str | None = None,
        download_root: str,
        poll_seconds: float = 5.0,
        check_rows: int = 20,
        on_swap: Callable[[Swap], None] | None = None,
    ) -> None:
        if poll_seconds <= 0 or check_rows < 1:
            raise MlopsError("poll_seconds must be positive and check_rows at least 1")
        self.registry, self.usecase = registry, usecase
        self.name = usecase.registered_model
        self.alias = None if version is not None else alias
        self.fixed_version = version
        self.download_root, self.poll_seconds, self.check_rows = download_root, poll_seconds, check_rows
        self.on_swap = on_swap
        self._served: ServedModel | None = None
        self._refresh_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._trigger = "poll"
        self._thread: threading.Thread | None = None
        self._target: str | None = None
        self._last_check: str | None = None
        self._last_error: str | None = None
        self._failed: tuple[str, str] | None = None  # (version, run id) that failed its check: not retried
        self._swaps = self._failures = 0
        self._history: list[Swap] = []

    # --- serving --------------------------------------------------------------------------------------

    def current(self) -> ServedModel:
        """The version serving now; keep the returned object for the whole request.

        Raises:
            ModelNotReady: nothing loaded yet.
        """
        served = self._served
        if served is None:
            raise ModelNotReady(self._last_error or f"no version of model '{self.name}' loaded yet")
        return served

    def get(self) -> ServedModel | None:
        return self._served

    # --- following ------------------------------------------------------------------------------------

    def start(self) -> None:
        """Load the version behind the alias now (a failure is recorded, not raised), then poll in a thread."""
        self.refresh("start")
        self._thread = threading.Thread(target=self._poll, name=f"model-holder-{self.name}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def request_refresh(self, trigger: str = "event") -> None:
        """Ask the poller to check the registry now (thread-safe, returns at once)."""
        self._trigger = trigger
        self._wake.set()

    def _poll(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.poll_seconds)
            if self._stop.is_set():
                return
            trigger, self._trigger = self._trigger, "poll"
            self._wake.clear()
            try:
                self.refresh(trigger)
            except Exception as exc:  # never let the poller die: the next poll tries again
                self._last_error = f"refresh failed: {type(exc).__name__}: {exc}"
                log.exception("model refresh failed")

    def refresh(self, trigger: str = "manual") -> Swap | None:
        """Check where the alias points; load, check and swap to a new version. The Swap, or None if unchanged."""
        with self._refresh_lock:
            self._last_check = _now()
            try:
                target = self._resolve()
            except MlopsError as exc:
                self._last_error = str(exc)
                return None
            self._target = target.version
            served = self._served
            if served is not None and (served.version, served.run_id) == (target.version, target.run_id):
                self._last_error = None
                return None
            if self._failed == (target.version, target.run_id):
                return None
            return self._swap_to(target, served, trigger)

    def _resolve(self) -> VersionRef:
        if self.fixed_version is not None:
            return self.registry.get_version(self.name, self.fixed_version)
        target = self.registry.get_alias(self.name, self.alias or "champion")
        if target is None:
            raise ModelNotReady(f"model '{self.name}' has no @{self.alias} version yet")
        return target

    def _swap_to(self, target: VersionRef, served: ServedModel | None, trigger: str) -> Swap:
        started = time.perf_counter()
        try:
            candidate = self._load(target)
        except RegistryUnavailable as exc:  # the registry, not the version: try again at the next poll
            self._last_error = f"version {target.version} not loaded (registry unavailable): {exc}"
            return self._record(served, target, trigger, False, self._last_error, started, failed=False)
        except MlopsError as exc:
            reason = f"version {target.version} refused, version {served.version if served else 'none'} serves: {exc}"
            return self._record(served, target, trigger, False, reason, started, failed=True)
        except Exception as exc:  # a model that breaks in an unexpected way must not take the service down
            reason = (
                f"version {target.version} refused, version {served.version if served else 'none'} serves: "
                f"{type(exc).__name__}: {exc}"
            )
            return self._record(served, target, trigger, False, reason, started, failed=True)
        self._served = candidate  # the swap: one reference assignment
        self._failed = None
        return self._record(served, target, trigger, True, "", started, failed=False)

    def _record(
        self,
        served: ServedModel | None,
        target: VersionRef,
        trigger: str,
        ok: bool,
        reason: str,
        started: float,
        *,
        failed: bool,
    ) -> Swap:
        swap = Swap(_now(), served.version if served else None, target.version, trigger, ok, reason, 0.0)
        swap = Swap(**{**swap.__dict__, "load_seconds": round(time.perf_counter() - started, 3)})
        if ok:
            self._swaps += 1
            self._last_error = None
            log.info("serving version %s of %s (was %s; %s)", target.version, self.name, swap.from_version, trigger)
        else:
            self._failures += 1
            self._last_error = reason
            if failed:
                self._failed = (target.version, target.run_id)
            log.error("%s", reason)
        self._history = [*self._history[-49:], swap]
        if self.on_swap is not None:
            try:
                self.on_swap(swap)
            except Exception:
                log.exception("on_swap callback failed")
        return swap

    def _load(self, target: VersionRef) -> ServedModel:
        """Load a version beside the served one and check it; raises with the reason it cannot serve."""
        specs = contract.contract_from_dict(self._run_json(target, contract.CONTRACT_ARTIFACT))
        sketch = contract.sketch_from_dict(self._run_json(target, contract.SKETCH_ARTIFACT))
        missing = [c for c in model_inputs(self.usecase) if c not in scoring.column_types(specs)]
        if missing:
            raise MlopsError(f"its contract gives no type for model input(s) {', '.join(missing)}")
        request_contract = serving.serving_contract(specs, scoring.outlier_reference(sketch), self.usecase)
        root = Path(self.download_root) / self.name / target.version
        root.mkdir(parents=True, exist_ok=True)
        download = tempfile.mkdtemp(prefix="serve-", dir=root)
        try:
            model = self.registry.load_model(self.name, target.version, download)
        finally:
            shutil.rmtree(download, ignore_errors=True)
        candidate = ServedModel(
            self.name, self.alias, target.version, target.run_id, model, request_contract, sketch, self.usecase, _now()
        )
        self._check(candidate)
        return candidate

    def _check(self, candidate: ServedModel) -> None:
        records = serving.reference_rows(candidate.sketch, candidate.contract, self.check_rows)
        try:
            scored = candidate.score(records, "reference-check", "reference-check", datetime.now(UTC))
        except serving.RequestError as exc:
            raise MlopsError(f"its contract refuses rows of its own reference sketch: {exc}") from None
        problem = serving.check_scores(scored.scores[scoring.PROBABILITY].to_numpy(), len(records))
        if problem:
            raise MlopsError(problem)

    def _run_json(self, target: VersionRef, path: str) -> dict:
        try:
            data = json.loads(self.registry.read_run_artifact(target.run_id, path).decode("utf-8"))
        except RegistryUnavailable:
            raise
        except (MlopsError, ValueError) as exc:
            raise MlopsError(f"cannot read {path} of run {target.run_id}: {exc}") from None
        if not isinstance(data, dict):
            raise MlopsError(f"{path} of run {target.run_id} is not a JSON object")
        return data

    # --- reporting ------------------------------------------------------------------------------------

    def status(self) -> HolderStatus:
        served = self._served
        return HolderStatus(
            ready=served is not None,
            name=self.name,
            alias=self.alias,
            version=served.version if served else None,
            target_version=self._target,
            last_check_at=self._last_check,
            last_error=self._last_error,
            failed_version=self._failed[0] if self._failed else None,
            swaps=self._swaps,
            failures=self._failures,
            history=tuple(self._history),
        )

    def wait_for_version(self, version: str, timeout: float) -> bool:
        """True once ``version`` serves, False after ``timeout`` seconds (for tests and benchmarks)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            served = self._served
            if served is not None and served.version == version:
                return True
            time.sleep(0.02)
        return False


def follow_alias_events(holder: ModelHolder) -> AliasEventListener | None:
    """Wake ``holder`` on every alias-moved event of its model; None when there is no Prefect API."""
    if holder.fixed_version is not None:
        return None
    listener = AliasEventListener(holder.name, lambda payload: holder.request_refresh("event"))
    return listener if listener.start() else None


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")
