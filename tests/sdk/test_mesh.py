"""Canaries made by the mesh: env labels on a process, request ids as pair keys, and head
sampling that keeps both arms of a mirrored request."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys

import httpx
import pytest
from fastapi import FastAPI
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased

import canarytrace as ct
from canarytrace import attributes as A
from canarytrace.sampling import PairRatioSampler


@ct.llm(model="tuned-7b")
def generate(prompt: str) -> str:
    return f"answer to {prompt}"


def labels(span) -> dict:
    keys = (A.CANARY_VARIANT, A.CANARY_ROLE, A.CANARY_PAIR_ID, A.CANARY_ROUTE, A.CANARY_COHORT)
    return {k: span.attributes[k] for k in keys if k in span.attributes}


# --- CANARYTRACE_VARIANT / CANARYTRACE_ROLE ------------------------------------------------------

_UNINITIALISED_PROCESS = """
import json
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)
import canarytrace as ct

@ct.llm(model="tuned-7b")
def generate(prompt):
    return "answer"

generate("hi")
with ct.agent("helper"):
    generate("again")
print(json.dumps([dict(s.attributes) for s in exporter.get_finished_spans()]))
"""


def test_a_process_labelled_by_its_environment_labels_every_span_without_init():
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("CANARYTRACE_")},
           "CANARYTRACE_VARIANT": "candidate", "CANARYTRACE_ROLE": "shadow"}
    out = subprocess.run([sys.executable, "-c", _UNINITIALISED_PROCESS], env=env,
                         capture_output=True, text=True, timeout=60, check=True)
    spans = json.loads(out.stdout)
    assert len(spans) == 3  # two LLM calls and the agent run
    for span in spans:
        assert span[A.CANARY_VARIANT] == "candidate" and span[A.CANARY_ROLE] == "shadow"


def test_init_reads_the_labels_and_a_canary_in_the_process_overrides_them(traced, monkeypatch):
    monkeypatch.setenv("CANARYTRACE_VARIANT", "candidate")
    traced.init()
    generate("plain")
    (span,) = traced.llm_spans()
    assert labels(span) == {A.CANARY_VARIANT: "candidate", A.CANARY_ROLE: "primary"}

    with ct.Canary(base=lambda r: "b", candidate=lambda r: "c", base_model="base-7b",
                   candidate_model="tuned-7b", mirror_rate=1.0) as canary:
        canary("question")
    by_model = {s.attributes[A.GEN_AI_REQUEST_MODEL]: labels(s) for s in traced.llm_spans()
                if A.CANARY_PAIR_ID in s.attributes}
    assert by_model["base-7b"][A.CANARY_VARIANT] == "base"
    assert by_model["base-7b"][A.CANARY_ROLE] == "primary"
    assert by_model["tuned-7b"][A.CANARY_ROLE] == "shadow"

    monkeypatch.delenv("CANARYTRACE_VARIANT")
    ct.shutdown()
    traced.exporter.clear()
    traced.init()
    generate("unlabelled")
    assert labels(traced.llm_spans()[0]) == {}


@pytest.mark.parametrize(("name", "value"), [("CANARYTRACE_VARIANT", "canary"),
                                              ("CANARYTRACE_ROLE", "mirror")])
def test_a_bad_label_is_one_clear_error_at_init(traced, monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=f"{name} must be .* got '{value}'"):
        traced.init()


# --- ct.request ----------------------------------------------------------------------------------

def test_request_records_its_id_as_the_pair_key_on_nested_spans(traced):
    with ct.request("req-41", cohort="pro", route="billing") as pair_id:
        assert pair_id == "req-41"
        with ct.agent("support"):
            generate("inside")
    generate("outside")
    with ct.request(42) as numeric:  # a queue's integer message id
        assert numeric == "42"
    inside = [s for s in traced.spans() if A.CANARY_PAIR_ID in s.attributes]
    assert {s.name for s in inside} == {"invoke_agent support", "chat tuned-7b"}
    assert all(labels(s) == {A.CANARY_PAIR_ID: "req-41", A.CANARY_COHORT: "pro",
                             A.CANARY_ROUTE: "billing"} for s in inside)
    assert len(traced.llm_spans()) == 2


@pytest.mark.parametrize("request_id", ["", "   ", "x" * 257, "bad\nid"])
def test_an_unusable_request_id_is_not_recorded_and_never_raises(traced, request_id):
    with ct.request(request_id) as pair_id:
        assert pair_id is None
        assert generate("q") == "answer to q"
    assert A.CANARY_PAIR_ID not in traced.llm_spans()[0].attributes


# --- middlewares ---------------------------------------------------------------------------------

def _fastapi_app(**middleware) -> FastAPI:
    app = FastAPI()
    app.add_middleware(ct.RequestIdMiddleware, **middleware)

    @app.get("/async")
    async def answer_async(q: str) -> dict:
        return {"answer": generate(q)}

    @app.get("/sync")
    def answer_sync(q: str) -> dict:  # runs in a worker thread
        return {"answer": generate(q)}

    return app


async def _get_all(app, requests: list[tuple[str, dict]]) -> list[int]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
        answers = await asyncio.gather(*(client.get(path, headers=headers)
                                         for path, headers in requests))
    return [a.status_code for a in answers]


def _pair_ids(traced) -> dict[str, str | None]:
    """pair id by prompt, from the LLM spans' recorded input."""
    found = {}
    for span in traced.llm_spans():
        prompt = json.loads(span.attributes[A.GEN_AI_INPUT_MESSAGES])[0]["parts"][0]["content"]
        found[prompt] = span.attributes.get(A.CANARY_PAIR_ID)
    return found


