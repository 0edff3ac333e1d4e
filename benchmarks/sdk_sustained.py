"""Spans lost on the way out: ``@ct.llm`` calls exported over OTLP/HTTP to a local receiver.

A receiver process on loopback decodes each OTLP protobuf body and counts its spans. Two
loads, each run first with the OpenTelemetry SDK's stock BatchSpanProcessor and then with the
processor ``ct.init()`` installs (``canarytrace.processor.export_processor``):

- sustained: 2,000 decorated calls/s for 10 s (paced in 10 ms ticks of 20 calls);
- burst: 20,000 decorated calls in a tight loop.

    python benchmarks/sdk_sustained.py [--rate 2000] [--seconds 10] [--burst 20000]
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import socket
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

import canarytrace as ct
from canarytrace.processor import export_processor

PROMPT = [{"role": "system", "content": "You answer billing questions for ACME Cloud."},
          {"role": "user", "content": "Why was I charged twice this month for the same plan?"}]
ANSWER = "The second charge is a pending authorization; it disappears within 3 business days."


def receive(port: int, counter, ready) -> None:
    """Receiver process: count the spans in every OTLP/HTTP protobuf body posted to it."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
        ExportTraceServiceResponse,
    )

    reply = ExportTraceServiceResponse().SerializeToString()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            body = self.rfile.read(int(self.headers["Content-Length"]))
            request = ExportTraceServiceRequest.FromString(body)
            spans = sum(len(s.spans) for r in request.resource_spans for s in r.scope_spans)
            with counter.get_lock():
                counter.value += spans
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    ready.set()
    server.serve_forever()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@ct.llm(model="llama-3-8b-lora", provider="vllm", route="billing", cohort="eu")
def answer(messages):
    return ANSWER


def sustained(rate: int, seconds: float) -> int:
    per_tick, tick = rate // 100, 0.01
    sent, start = 0, time.perf_counter()
    for n in range(int(seconds * 100)):
        for _ in range(per_tick):
            answer(PROMPT)
        sent += per_tick
        delay = start + (n + 1) * tick - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
    return sent


def burst(calls: int) -> int:
    for _ in range(calls):
        answer(PROMPT)
    return calls


def run(label: str, processor, load, counter) -> None:
    with counter.get_lock():
        counter.value = 0
    provider = TracerProvider()
    provider.add_span_processor(processor)
    ct.init(tracer_provider=provider)
    started = time.perf_counter()
    sent = load()
    elapsed = time.perf_counter() - started
    provider.shutdown()  # exports what is still queued
    ct.shutdown()
    time.sleep(0.5)
    received = counter.value
    dropped = sent - received
    print(f"{label:<50} sent {sent:>6} in {elapsed:5.1f} s  received {received:>6}  "
          f"dropped {dropped:>6} ({dropped / sent:6.1%})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, default=2_000, help="calls per second")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--burst", type=int, default=20_000, help="calls in the tight loop")
    args = parser.parse_args()
    logging.getLogger("opentelemetry").setLevel(logging.ERROR)  # one "Queue full" per drop

    port = free_port()
    counter, ready = multiprocessing.Value("q", 0), multiprocessing.Event()
    receiver = multiprocessing.Process(target=receive, args=(port, counter, ready), daemon=True)
    receiver.start()
    ready.wait(10)
    endpoint = f"http://127.0.0.1:{port}/v1/traces"

    def stock():
        return BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint))

    def canarytrace_processor():
        return export_processor(OTLPSpanExporter(endpoint=endpoint))

    loads = [(f"sustained {args.rate}/s x {args.seconds:g} s",
              lambda: sustained(args.rate, args.seconds)),
             (f"burst {args.burst} calls", lambda: burst(args.burst))]
    for load_label, load in loads:
        run(f"{load_label}, stock BatchSpanProcessor", stock(), load, counter)
        run(f"{load_label}, canarytrace processor", canarytrace_processor(), load, counter)
    receiver.terminate()


if __name__ == "__main__":
    main()
