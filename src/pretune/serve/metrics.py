"""What the server reports: Prometheus metrics (prometheus_client, one registry per app so two
servers in one process count apart) and a structured access log, one JSON object per line."""

from __future__ import annotations

import json
import logging
import sys
import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics, generate_latest

BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class ServeMetrics:
    def __init__(self):
        disable_created_metrics()  # the *_created series double the exposition and tell nothing here
        self.registry = CollectorRegistry()
        self.requests = Counter("pretune_requests", "HTTP requests answered, by route and status code",
                                ("route", "code"), registry=self.registry)
        self.errors = Counter("pretune_request_errors", "requests answered with a 4xx or 5xx, by route and code",
                              ("route", "code"), registry=self.registry)
        self.latency = Histogram("pretune_request_latency_seconds", "time from request to response, by route",
                                 ("route",), buckets=LATENCY_BUCKETS, registry=self.registry)
        self.inputs = Counter("pretune_inputs", "inputs (texts or images) predicted", registry=self.registry)
        self.batch_size = Histogram("pretune_batch_size", "inputs per forward batch", buckets=BATCH_BUCKETS,
                                    registry=self.registry)
        self.queued = Gauge("pretune_queued_inputs", "inputs waiting for a batch", registry=self.registry)

    def observe_batch(self, size: int) -> None:
        self.batch_size.observe(size)
        self.inputs.inc(size)

    def observe_request(self, route: str, code: int, seconds: float) -> None:
        self.requests.labels(route, str(code)).inc()
        if code >= 400:
            self.errors.labels(route, str(code)).inc()
        self.latency.labels(route).observe(seconds)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


def access_logger() -> logging.Logger:
    """`pretune.serve.access`: bare JSON lines on stderr, kept out of the root logger's format."""
    logger = logging.getLogger("pretune.serve.access")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
    return logger


def access_line(method: str, path: str, route: str, code: int, seconds: float, client: str | None,
                inputs: int | None, error: str | None) -> str:
    entry = {"time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + "Z", "client": client, "method": method,
             "path": path, "route": route, "status": code, "ms": round(seconds * 1000, 3)}
    if inputs is not None:
        entry["inputs"] = inputs
    if error is not None:
        entry["error"] = error
    return json.dumps(entry)