def test_the_asgi_middleware_pairs_concurrent_requests_by_their_request_id(traced):
    requests = [(f"/{kind}?q={kind}{i}", {"X-Request-ID": f"{kind}-{i}"})
                for i in range(10) for kind in ("async", "sync")]
    requests.append(("/async?q=anonymous", {}))
    assert asyncio.run(_get_all(_fastapi_app(), requests)) == [200] * 21
    expected = {f"{kind}{i}": f"{kind}-{i}" for i in range(10) for kind in ("async", "sync")}
    assert _pair_ids(traced) == {**expected, "anonymous": None}


def test_the_request_id_header_is_configurable(traced, monkeypatch):
    headers = {"x-request-id": "not-this", "x-b3-traceid": "b3-1", "x-amzn-trace-id": "aws-1"}
    asyncio.run(_get_all(_fastapi_app(header="X-B3-TraceId"), [("/async?q=one", headers)]))
    monkeypatch.setenv("CANARYTRACE_REQUEST_ID_HEADER", "X-Amzn-Trace-Id")
    traced.init()
    asyncio.run(_get_all(_fastapi_app(), [("/async?q=two", headers)]))
    assert _pair_ids(traced) == {"one": "b3-1", "two": "aws-1"}


def _wsgi_app(environ, start_response):
    """A WSGI app that streams: its LLM call runs while the server iterates the body."""
    start_response("200 OK", [("Content-Type", "text/plain")])
    query = environ["QUERY_STRING"].removeprefix("q=")

    def body():
        yield b"thinking... "
        yield generate(query).encode()
    return body()


def test_the_wsgi_middleware_covers_a_streamed_body(traced):
    app = ct.WSGIRequestIdMiddleware(_wsgi_app)
    with httpx.Client(transport=httpx.WSGITransport(app=app), base_url="http://svc") as client:
        first = client.get("/?q=streamed", headers={"x-request-id": "wsgi-1"})
        second = client.get("/?q=anonymous")
    assert first.text == "thinking... answer to streamed" and second.status_code == 200
    assert _pair_ids(traced) == {"streamed": "wsgi-1", "anonymous": None}


# --- head sampling by pair id --------------------------------------------------------------------

def _sampling_process() -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=ParentBased(PairRatioSampler(0.5)))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def test_two_processes_keep_or_drop_the_same_mirrored_requests():
    """Each arm's service starts its own traces; at sample rate 0.5 both keep the same half."""
    kept = []
    for variant in ("base", "candidate"):
        provider, exporter = _sampling_process()
        ct.init(tracer_provider=provider)
        try:
            with ct.scoped_attributes({A.CANARY_VARIANT: variant}):
                for i in range(400):
                    with ct.request(f"req-{i}"):
                        generate(str(i))
                for i in range(400):
                    generate(f"unpaired {i}")
        finally:
            ct.shutdown()
        spans = exporter.get_finished_spans()
        kept.append({s.attributes.get(A.CANARY_PAIR_ID) for s in spans})
        assert 150 < sum(A.CANARY_PAIR_ID not in s.attributes for s in spans) < 250
    assert kept[0] == kept[1]
    assert 150 < len(kept[0] - {None}) < 250
