"""Sustained OTLP/HTTP ingest: ``canarytrace serve`` (durability on) vs Arize Phoenix.

A separate load process posts 512-span protobuf batches (GenAI-shaped spans with chat
messages, ~0.8 KB each, fresh ids in every batch) over loopback on a few keep-alive
connections, for a fixed time after a warm-up, and reports accepted spans/s and the
p50/p99 latency of a request. For canarytrace a 200 means the spans are fsynced in the
spool; the benchmark then waits until the writer has stored everything in ClickHouse
and reports the end-to-end stored rate too, and the server's CPU per span (ingest
workers and the server's threads by name). Phoenix (if ``phoenix`` is installed, on
PATH or via ``--phoenix-bin``) receives the same payloads on its OTLP endpoint.

    python benchmarks/ingest.py                  # 20 s per server, 4 connections
    python benchmarks/ingest.py --seconds 10 --phoenix-bin /tmp/phoenix-venv/bin/phoenix
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

BATCH = 512
WARMUP_S = 3.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- payloads ------------------------------------------------------------------------------
def template() -> tuple[bytes, list[tuple[int, int]]]:
    """One serialized 512-span request and the (offset, length) of every trace/span id in it."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    from canarytrace import attributes as A

    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    kv = resource_spans.resource.attributes.add()
    kv.key, kv.value.string_value = A.SERVICE_NAME, "bench-checkout"
    scope_spans = resource_spans.scope_spans.add()
    scope_spans.scope.name, scope_spans.scope.version = "canarytrace", "0.1.0"
    now, ids = time.time_ns(), []
    for i in range(BATCH):
        span = scope_spans.spans.add()
        span.trace_id, span.span_id = os.urandom(16), os.urandom(8)
        ids += [span.trace_id, span.span_id]
        span.name, span.kind = "chat llama-3-8b-lora", 3
        span.start_time_unix_nano, span.end_time_unix_nano = now + i, now + i + 350_000_000
        span.status.code = 1
        attributes = {
            A.GEN_AI_OPERATION_NAME: "chat", A.GEN_AI_REQUEST_MODEL: "llama-3-8b-lora",
            A.GEN_AI_PROVIDER_NAME: "vllm", A.CANARY_VARIANT: ("base", "candidate")[i % 2],
            A.CANARY_ROLE: "primary", A.CANARY_PAIR_ID: os.urandom(8).hex(),
            A.CANARY_ROUTE: "billing", A.CANARY_COHORT: ("en", "de", "fr")[i % 3],
            A.GEN_AI_INPUT_MESSAGES: json.dumps([{"role": "user", "parts": [{
                "type": "text", "content": f"Summarise invoice {i} in three bullet points."}]}]),
            A.GEN_AI_OUTPUT_MESSAGES: json.dumps([{"role": "assistant", "parts": [{
                "type": "text", "content": "- total 12 EUR\n- due in 14 days\n- paid by card"}],
                "finish_reason": "stop"}]),
        }
        for key, value in attributes.items():
            kv = span.attributes.add()
            kv.key, kv.value.string_value = key, value
        for key, value in ((A.GEN_AI_USAGE_INPUT_TOKENS, 40 + i % 200),
                           (A.GEN_AI_USAGE_OUTPUT_TOKENS, 20 + i % 90)):
            kv = span.attributes.add()
            kv.key, kv.value.int_value = key, value
    body = request.SerializeToString()
    return body, [(body.index(value), len(value)) for value in ids]


class Payloads:
    """Fresh copies of the template with new random ids (cheap: bytes patched in place)."""

    def __init__(self) -> None:
        self.body, self.offsets = template()

    def next(self) -> bytes:
        body = bytearray(self.body)
        fresh = os.urandom(24 * BATCH)
        position = 0
        for offset, length in self.offsets:
            body[offset:offset + length] = fresh[position:position + length]
            position += length
        return bytes(body)


# --- the load process ----------------------------------------------------------------------
def load(port: int, path: str, seconds: float, warmup: float, connections: int,
         results: multiprocessing.Queue) -> None:
    """Post batches on ``connections`` keep-alive connections; report what the window saw."""
    payloads = Payloads()
    lock = threading.Lock()
    start = time.perf_counter()
    window_start, window_end = start + warmup, start + warmup + seconds
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    accepted = [0]

    def worker() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        while True:
            with lock:
                body = payloads.next()
            sent = time.perf_counter()
            if sent >= window_end:
                return
            connection.request("POST", path, body, {"Content-Type": "application/x-protobuf"})
            response = connection.getresponse()
            response.read()
            done = time.perf_counter()
            if sent >= window_start and done <= window_end:
                with lock:
                    statuses[response.status] = statuses.get(response.status, 0) + 1
                    if response.status == 200:
                        latencies.append(done - sent)
                        accepted[0] += BATCH
            if response.status != 200:
                time.sleep(float(response.getheader("Retry-After", "1") or 1) / 10)

    threads = [threading.Thread(target=worker) for _ in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    results.put({"accepted": accepted[0], "seconds": seconds, "latencies": latencies,
                 "statuses": statuses})


@dataclass
class Result:
    name: str
    spans_per_s: float
    p50_ms: float
    p99_ms: float
    statuses: dict[int, int]
    note: str = ""


def run_load(name: str, port: int, path: str, seconds: float, connections: int) -> Result:
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    process = context.Process(target=load, args=(port, path, seconds, WARMUP_S, connections,
                                                 results))
    process.start()
    data = results.get(timeout=seconds + 300)
    process.join()
    latencies = sorted(data["latencies"]) or [float("nan")]
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    return Result(name, data["accepted"] / data["seconds"], statistics.median(latencies) * 1e3,
                  p99 * 1e3, data["statuses"])


def wait_http(url: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} not ready after {timeout}s")


def _stat_fields(stat: Path) -> list[str]:
    """The fields of a /proc stat file after the command name (the parent pid is [1])."""
    return stat.read_text().rpartition(")")[2].split()


def _cpu_of(fields: list[str]) -> float:
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_by_part(pid: int) -> dict[str, float]:
    """CPU seconds used so far by the server: its ingest workers (child processes), and its
    own threads by name (``python`` for Python threads; ClickHouse names its own)."""
    parts: dict[str, float] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = _stat_fields(stat)
        except OSError:
            continue
        if fields[1] == str(pid):
            parts["ingest workers"] = parts.get("ingest workers", 0.0) + _cpu_of(fields)
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            name = (task / "comm").read_text().strip()
            parts[name] = parts.get(name, 0.0) + _cpu_of(_stat_fields(task / "stat"))
        except OSError:
            continue
    return parts


def metric(base: str, name: str) -> float:
    with urllib.request.urlopen(f"{base}/metrics", timeout=10) as response:
        for line in response.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[-1])
    return 0.0


