"""Prometheus metrics at /metrics: requests and latency per interaction, store command latency, peer latency.

Under gunicorn every worker process writes its samples to FHIRSERVER's metrics folder (prometheus_client
multiprocess mode, set up by `fhirserver serve`); /metrics sums them. Labels never carry patient data.
"""

from __future__ import annotations

import os
import time
from typing import Any

from flask import Flask, Response, g, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from pymongo import monitoring

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
REQUESTS = Counter("fhirserver_requests_total", "HTTP requests by FHIR interaction and status class",
                   ["interaction", "status"])
LATENCY = Histogram("fhirserver_request_seconds", "Request latency by FHIR interaction", ["interaction"],
                    buckets=BUCKETS)
STORE = Histogram("fhirserver_store_command_seconds", "MongoDB command latency by command", ["command"],
                  buckets=BUCKETS)
PEER = Histogram("fhirserver_peer_request_seconds", "Federation: one peer's answer to a fan-out",
                 ["peer", "outcome"], buckets=BUCKETS)


class StoreTimer(monitoring.CommandListener):
    """Times every command the driver sends (registered on the MongoClient)."""

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        return None

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        STORE.labels(event.command_name).observe(event.duration_micros / 1e6)

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        STORE.labels(event.command_name).observe(event.duration_micros / 1e6)


def observe_peer(peer: str, ok: bool, seconds: float) -> None:
    PEER.labels(peer[:64], "ok" if ok else "failed").observe(seconds)


def install(app: Flask, classify: Any) -> None:
    @app.before_request
    def start_clock() -> None:
        g.metrics_started = time.perf_counter()

    @app.after_request
    def count(response: Response) -> Response:
        started = getattr(g, "metrics_started", None)
        if started is not None and request.path != "/metrics":
            kind = classify(request.method, request.path)
            interaction = kind[0] if kind else ("capabilities" if request.path.endswith("/metadata") else "other")
            REQUESTS.labels(interaction, f"{response.status_code // 100}xx").inc()
            LATENCY.labels(interaction).observe(time.perf_counter() - started)
        return response

    @app.get("/metrics")
    def metrics() -> Response:
        folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        if folder:
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry, path=folder)
            body = generate_latest(registry)
        else:
            body = generate_latest()
        return Response(body, content_type=CONTENT_TYPE_LATEST)
