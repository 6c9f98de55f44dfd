"""Prometheus metrics of the REST API: requests by status, latency, rows scored / flagged / refused, version, swaps.

With several uvicorn workers each one is a process: the launcher sets ``PROMETHEUS_MULTIPROC_DIR`` and
``/metrics`` then sums the workers (prometheus-client's multiprocess mode; gauges are reported per worker).
"""

from __future__ import annotations

import os

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from adapters.model_holder import HolderStatus, Swap

LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class ApiMetrics:
    """The API's metrics in their own registry (several apps in one process never clash)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "mlops_api_requests", "Requests by endpoint and HTTP status", ["endpoint", "status"], registry=r
        )
        self.latency = Histogram(
            "mlops_api_request_seconds", "Request latency", ["endpoint"], buckets=LATENCY_BUCKETS, registry=r
        )
        self.rows = Counter(
            "mlops_api_rows", "Rows by outcome: scored, refused, outlier, unseen", ["outcome"], registry=r
        )
        self.swaps = Counter("mlops_api_model_swaps", "Attempts to serve another version", ["outcome"], registry=r)
        self.version = Gauge(
            "mlops_api_model_version",
            "1 for the version served",
            ["model", "version"],
            registry=r,
            multiprocess_mode="liveall",
        )
        self.ready = Gauge(
            "mlops_api_model_ready", "1 when a version is loaded", registry=r, multiprocess_mode="liveall"
        )
        self.logged = Counter(
            "mlops_api_prediction_log_rows", "Rows queued for the prediction log", ["log"], registry=r
        )
        self.shadow = Counter(
            "mlops_api_shadow_rows", "Rows the shadow model scored or could not", ["outcome"], registry=r
        )
        self._served: tuple[str, str] | None = None

    def record_swap(self, swap: Swap) -> None:
        self.swaps.labels("ok" if swap.ok else "failed").inc()

    def record_status(self, status: HolderStatus) -> None:
        """The version gauge and readiness from the holder (called on swaps and on each scrape)."""
        self.ready.set(1 if status.ready else 0)
        served = (status.name, status.version) if status.version else None
        if served != self._served:
            if self._served is not None:  # 0, not removed: in multiprocess mode a removed child keeps its file value
                self.version.labels(*self._served).set(0)
            if served is not None:
                self.version.labels(*served).set(1)
            self._served = served

    def render(self) -> tuple[bytes, str]:
        """The exposition text: this process's registry, or every worker's in multiprocess mode."""
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            merged = CollectorRegistry()
            MultiProcessCollector(merged)
            return generate_latest(merged), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