# --- the servers -----------------------------------------------------------------------------
def bench_canarytrace(workdir: Path, seconds: float, connections: int) -> Result:
    port = free_port()
    env = {**os.environ, "CANARYTRACE_STORE": f"chdb://{workdir}/db"}
    server = subprocess.Popen([sys.executable, "-m", "canarytrace.cli", "serve", "--port",
                               str(port)], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{base}/readyz")
        started = time.perf_counter()
        after_warmup: list[float] = []  # server CPU and spans stored when the window opens
        parts_at_mark: dict[str, float] = {}

        def mark() -> None:
            parts_at_mark.update(cpu_by_part(server.pid))
            after_warmup.extend((sum(parts_at_mark.values()),
                                 metric(base, "canarytrace_spans_stored_total")))

        marker = threading.Timer(WARMUP_S, mark)  # ingest workers start during the warm-up
        marker.start()
        result = run_load("canarytrace serve", port, "/v1/traces", seconds, connections)
        marker.join()
        load_ended = time.perf_counter()
        while metric(base, "canarytrace_spool_bytes") > 4096:  # wait until stored
            time.sleep(0.2)
        drained, parts = time.perf_counter(), cpu_by_part(server.pid)
        stored = metric(base, "canarytrace_spans_stored_total")
        spans = stored - after_warmup[1]
        per_span = {name: (used - parts_at_mark.get(name, 0.0)) / spans * 1e6
                    for name, used in parts.items()}
        split = ", ".join(f"{name} {us:.0f}" for name, us in
                          sorted(per_span.items(), key=lambda item: -item[1]) if us >= 0.5)
        result.note = (f"then {drained - load_ended:.1f}s to drain the spool; stored "
                       f"{stored:,.0f} spans = {stored / (drained - started):,.0f} spans/s end "
                       f"to end incl. warm-up; server CPU (workers included, from the end of "
                       f"the warm-up) {sum(per_span.values()):.0f} us/span\n"
                       f"{'':32} by thread (us/span): {split}")
        return result
    finally:
        stop(server)


def bench_phoenix(binary: str, workdir: Path, seconds: float, connections: int) -> Result:
    port, grpc_port = free_port(), free_port()
    env = {**os.environ, "PHOENIX_WORKING_DIR": str(workdir), "PHOENIX_PORT": str(port),
           "PHOENIX_GRPC_PORT": str(grpc_port), "PHOENIX_HOST": "127.0.0.1"}
    server = subprocess.Popen([binary, "serve"], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.STDOUT)
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz", timeout=300)  # slow to start when loaded
        return run_load("Arize Phoenix (phoenix serve)", port, "/v1/traces", seconds,
                        connections)
    finally:
        stop(server)


def stop(server: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL if it is still busy (Phoenix works through its backlog first)."""
    server.terminate()
    try:
        server.wait(60)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait(30)


def report(r: Result) -> None:
    print(f"{r.name:32} {r.spans_per_s:>10,.0f} spans/s  p50 {r.p50_ms:7.1f} ms  "
          f"p99 {r.p99_ms:7.1f} ms  responses {r.statuses}", flush=True)
    if r.note:
        print(f"{'':32} {r.note}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--phoenix-bin", default=os.environ.get("PHOENIX_BIN")
                        or shutil.which("phoenix"))
    args = parser.parse_args()
    body, _ = template()
    print(f"payload: {BATCH} spans, {len(body):,} bytes protobuf per request; "
          f"{args.connections} connections; {args.seconds:.0f}s measured after 3s warm-up; "
          f"{os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.2f} at start")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        results.append(bench_canarytrace(Path(tmp) / "canarytrace", args.seconds,
                                         args.connections))
        report(results[0])
        if args.phoenix_bin:
            try:
                results.append(bench_phoenix(args.phoenix_bin, Path(tmp) / "phoenix",
                                             args.seconds, args.connections))
            except (RuntimeError, OSError) as exc:
                print(f"Phoenix failed: {exc}")
        else:
            print("Phoenix skipped: 'phoenix' not found (pip install arize-phoenix, or pass "
                  "--phoenix-bin)")
    if len(results) == 2:
        report(results[1])
    if len(results) == 2 and results[1].spans_per_s:
        ratio = results[0].spans_per_s / results[1].spans_per_s
        print(f"ratio canarytrace / Phoenix: {ratio:.1f}x")
    print(f"load average {os.getloadavg()[0]:.2f} at the end (other work on the machine "
          "inflates every figure)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
