"""The REST API: online scoring with the model version behind an alias, swapped without a failed request.

Endpoints::

    POST /v1/predict    JSON rows -> per row probability, label, outlier and unseen flags (+ request id, model)
    POST /invocations   the same rows in MLflow's formats; answers MLflow's ``{"predictions": [...]}`` too
    GET  /health        alive
    GET  /ready         200 once a version is loaded (503 before), with the last swap error if any
    GET  /v1/model      name, alias, version, run id, features, contract summary, holder status
    GET  /metrics       Prometheus text

Bodies: a list of objects, one object, ``{"records": [...]}``, ``{"dataframe_records": [...]}`` or
``{"dataframe_split": {"columns": [...], "data": [...]}}``. A request is all-or-nothing (see
``tasks.serving``): a bad row refuses the request with 4xx naming every bad row, field and reason; nothing is
scored. 400 malformed body, 413 too large or too many rows, 415 not JSON, 422 bad rows, 503 no model yet.

The app is built by ``create_app`` from values and adapters (the CLI wires them from the settings), so tests
and the stream consumer's process can build the same pieces. Scoring runs in the threadpool, one request per
thread; the model's OpenMP threads are limited by the launcher (one per worker).
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from adapters.alias_events import AliasEventListener
from adapters.model_holder import ModelHolder, ModelNotReady, ServedModel, follow_alias_events
from adapters.prediction_log import LoggedModel, PredictionLog, window_batch_id
from services.api_metrics import ApiMetrics
from tasks import serving
from tasks.serving import ApiSettings, Problem, RequestError
from tasks.usecase import UseCase

REQUEST_ID_HEADER = "X-Request-ID"
_SAFE_ID = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:")
log = logging.getLogger(__name__)


@dataclass
class ApiServices:
    """What the app works with, built by the caller: holders, logs, settings."""

    usecase: UseCase
    settings: ApiSettings
    holder: ModelHolder
    log: PredictionLog | None = None
    shadow: ModelHolder | None = None
    shadow_log: PredictionLog | None = None
    pii_key: bytes | None = None
    follow_events: bool = True
    listeners: list[AliasEventListener] = field(default_factory=list)


def create_app(services: ApiServices) -> FastAPI:
    """The FastAPI app; its lifespan starts the holders, the event listener and the logs, and stops them."""
    metrics = ApiMetrics()
    for holder in (services.holder, services.shadow):
        if holder is not None:
            holder.on_swap = _swap_recorder(metrics, holder)
    shadow_queue: queue.Queue = queue.Queue(maxsize=256)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # the first load happens before this worker accepts a request, so a worker that just started never
        # answers 503 while its siblings serve; a version that fails to load is recorded and /ready says so
        await run_in_threadpool(services.holder.start)
        _start(services, shadow_queue, metrics)
        try:
            yield
        finally:
            await run_in_threadpool(_stop, services, shadow_queue)

    app = FastAPI(title=f"{services.usecase.name} scoring", lifespan=lifespan, docs_url="/docs", redoc_url=None)

    @app.get("/health")
    async def health() -> dict:
        return {"status": "alive"}

    @app.get("/ready")
    async def ready() -> JSONResponse:
        status = services.holder.status()
        body = {"ready": status.ready, "model": status.name, "version": status.version, "alias": status.alias}
        body |= {"last_error": status.last_error, "failed_version": status.failed_version}
        return JSONResponse(body, status_code=200 if status.ready else 503)

    @app.get("/v1/model")
    async def model() -> JSONResponse:
        status = asdict(services.holder.status())
        status["history"] = status["history"][-10:]
        served = services.holder.get()
        if served is None:
            return JSONResponse({"error": "no model version loaded yet", "status": status}, status_code=503)
        shadow = services.shadow.get() if services.shadow else None
        body = {**served.describe(), "status": status, "shadow": shadow.describe() if shadow else None}
        return JSONResponse(body)

    @app.get("/metrics")
    async def prometheus() -> Response:
        metrics.record_status(services.holder.status())
        data, content_type = metrics.render()
        return Response(data, media_type=content_type)

    async def predict(request: Request, endpoint: str, mlflow_shape: bool) -> Response:
        started = time.perf_counter()
        request_id = _request_id(request)
        try:
            records = serving.request_records(await _json_body(request, services.settings), services.settings.max_rows)
            served = services.holder.current()  # this request's version, whatever swaps meanwhile
            body, rows = await run_in_threadpool(_score, services, metrics, served, records, request_id)
            if shadow_queue is not None and services.shadow is not None:
                _offer(shadow_queue, metrics, (records, request_id))
            if mlflow_shape:
                body["predictions"] = [[1.0 - r["probability"], r["probability"]] for r in rows]
            response: Response = JSONResponse(body)
            response.headers["X-Model-Version"] = served.version
        except RequestError as exc:
            metrics.rows.labels("refused").inc(_row_count(exc))
            response = JSONResponse({**exc.body(), "request_id": request_id}, status_code=exc.status)
        except ModelNotReady as exc:
            response = JSONResponse({"error": str(exc), "request_id": request_id}, status_code=503)
            response.headers["Retry-After"] = "5"
        response.headers[REQUEST_ID_HEADER] = request_id
        metrics.requests.labels(endpoint, str(response.status_code)).inc()
        metrics.latency.labels(endpoint).observe(time.perf_counter() - started)
        return response

    @app.post("/v1/predict")
    async def predict_v1(request: Request) -> Response:
        return await predict(request, "/v1/predict", mlflow_shape=False)

    @app.post("/invocations")
    async def invocations(request: Request) -> Response:
        return await predict(request, "/invocations", mlflow_shape=True)

    return app


# --- request handling -------------------------------------------------------------------------------------


def _request_id(request: Request) -> str:
    """The caller's ``X-Request-ID`` when it is a short plain token (it reaches logs), else a new one."""
    given = request.headers.get(REQUEST_ID_HEADER, "")
    if 0 < len(given) <= 128 and set(given) <= _SAFE_ID:
        return given
    return uuid.uuid4().hex


