"""ct.init and the global OpenTelemetry providers; the scope stamped on other tracers' spans.

Global providers are set once per process, so each case runs in a fresh interpreter that
exports to a loopback OTLP receiver in this process.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import NoOpTracerProvider

import canarytrace as ct
from canarytrace import attributes as A
from tests.sdk.otlp_receiver import Receiver, attributes_of

ROOT = Path(__file__).resolve().parents[2]


def run(code: str, url: str) -> str:
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code), url], cwd=ROOT,
                         capture_output=True, text=True, timeout=90)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.strip()


def spans_by_name(receiver) -> dict[str, tuple[dict, dict]]:
    return {span.name: (resource, attributes_of(span.attributes))
            for resource, span in receiver.spans()}


def test_init_makes_its_provider_global_and_other_tracers_follow_a_second_init(receiver):
    second = Receiver().start()
    try:
        out = run(f"""
            import sys
            from opentelemetry import trace
            import canarytrace as ct
            tracer = trace.get_tracer("some.instrumentation")   # taken before init, as usual
            ct.init(service_name="first", endpoint=sys.argv[1])
            tracer.start_span("third-party").end()
            ct.shutdown()
            ct.init(service_name="second", endpoint={second.url!r})
            tracer.start_span("after re-init").end()
            ct.shutdown()
            print(type(trace.get_tracer_provider()).__name__)
        """, receiver.url)
        assert out == "FollowingTracerProvider"
        assert set(spans_by_name(receiver)) == {"third-party"}
        assert spans_by_name(receiver)["third-party"][0][A.SERVICE_NAME] == "first"
        assert spans_by_name(second)["after re-init"][0][A.SERVICE_NAME] == "second"
    finally:
        second.stop()


def test_set_global_false_leaves_the_global_provider_alone(receiver):
    out = run("""
        import sys
        from opentelemetry import trace
        import canarytrace as ct
        ct.init(service_name="svc", endpoint=sys.argv[1], set_global=False)
        trace.get_tracer("other").start_span("not exported").end()
        with ct.llm_call(model="m"):
            pass
        ct.shutdown()
        print(type(trace.get_tracer_provider()).__name__)
    """, receiver.url)
    assert out == "ProxyTracerProvider"
    assert set(spans_by_name(receiver)) == {"chat m"}


def test_an_existing_global_provider_gets_canarytraces_processors(receiver):
    out = run("""
        import sys, json
        from opentelemetry import trace
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        import canarytrace as ct
        theirs = InMemorySpanExporter()
        provider = TracerProvider(resource=Resource.create({"service.name": "phoenix-app"}))
        provider.add_span_processor(SimpleSpanProcessor(theirs))
        trace.set_tracer_provider(provider)             # what Phoenix's register() does
        assert ct.init(endpoint=sys.argv[1]) is provider
        with ct.expect(reference="42"):
            trace.get_tracer("openinference").start_span("ChatCompletion").end()
        ct.shutdown()
        trace.get_tracer("openinference").start_span("after shutdown").end()
        print(json.dumps([s.name for s in theirs.get_finished_spans()]))
    """, receiver.url)
    assert json.loads(out) == ["ChatCompletion", "after shutdown"]  # theirs keeps working
    spans = spans_by_name(receiver)
    assert set(spans) == {"ChatCompletion"}  # ours stops at shutdown
    resource, attributes = spans["ChatCompletion"]
    assert resource[A.SERVICE_NAME] == "phoenix-app"
    assert attributes[A.CANARY_EXPECT_REFERENCE] == "42"


def test_logs_of_other_instrumentations_go_to_v1_logs(receiver):
    run("""
        import sys
        from opentelemetry._logs import get_logger, LogRecord
        import canarytrace as ct
        logger = get_logger("opentelemetry.instrumentation.openai_v2")
        ct.init(service_name="svc", endpoint=sys.argv[1])
        logger.emit(LogRecord(body="hello", event_name="gen_ai.client.inference.operation.details"))
        ct.force_flush()
        ct.shutdown()
    """, receiver.url)
    bodies = receiver.on("/v1/logs")
    assert bodies and b"gen_ai.client.inference.operation.details" in bodies[0].body


# --- the stamping processor, in this process ----------------------------------------------------

@pytest.fixture
def other_tracer(traced):
    """A tracer of another instrumentation on the adopted provider."""
    return traced.provider.get_tracer("opentelemetry.instrumentation.httpx")


def test_expectations_and_request_scope_are_stamped_on_other_tracers_spans(traced,
                                                                           other_tracer):
    with ct.request("req-1", route="billing", cohort="pro"), \
            ct.expect(json_schema={"type": "object"}):
        other_tracer.start_span("POST", attributes={A.CANARY_ROUTE: "own"}).end()
    other_tracer.start_span("outside").end()
    inside, outside = traced.one("POST"), traced.one("outside")
    assert inside.attributes[A.CANARY_EXPECT_JSON_SCHEMA] == '{"type": "object"}'
    assert inside.attributes[A.CANARY_PAIR_ID] == "req-1"
    assert inside.attributes[A.CANARY_COHORT] == "pro"
    assert inside.attributes[A.CANARY_ROUTE] == "own"  # what the span set itself wins
    assert not any(k.startswith("canary.") for k in outside.attributes)


def test_an_arm_call_outcome_stays_on_canarytraces_own_span(traced, other_tracer):
    def failing(request):
        raise TimeoutError("slow")

    def base(request):
        other_tracer.start_span("inside base").end()
        return "b"

    with ct.Canary(base=base, candidate=failing, base_model="b", candidate_model="c",
                   canary_rate=1.0, mirror_rate=0.0) as canary:
        assert canary("q") == "b"
    arm = next(s for s in traced.llm_spans() if s.attributes.get(A.CANARY_FALLBACK))
    nested = traced.one("inside base").attributes
    assert arm.attributes[A.ERROR_TYPE] == "TimeoutError"
    assert nested[A.CANARY_VARIANT] == A.VARIANT_BASE
    assert A.CANARY_FALLBACK not in nested and A.ERROR_TYPE not in nested


def test_a_provider_without_span_processors_is_adopted_as_is():
    provider = NoOpTracerProvider()
    try:
        assert ct.init(tracer_provider=provider, set_global=False) is provider
        with ct.expect(reference="x"), ct.llm_call(model="m"):
            pass
    finally:
        ct.shutdown()


def test_adopting_a_provider_twice_stamps_once():
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    try:
        for _ in range(2):
            ct.init(tracer_provider=provider, set_global=False)
        processors = provider._active_span_processor._span_processors
        assert sum(type(p).__name__ == "ScopeStampingProcessor" for p in processors) == 1
    finally:
        ct.shutdown()
