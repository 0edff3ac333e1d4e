"""Served-path latency of ``ct.Canary`` mirroring every request, against the base alone.

The base takes ``--base-ms`` (20 ms) and the candidate ``--candidate-ms`` (100 ms), both
simulated with ``time.sleep``. Calls alternate between the bare base and the canary
(``mirror_rate=1.0``, spans recorded and batch-exported in process), so drift hits both alike.
Prints p50/p99 of each and the overhead; targets: p50 overhead <= 1 ms, p99 overhead <= 5 %.

    python benchmarks/canary_latency.py [--calls 1000]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Sequence

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

import canarytrace as ct
from canarytrace.canary import Canary
from canarytrace.processor import export_processor


class CountingExporter(SpanExporter):
    """Counts the spans it is given and lets them go, as a network exporter does."""

    def __init__(self) -> None:
        self.spans = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.spans += len(spans)
        return SpanExportResult.SUCCESS


def percentile(values: list[float], q: int) -> float:
    """The ``q``-th percentile (1..99) of ``values``."""
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def sleeper(ms: float, answer: str):
    def call(request: str) -> str:
        time.sleep(ms / 1000)
        return answer

    return call


def measure(canary: Canary, base, calls: int) -> tuple[list[float], list[float]]:
    """Interleaved wall times (ms) of ``base(request)`` and ``canary(request)``."""
    alone, served = [], []
    for i in range(calls):
        request = f"request {i}"
        for target, times in ((base, alone), (canary, served)) if i % 2 else \
                ((canary, served), (base, alone)):
            start = time.perf_counter()
            target(request)
            times.append((time.perf_counter() - start) * 1000)
    return alone, served


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1000, help="calls of each kind")
    parser.add_argument("--base-ms", type=float, default=20.0)
    parser.add_argument("--candidate-ms", type=float, default=100.0)
    parser.add_argument("--mirror-rate", type=float, default=1.0,
                        help="0 measures the tracing alone, without shadow calls")
    args = parser.parse_args()

    exporter = CountingExporter()
    provider = TracerProvider()
    provider.add_span_processor(export_processor(exporter))
    ct.init(tracer_provider=provider)

    base = sleeper(args.base_ms, "base answer")
    canary = Canary(base, sleeper(args.candidate_ms, "candidate answer"), base_model="base",
                    candidate_model="candidate", mirror_rate=args.mirror_rate)
    for i in range(20):  # warm up threads and the tracer
        canary(f"warm-up {i}")
        base(f"warm-up {i}")
    alone, served = measure(canary, base, args.calls)
    canary.close(timeout=10)
    provider.force_flush()

    p50 = (percentile(alone, 50), percentile(served, 50))
    p99 = (percentile(alone, 99), percentile(served, 99))
    stats = canary.stats
    print(f"calls: {args.calls} base alone + {args.calls} through the canary "
          f"(base {args.base_ms:g} ms, candidate {args.candidate_ms:g} ms, "
          f"mirror_rate={args.mirror_rate:g})")
    print(f"base alone    p50 {p50[0]:8.3f} ms   p99 {p99[0]:8.3f} ms")
    print(f"canary served p50 {p50[1]:8.3f} ms   p99 {p99[1]:8.3f} ms")
    print(f"overhead      p50 {p50[1] - p50[0]:+8.3f} ms   "
          f"p99 {(p99[1] - p99[0]) / p99[0] * 100:+7.2f} %   (targets: <= 1 ms, <= 5 %)")
    print(f"shadows: {stats.mirrored} mirrored, {stats.dropped} dropped; "
          f"{exporter.spans} spans exported")


if __name__ == "__main__":
    main()
