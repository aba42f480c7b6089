"""Prometheus metrics of one server (``GET /metrics``), in a registry of its own."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class Metrics:
    """Request, queue and batch figures; also the batcher's observer."""

    def __init__(self, model_id: str) -> None:
        self.registry = r = CollectorRegistry()
        self.info = Gauge("dewey_model_info", "The served model", ["model"], registry=r)
        self.info.labels(model_id).set(1)
        self.requests = Counter("dewey_requests", "HTTP requests by route and status",
                                ["route", "status"], registry=r)
        self.latency = Histogram("dewey_request_duration_seconds", "Time from request to response",
                                 ["route"], buckets=_LATENCY_BUCKETS, registry=r)
        self.inputs = Counter("dewey_inputs", "Texts, documents or images encoded", ["route"], registry=r)
        self.tokens = Counter("dewey_input_tokens", "Input tokens encoded", ["route"], registry=r)
        self.rejected = Counter("dewey_rejected", "Requests refused before encoding", ["reason"],
                                registry=r)
        self.queue_requests = Gauge("dewey_queue_requests", "Requests queued or running", registry=r)
        self.queue_tokens = Gauge("dewey_queue_tokens", "Tokens queued or running", registry=r)
        self.batch_requests = Histogram("dewey_batch_requests", "Requests merged into one model call",
                                        buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256), registry=r)
        self.batch_tokens = Histogram("dewey_batch_tokens", "Tokens in one model call",
                                      buckets=(64, 256, 1024, 4096, 16384, 65536, 262144), registry=r)
        self.model_seconds = Counter("dewey_model_seconds", "Time spent in model calls", registry=r)

    def queue_changed(self, requests: int, tokens: int) -> None:
        self.queue_requests.set(requests)
        self.queue_tokens.set(tokens)

    def batch_done(self, requests: int, tokens: int, seconds: float) -> None:
        self.batch_requests.observe(requests)
        self.batch_tokens.observe(tokens)
        self.model_seconds.inc(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
