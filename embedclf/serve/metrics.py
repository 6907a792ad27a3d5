"""The service's Prometheus metrics, in a registry of its own (not the process-global one).

An own registry keeps two apps in one process (tests, an embedding app) from counting into each
other, and ``/metrics`` shows only these: requests, latency, batch sizes, queue depth, texts encoded.
"""

from __future__ import annotations

LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class Metrics:
    """Counters and histograms of one running service; ``render()`` is the ``/metrics`` page."""

    def __init__(self):
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter("embedclf_requests", "HTTP requests answered, by endpoint and status code.",
                                ["endpoint", "status"], registry=self.registry)
        self.latency = Histogram("embedclf_request_seconds", "Time from a request's arrival to its response.",
                                 ["endpoint"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.batch_texts = Histogram("embedclf_batch_texts", "Texts per encoder group (one call of the model).",
                                     buckets=SIZE_BUCKETS, registry=self.registry)
        self.batch_requests = Histogram("embedclf_batch_requests", "Requests merged into one encoder group.",
                                        buckets=SIZE_BUCKETS, registry=self.registry)
        self.queue_depth = Gauge("embedclf_queue_texts", "Texts waiting for the encoder.", registry=self.registry)
        self.texts = Counter("embedclf_texts_encoded", "Texts sent through the encoder (cached ones included).",
                             registry=self.registry)
        self.tokens = Counter("embedclf_tokens", "Tokens of the texts sent through the encoder (after truncation).",
                              registry=self.registry)

    def observe_batch(self, requests: int, texts: int, tokens: int) -> None:
        self.batch_requests.observe(requests)
        self.batch_texts.observe(texts)
        self.texts.inc(texts)
        self.tokens.inc(tokens)

    def observe_request(self, endpoint: str, status: int, seconds: float) -> None:
        self.requests.labels(endpoint, str(status)).inc()
        self.latency.labels(endpoint).observe(seconds)

    def render(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST
