"""Fixtures for the SDK tests: an in-memory span pipeline adopted by ct.init, a loopback
OTLP receiver."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import canarytrace as ct
from canarytrace import attributes as A
from tests.sdk.otlp_receiver import Receiver


@dataclass
class Traced:
    """The spans the SDK produced in this test (through an adopted TracerProvider)."""

    provider: TracerProvider
    exporter: InMemorySpanExporter

    def init(self, **settings) -> None:
        """Re-run ct.init on the same provider with other settings (capture, redact)."""
        ct.init(tracer_provider=self.provider, **settings)

    def spans(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def named(self, name: str) -> list[ReadableSpan]:
        return [s for s in self.spans() if s.name == name]

    def one(self, name: str) -> ReadableSpan:
        found = self.named(name)
        assert len(found) == 1, f"expected one span {name!r}, got {[s.name for s in self.spans()]}"
        return found[0]

    def llm_spans(self) -> list[ReadableSpan]:
        return [s for s in self.spans()
                if s.attributes.get(A.GEN_AI_OPERATION_NAME) in A.LLM_OPERATIONS]


@pytest.fixture
def traced():
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    ct.init(tracer_provider=provider)
    yield Traced(provider, exporter)
    ct.shutdown()
    provider.shutdown()


@pytest.fixture
def exporter(traced):
    """The in-memory exporter of ``traced``, for tests that read finished spans directly."""
    return traced.exporter


@pytest.fixture
def receiver():
    server = Receiver().start()
    yield server
    server.stop()
