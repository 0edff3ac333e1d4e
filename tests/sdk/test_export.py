"""ct.init's own pipeline: real OTLP/HTTP export to a loopback receiver, sampling, a dead
collector, and the global provider when init() is not called."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import textwrap
import time

import pytest
from opentelemetry.trace import SpanKind

import canarytrace as ct
from canarytrace import attributes as A
from canarytrace._runtime import get_meter
from tests.sdk.otlp_receiver import attributes_of


@ct.llm(model="llama-3-8b-lora-r16", route="billing", cohort="eu")
def generate(messages):
    return {"choices": [{"message": {"role": "assistant", "content": "Refunded."},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 9, "completion_tokens": 2}}


@pytest.fixture
def sdk_shutdown():
    yield
    ct.shutdown()


def test_spans_arrive_over_otlp_http_with_attributes_key_and_service(receiver, sdk_shutdown):
    ct.init(service_name="billing-bot", endpoint=receiver.url, api_key="ct-key-123")
    with ct.agent("helper") as run, run.step("respond"):
        generate([{"role": "user", "content": "Refund?"}])
    assert ct.force_flush()

    requests = receiver.on("/v1/traces")
    assert requests and all(r.headers["authorization"] == "Bearer ct-key-123" for r in requests)
    assert all(r.headers["content-type"] == "application/x-protobuf" for r in requests)
    received = {span.name: (resource, span) for resource, span in receiver.spans()}
    assert set(received) == {"chat llama-3-8b-lora-r16", "step respond", "invoke_agent helper"}
    resource, span = received["chat llama-3-8b-lora-r16"]
    assert resource[A.SERVICE_NAME] == "billing-bot"
    assert span.kind == SpanKind.CLIENT.value + 1  # OTLP enum: 3 = CLIENT
    attributes = attributes_of(span.attributes)
    assert attributes[A.GEN_AI_REQUEST_MODEL] == "llama-3-8b-lora-r16"
    assert attributes[A.CANARY_ROUTE] == "billing"
    assert attributes[A.CANARY_COHORT] == "eu"
    assert attributes[A.GEN_AI_USAGE_INPUT_TOKENS] == 9
    assert attributes[A.GEN_AI_USAGE_OUTPUT_TOKENS] == 2
    assert attributes[A.GEN_AI_RESPONSE_FINISH_REASONS] == ["stop"]
    assert json.loads(attributes[A.GEN_AI_OUTPUT_MESSAGES])[0]["parts"][0]["content"] \
        == "Refunded."
    step = received["step respond"][1]
    assert span.parent_span_id == step.span_id and span.trace_id == step.trace_id


def test_endpoint_and_key_from_the_environment(receiver, sdk_shutdown, monkeypatch):
    monkeypatch.setenv("CANARYTRACE_ENDPOINT", receiver.url + "/")
    monkeypatch.setenv("CANARYTRACE_API_KEY", "env-key")
    ct.init(service_name="svc")
    generate("hi")
    ct.force_flush()
    assert [r.headers["authorization"] for r in receiver.on("/v1/traces")] == ["Bearer env-key"]


def test_meter_counters_are_exported_to_v1_metrics(receiver, sdk_shutdown):
    ct.init(service_name="svc", endpoint=receiver.url)
    get_meter().create_counter("app.requests").add(3, {"model": "m"})
    ct.shutdown()
    bodies = receiver.on("/v1/metrics")
    assert bodies and b"app.requests" in bodies[0].body


@pytest.mark.parametrize(("rate", "expected"), [(0.0, 0), (1.0, 50)])
def test_sample_rate(receiver, sdk_shutdown, rate, expected):
    ct.init(service_name="svc", endpoint=receiver.url, sample_rate=rate)
    answers = [generate(f"q{i}") for i in range(50)]
    assert all(a["usage"]["prompt_tokens"] == 9 for a in answers)
    ct.force_flush()
    assert len(receiver.spans()) == expected


def test_sampled_out_call_is_not_recording(receiver, sdk_shutdown):
    ct.init(service_name="svc", endpoint=receiver.url, sample_rate=0.0)
    with ct.llm_call(model="m") as call:
        call.set_output("text")
        assert not call.span.is_recording()


def test_invalid_sample_rate_is_one_clear_error():
    with pytest.raises(ValueError, match="sample_rate must be between 0 and 1"):
        ct.init(sample_rate=1.5)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_dead_collector_neither_raises_nor_blocks_the_caller(sdk_shutdown, monkeypatch):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "2")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_TIMEOUT", "1")
    ct.init(service_name="svc", endpoint=f"http://127.0.0.1:{closed_port()}")
    started = time.perf_counter()
    for i in range(2_000):  # several batches: the exporter is busy retrying meanwhile
        assert generate(f"q{i}")["usage"]["completion_tokens"] == 2
    calls_took = time.perf_counter() - started
    # one failed export retries for 2 s; a caller waiting on it would take at least that long
    assert calls_took < 2.0
    started = time.perf_counter()
    assert ct.force_flush(timeout_millis=500) is False
    ct.shutdown(timeout_s=0.5)  # 4 queued batches would retry for seconds each
    assert time.perf_counter() - started < 2.0


def test_without_init_spans_go_to_the_global_provider():
    code = textwrap.dedent("""
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        import canarytrace as ct

        @ct.llm(model="m")  # decorated before the application sets its provider
        def generate(messages):
            return "ok"

        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
        generate("hi")
        with ct.llm_call(model="m2"):
            pass
        print(",".join(s.name for s in exporter.get_finished_spans()))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60)
    assert out.stdout.strip() == "chat m,chat m2"
