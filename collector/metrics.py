"""The collector's own Prometheus metrics (``GET /metrics``), on a registry per app."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["CONTENT_TYPE_LATEST", "CollectorMetrics"]


class CollectorMetrics:
    """Counters for ingest, the spool and the background writer."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.spans_received = Counter("canarytrace_spans_received", "Spans in decoded requests",
                                      registry=r)
        self.spans_accepted = Counter("canarytrace_spans_accepted",
                                      "Spans acknowledged (durable in the spool)", registry=r)
        self.spans_rejected = Counter("canarytrace_spans_rejected",
                                      "Spans refused as invalid (partial success or 400)",
                                      registry=r)
        self.requests_refused = Counter("canarytrace_requests_refused",
                                        "Requests answered with an error, by HTTP status",
                                        ["status"], registry=r)
        self.spans_fast_path = Counter("canarytrace_spans_fast_path",
                                       "Spans converted by the compiled fast path (the rest "
                                       "took the general one)", registry=r)
        self.values_truncated = Counter("canarytrace_attribute_values_truncated",
                                        "Attribute values cut to the length limit", registry=r)
        self.spans_stored = Counter("canarytrace_spans_stored", "Spans inserted into ClickHouse",
                                    registry=r)
        self.flush_failures = Counter("canarytrace_flush_failures",
                                      "Failed ClickHouse inserts (retried)", registry=r)
        self.segments_quarantined = Counter("canarytrace_spool_segments_quarantined",
                                            "Spool segments with requests ClickHouse refused "
                                            "(kept in spool/dead)", registry=r)
        self.spans_quarantined = Counter("canarytrace_spans_quarantined",
                                         "Spans ClickHouse refused, kept in spool/dead for "
                                         "'canarytrace spool replay'", registry=r)
        self.store_outage = Gauge("canarytrace_store_outage",
                                  "1 while inserts fail and spans wait in the spool", registry=r)
        self.connections_refused = Counter("canarytrace_connections_refused",
                                           "Connections closed at once: over the connection "
                                           "limit", registry=r)
        self.connections_timed_out = Counter("canarytrace_connections_timed_out",
                                             "Connections closed for sending headers or a "
                                             "body too slowly", registry=r)
        self.flush_seconds = Histogram("canarytrace_flush_seconds",
                                       "Latency of one ClickHouse insert from the spool",
                                       buckets=(.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10),
                                       registry=r)
        self.spool_bytes = Gauge("canarytrace_spool_bytes", "Bytes in the spool not yet stored",
                                 registry=r)
        self.spool_segments = Gauge("canarytrace_spool_segments",
                                    "Spool segment files not yet stored", registry=r)

    def watch_spool(self, size: Callable[[], float], segments: Callable[[], float]) -> None:
        self.spool_bytes.set_function(size)
        self.spool_segments.set_function(segments)

    def render(self) -> bytes:
        return generate_latest(self.registry)
