"""Per-call cost of ``@ct.llm`` against a hand-written OpenTelemetry span with the same attributes.

Both run in this process on the same TracerProvider (canarytrace's batch processor in front of
an exporter that discards), with the same model function, prompt and answer. The bare version
is what a user would write by hand: ``start_as_current_span`` with the request attributes and
the input/output messages as JSON strings. Short rounds alternate between the two so that
both see the same machine load; the figures are the median and the best round of each.

    python benchmarks/sdk_overhead.py [--calls 2000] [--rounds 40]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind

import canarytrace as ct
from canarytrace import attributes as A
from canarytrace.processor import export_processor

PROMPT = [{"role": "system",
           "parts": [{"type": "text", "content": "You answer billing questions."}]},
          {"role": "user", "parts": [{"type": "text", "content": "Why was I charged twice?"}]}]
ANSWER = "The second charge is a pending authorization; it disappears within 3 days."


class DiscardExporter(SpanExporter):
    def export(self, spans):
        return SpanExportResult.SUCCESS


def model(messages):
    return ANSWER


def bare_call(tracer, messages):
    attributes = {A.GEN_AI_OPERATION_NAME: "chat", A.GEN_AI_REQUEST_MODEL: "llama-3-8b-lora",
                  A.GEN_AI_PROVIDER_NAME: "vllm", A.CANARY_ROUTE: "billing",
                  A.CANARY_COHORT: "eu"}
    with tracer.start_as_current_span("chat llama-3-8b-lora", kind=SpanKind.CLIENT,
                                      attributes=attributes) as span:
        span.set_attribute(A.GEN_AI_INPUT_MESSAGES, json.dumps(messages))
        answer = model(messages)
        output = [{"role": "assistant", "parts": [{"type": "text", "content": answer}]}]
        span.set_attribute(A.GEN_AI_OUTPUT_MESSAGES, json.dumps(output))
        return answer


@ct.llm(model="llama-3-8b-lora", provider="vllm", route="billing", cohort="eu")
def decorated_call(messages):
    return model(messages)


def per_call_us(fn, calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        fn(PROMPT)
    return (time.perf_counter() - start) / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2_000, help="calls per round")
    parser.add_argument("--rounds", type=int, default=40)
    args = parser.parse_args()

    provider = TracerProvider()
    provider.add_span_processor(export_processor(DiscardExporter()))
    ct.init(tracer_provider=provider)
    tracer = provider.get_tracer("bare")

    def bare(messages):
        return bare_call(tracer, messages)

    per_call_us(bare, 2_000)
    per_call_us(decorated_call, 2_000)
    bare_us, decorated_us = [], []
    for _ in range(args.rounds):
        bare_us.append(per_call_us(bare, args.calls))
        decorated_us.append(per_call_us(decorated_call, args.calls))
    provider.shutdown()
    ratios = [d / b for d, b in zip(decorated_us, bare_us, strict=True)]
    print(f"calls per round: {args.calls}, rounds: {args.rounds}")
    print(f"{'':16}{'median':>10}{'best':>10}")
    print(f"{'bare OTel span':<16}{statistics.median(bare_us):>7.2f} µs{min(bare_us):>7.2f} µs")
    print(f"{'@ct.llm':<16}{statistics.median(decorated_us):>7.2f} µs"
          f"{min(decorated_us):>7.2f} µs")
    print(f"ratio: median of rounds {statistics.median(ratios):.3f}, "
          f"best/best {min(decorated_us) / min(bare_us):.3f} (target <= 1.2)")


if __name__ == "__main__":
    main()
