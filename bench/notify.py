"""Notification delivery on a real local Prefect server: latency from event to webhook, and burst suppression.

Side by side in one run: N drift events for N different windows (each must give a message) and a burst of N
identical drift events for one window (one message). Prints the event-to-message latency of the distinct ones
(median, max) and messages per event for both, with the load average and thread settings beside them.

    .venv/bin/python bench/notify.py --events 10
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from adapters.events import emit
from ops.local_prefect import local_prefect
from ops.notifications import apply_notifications
from tasks.monitoring import DRIFT_EVENT, model_resource

WAIT_SECONDS = 120


def _receiver() -> tuple[ThreadingHTTPServer, list[tuple[float, dict]]]:
    received: list[tuple[float, dict]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            received.append((time.perf_counter(), json.loads(body or b"{}")))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, received


def _payload(window: str) -> dict:
    return {"reason": f"bench drift in window {window}", "batch_id": window, "drift_score": 0.3, "drifted_inputs": {}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10)
    n = parser.parse_args().events
    server, received = _receiver()
    os.environ["MLOPS_NOTIFY_URL"] = f"http://127.0.0.1:{server.server_address[1]}/hook"
    with tempfile.TemporaryDirectory(prefix="bench-notify-") as folder, local_prefect(Path(folder)) as prefect:
        apply_notifications(prefect.api_url, required=True)
        time.sleep(2)  # the server loads new automations every second or so
        sent: dict[str, float] = {}
        for i in range(n):
            window = f"w{i:03d}"
            sent[window] = time.perf_counter()
            emit(DRIFT_EVENT, model_resource("bench-model", "bench", "1", window), _payload(window), str(uuid.uuid4()))
        for _ in range(n):
            emit(
                DRIFT_EVENT, model_resource("bench-model", "bench", "1", "burst"), _payload("burst"), str(uuid.uuid4())
            )
        started = time.monotonic()
        while len(received) < n + 1 and time.monotonic() - started < WAIT_SECONDS:
            time.sleep(0.2)
        time.sleep(3)  # late extra messages of the burst would arrive here
    server.shutdown()
    latencies = []
    burst = 0
    for at, message in received:
        window = message["subject"].rsplit("window ", 1)[-1]
        if window == "burst":
            burst += 1
        elif window in sent:
            latencies.append(at - sent[window])
    print(
        f"load average {os.getloadavg()}; OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}; cores {os.cpu_count()}"
    )
    print(f"distinct events: {n} sent, {len(latencies)} messages ({len(latencies) / n:.2f} per event)")
    if latencies:
        print(f"  event -> message latency: median {statistics.median(latencies):.2f} s, max {max(latencies):.2f} s")
    print(f"burst of identical events: {n} sent, {burst} message(s) ({burst / n:.2f} per event)")


if __name__ == "__main__":
    main()
