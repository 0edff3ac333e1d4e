"""Streaming @ct.llm functions: one span per stream, ended however the stream ends."""

from __future__ import annotations

import asyncio
import gc
import inspect
import json

import pytest
from opentelemetry import trace
from opentelemetry.trace import StatusCode

import canarytrace as ct
from canarytrace import attributes as A
from canarytrace.context import scoped_attributes


def output_text(span):
    messages = json.loads(span.attributes[A.GEN_AI_OUTPUT_MESSAGES])
    return "".join(p["content"] for m in messages for p in m["parts"])


@ct.llm(model="streamer")
def stream(prompt):
    yield "Hello"
    yield ", "
    yield "world"


@ct.llm(model="astreamer")
async def astream(prompt):
    for word in ("Bon", "jour"):
        await asyncio.sleep(0)
        yield {"choices": [{"delta": {"content": word}}]}
    yield {"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 2}}


def test_consumed_generator_records_joined_output_and_time_to_first_chunk(traced):
    chunks = stream("greet")
    assert inspect.isgenerator(chunks)
    assert traced.spans() == []  # nothing ends before the stream does
    assert list(chunks) == ["Hello", ", ", "world"]
    span = traced.one("chat streamer")
    assert output_text(span) == "Hello, world"
    assert span.attributes[A.CANARY_STREAM_CHUNKS] == 3
    assert span.attributes[A.CANARY_TIME_TO_FIRST_CHUNK_MS] >= 0
    assert json.loads(span.attributes[A.GEN_AI_INPUT_MESSAGES])[0]["parts"][0]["content"] == "greet"


def test_generator_closed_early_ends_the_span_with_the_partial_output(traced):
    chunks = stream("greet")
    assert next(chunks) == "Hello"
    chunks.close()
    span = traced.one("chat streamer")
    assert output_text(span) == "Hello"
    assert span.attributes[A.CANARY_STREAM_CHUNKS] == 1
    assert span.status.status_code is StatusCode.UNSET


def test_abandoned_generator_ends_its_span_when_collected(traced):
    chunks = stream("greet")
    next(chunks)
    next(chunks)
    del chunks
    gc.collect()
    assert output_text(traced.one("chat streamer")) == "Hello, "


def test_stream_never_iterated_still_ends_its_span(traced):
    chunks = stream("greet")
    del chunks
    gc.collect()
    span = traced.one("chat streamer")
    assert A.GEN_AI_OUTPUT_MESSAGES not in span.attributes


def test_stream_keeps_the_callers_parent_and_scope_when_consumed_later(traced):
    tracer = traced.provider.get_tracer("app")
    with tracer.start_as_current_span("request handler"), \
            scoped_attributes({A.CANARY_VARIANT: "candidate"}):
        chunks = stream("greet")  # e.g. handed to a streaming HTTP response
    assert list(chunks) == ["Hello", ", ", "world"]
    span, handler = traced.one("chat streamer"), traced.one("request handler")
    assert span.parent.span_id == handler.context.span_id
    assert span.attributes[A.CANARY_VARIANT] == "candidate"


async def test_async_stream_keeps_the_callers_scope(traced):
    with scoped_attributes({A.CANARY_ROLE: "shadow"}):
        chunks = astream("greet")
    assert len([c async for c in chunks]) == 3
    assert traced.one("chat astreamer").attributes[A.CANARY_ROLE] == "shadow"


def test_consumer_code_between_chunks_is_not_inside_the_llm_span(traced):
    tracer = traced.provider.get_tracer("app")
    for _ in stream("greet"):
        with tracer.start_as_current_span("consumer work"):
            pass
    assert traced.one("chat streamer")
    consumer_spans = traced.named("consumer work")
    assert len(consumer_spans) == 3
    assert all(span.parent is None for span in consumer_spans)


def test_producer_code_runs_inside_the_llm_span(traced):
    @ct.llm(model="outer-stream")
    def outer(prompt):
        yield trace.get_current_span().get_span_context().span_id
        yield trace.get_current_span().get_span_context().span_id

    ids = list(outer("x"))
    span = traced.one("chat outer-stream")
    assert ids == [span.context.span_id] * 2


def test_exception_in_the_middle_of_a_stream(traced):
    @ct.llm(model="broken-stream")
    def broken(prompt):
        yield "partial"
        raise ConnectionError("upstream reset")

    chunks = broken("x")
    assert next(chunks) == "partial"
    with pytest.raises(ConnectionError, match="upstream reset"):
        next(chunks)
    span = traced.one("chat broken-stream")
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes[A.ERROR_TYPE] == "ConnectionError"
    assert output_text(span) == "partial"


def test_send_and_return_value_pass_through(traced):
    @ct.llm(model="echo")
    def echo(prompt):
        received = yield "ready"
        yield f"got {received}"
        return "done"

    def drive():
        chunks = echo("x")
        assert next(chunks) == "ready"
        assert chunks.send("ping") == "got ping"
        result = yield from chunks
        return result

    runner = drive()
    with pytest.raises(StopIteration) as stop:
        next(runner)
    assert stop.value.value == "done"
    assert output_text(traced.one("chat echo")) == "readygot ping"


def test_function_returning_a_generator_is_traced_as_a_stream(traced):
    @ct.llm(model="factory")
    def make_stream(prompt):
        return (c for c in "abc")

    assert list(make_stream("x")) == ["a", "b", "c"]
    assert output_text(traced.one("chat factory")) == "abc"


async def test_consumed_async_generator_reads_openai_deltas_and_usage(traced):
    stream_object = astream("greet")
    assert inspect.isasyncgen(stream_object)
    chunks = [c async for c in stream_object]
    assert len(chunks) == 3
    span = traced.one("chat astreamer")
    assert output_text(span) == "Bonjour"
    assert span.attributes[A.GEN_AI_USAGE_INPUT_TOKENS] == 5
    assert span.attributes[A.GEN_AI_USAGE_OUTPUT_TOKENS] == 2
    assert span.attributes[A.CANARY_STREAM_CHUNKS] == 3
    assert A.CANARY_TIME_TO_FIRST_CHUNK_MS in span.attributes


async def test_async_generator_closed_early(traced):
    chunks = astream("greet")
    await chunks.__anext__()
    await chunks.aclose()
    span = traced.one("chat astreamer")
    assert output_text(span) == "Bon"
    assert span.attributes[A.CANARY_STREAM_CHUNKS] == 1


async def test_abandoned_async_generator_ends_its_span(traced):
    async def read_first():
        async for chunk in astream("greet"):
            return chunk

    await read_first()
    gc.collect()
    for _ in range(5):  # asyncio finalizes abandoned async generators on the loop
        await asyncio.sleep(0)
    assert output_text(traced.one("chat astreamer")) == "Bon"


async def test_async_generator_exception(traced):
    @ct.llm(model="abroken")
    async def broken(prompt):
        yield "partial"
        raise ValueError("bad chunk")

    with pytest.raises(ValueError, match="bad chunk"):
        async for _ in broken("x"):
            pass
    span = traced.one("chat abroken")
    assert span.attributes[A.ERROR_TYPE] == "ValueError"
    assert output_text(span) == "partial"


def test_stream_inside_asyncio_task_group_keeps_context_clean(traced):
    async def main():
        await asyncio.gather(*[consume() for _ in range(3)])
        return trace.get_current_span()

    async def consume():
        return [c async for c in astream("greet")]

    assert asyncio.run(main()) is trace.INVALID_SPAN
    assert len(traced.named("chat astreamer")) == 3