async def _json_body(request: Request, settings: ApiSettings) -> Any:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/json" and not content_type.endswith("+json"):
        what = content_type or "no content type"
        raise RequestError(415, [Problem(None, None, f"the body must be application/json, not {what}")])
    limit = settings.max_body_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise RequestError(413, [Problem(None, None, f"the body has {int(declared)} bytes; at most {limit} allowed")])
    data = bytearray()
    async for chunk in request.stream():  # a body without a length is counted as it arrives
        data += chunk
        if len(data) > limit:
            raise RequestError(413, [Problem(None, None, f"the body is larger than {limit} bytes")])
    try:
        return json.loads(data)
    except UnicodeDecodeError:
        raise RequestError(400, [Problem(None, None, "the body is not UTF-8 text")]) from None
    except json.JSONDecodeError as exc:
        raise RequestError(
            400, [Problem(None, None, f"malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno}")]
        ) from None


def _score(
    services: ApiServices, metrics: ApiMetrics, served: ServedModel, records: list, request_id: str
) -> tuple[dict, list[dict]]:
    scored_at = datetime.now(UTC)
    batch_id = window_batch_id(scored_at, services.settings.log_window)
    scored = served.score(records, request_id, batch_id, scored_at)
    metrics.rows.labels("scored").inc(len(scored.rows))
    if scored.rows_outlier:
        metrics.rows.labels("outlier").inc(scored.rows_outlier)
    if scored.rows_unseen:
        metrics.rows.labels("unseen").inc(scored.rows_unseen)
    if services.log is not None:
        _log_rows(services, services.log, served, scored, request_id, scored_at)
        metrics.logged.labels("predictions").inc(len(scored.rows))
    body = {
        "request_id": request_id,
        "model": {"name": served.name, "alias": served.alias, "version": served.version, "run_id": served.run_id},
        "decision_threshold": services.usecase.model.decision_threshold,
        "rows": scored.rows,
    }
    return body, scored.rows


def _log_rows(
    services: ApiServices,
    target: PredictionLog,
    served: ServedModel,
    scored: serving.ScoredRequest,
    request_id: str,
    scored_at: datetime,
) -> None:
    # the request queues its values; the log builds one frame per part (serving.prediction_rows) when it writes
    model = LoggedModel(served.name, served.alias, served.version, served.run_id)
    target.append((scored, request_id, served.alias), model, scored_at, count=len(scored.rows))


def _row_count(exc: RequestError) -> int:
    rows = {p.row for p in exc.problems if p.row is not None}
    return max(1, len(rows))


# --- background parts -------------------------------------------------------------------------------------


def _swap_recorder(metrics: ApiMetrics, holder: ModelHolder) -> Any:
    def record(swap: Any) -> None:
        metrics.record_swap(swap)
        metrics.record_status(holder.status())

    return record


def _start(services: ApiServices, shadow_queue: queue.Queue, metrics: ApiMetrics) -> None:
    if services.shadow is not None:  # the shadow never delays serving: it loads in the background
        threading.Thread(target=services.shadow.start, name="start-shadow", daemon=True).start()
    for holder in (services.holder, services.shadow):
        if holder is not None and services.follow_events and services.settings.follow_events:
            listener = follow_alias_events(holder)
            if listener is not None:
                services.listeners.append(listener)
    for target in (services.log, services.shadow_log):
        if target is not None:
            target.start()
    if services.shadow is not None:
        worker = threading.Thread(target=_shadow_worker, args=(services, shadow_queue, metrics), daemon=True)
        worker.start()


def _stop(services: ApiServices, shadow_queue: queue.Queue) -> None:
    for listener in services.listeners:
        listener.stop()
    if services.shadow is not None:
        shadow_queue.put(None)
    for holder in (services.holder, services.shadow):
        if holder is not None:
            holder.stop()
    for target in (services.log, services.shadow_log):
        if target is not None:
            target.close()  # flush on shutdown: rows scored are never lost to a restart


def _offer(shadow_queue: queue.Queue, metrics: ApiMetrics, item: tuple) -> None:
    try:
        shadow_queue.put_nowait(item)
    except queue.Full:  # the shadow never slows the request path: rows it cannot keep up with are counted
        metrics.shadow.labels("dropped").inc(len(item[0]))


def _shadow_worker(services: ApiServices, shadow_queue: queue.Queue, metrics: ApiMetrics) -> None:
    """Score the request rows with the shadow version off the request path and log them apart."""
    assert services.shadow is not None
    while (item := shadow_queue.get()) is not None:
        records, request_id = item
        try:
            served = services.shadow.current()
            scored_at = datetime.now(UTC)
            scored = served.score(
                records, request_id, window_batch_id(scored_at, services.settings.log_window), scored_at
            )
            if services.shadow_log is not None:
                _log_rows(services, services.shadow_log, served, scored, request_id, scored_at)
            metrics.shadow.labels("scored").inc(len(scored.rows))
        except (RequestError, ModelNotReady) as exc:
            metrics.shadow.labels("refused").inc(len(records))
            log.warning("shadow model did not score request %s: %s", request_id, exc)
        except Exception:
            metrics.shadow.labels("failed").inc(len(records))
            log.exception("shadow scoring failed for request %s", request_id)
