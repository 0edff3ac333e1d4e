"""A tiny OTLP/HTTP receiver for tests: a thread on loopback that keeps every request it gets."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest


@dataclass(frozen=True)
class Request:
    path: str
    headers: dict[str, str]  # names lower-cased
    body: bytes


class Receiver:
    """Stores raw requests; ``spans()`` decodes the trace bodies back into protobuf spans."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver._lock:
                    headers = {k.lower(): v for k, v in self.headers.items()}
                    receiver.requests.append(Request(self.path, headers, body))
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> Receiver:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def on(self, path: str) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if r.path == path]

    def trace_requests(self) -> list[ExportTraceServiceRequest]:
        return [ExportTraceServiceRequest.FromString(r.body) for r in self.on("/v1/traces")]

    def spans(self) -> list[tuple[dict, object]]:
        """(resource attributes, span) for every span received, in arrival order."""
        found = []
        for request in self.trace_requests():
            for resource_spans in request.resource_spans:
                resource = attributes_of(resource_spans.resource.attributes)
                for scope_spans in resource_spans.scope_spans:
                    found += [(resource, span) for span in scope_spans.spans]
        return found


def attributes_of(key_values) -> dict:
    """Protobuf KeyValue list -> plain dict (scalars and arrays of scalars)."""
    def value_of(any_value):
        kind = any_value.WhichOneof("value")
        if kind == "array_value":
            return [value_of(v) for v in any_value.array_value.values]
        return getattr(any_value, kind) if kind else None

    return {kv.key: value_of(kv.value) for kv in key_values}
