"""Streamed LLM output: one span from the call to the last chunk (or to close / abandonment).

The span is current only while the producer runs (between two chunks), never while the
consumer holds a chunk, so the consumer's own spans do not nest under the LLM call and a
stream closed from another context (garbage collection) detaches nothing it did not attach.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import AsyncGenerator, Generator
from typing import Any

from canarytrace import attributes as A
from canarytrace._safety import log_once
from canarytrace.calls import LlmCall
from canarytrace.responses import chunk_text, chunk_usage


class StreamRecorder:
    """Collects chunk text, usage and time to first chunk; ends the span when told."""

    __slots__ = ("call", "pieces", "chunks", "started_ns", "first_chunk_ns",
                 "input_tokens", "output_tokens")

    def __init__(self, call: LlmCall) -> None:
        self.call = call
        self.pieces: list[str] = []
        self.chunks = 0
        self.started_ns = time.perf_counter_ns()
        self.first_chunk_ns: int | None = None
        self.input_tokens: int | None = None
        self.output_tokens: int | None = None

    def on_chunk(self, chunk: Any) -> None:
        if self.first_chunk_ns is None:
            self.first_chunk_ns = time.perf_counter_ns()
        self.chunks += 1
        if not self.call.recording:
            return
        try:
            self.pieces.append(chunk_text(chunk))
            input_tokens, output_tokens = chunk_usage(chunk)
            self.input_tokens = input_tokens if input_tokens is not None else self.input_tokens
            self.output_tokens = output_tokens if output_tokens is not None else self.output_tokens
        except Exception as exc:  # noqa: BLE001 - telemetry never raises
            log_once("could not read stream chunk", exc)

    def finish(self) -> None:
        """Record the joined output and stream timing, then end the span."""
        call = self.call
        call.set_attribute(A.CANARY_STREAM_CHUNKS, self.chunks)
        if self.first_chunk_ns is not None:
            call.set_attribute(A.CANARY_TIME_TO_FIRST_CHUNK_MS,
                               (self.first_chunk_ns - self.started_ns) / 1e6)
        call.set_output("".join(self.pieces), self.input_tokens, self.output_tokens)
        call.end()

    def fail(self, exc: BaseException) -> None:
        self.call.record_error(exc)
        self.finish()


def traced_stream(call: LlmCall | None,
                  inner: Generator[Any, Any, Any]) -> Generator[Any, Any, Any]:
    """``inner``, recorded by ``call``; a stream dropped before its first chunk still ends it."""
    started: list[bool] = []
    stream = _traced_stream(call, inner, started)
    if call is not None:
        weakref.finalize(stream, _end_unless_started, call, started)
    return stream


def traced_async_stream(call: LlmCall | None,
                        inner: AsyncGenerator[Any, Any]) -> AsyncGenerator[Any, Any]:
    """``inner``, recorded by ``call``; a stream dropped before its first chunk still ends it."""
    started: list[bool] = []
    stream = _traced_async_stream(call, inner, started)
    if call is not None:
        weakref.finalize(stream, _end_unless_started, call, started)
    return stream


def _end_unless_started(call: LlmCall, started: list[bool]) -> None:
    """A stream collected before its first ``next()`` never ran: end its span here."""
    if not started:
        call.end()


def _traced_stream(call: LlmCall | None, inner: Generator[Any, Any, Any],
                   started: list[bool]) -> Generator[Any, Any, Any]:
    """Yield what ``inner`` yields (forwarding send/throw/close) while ``call`` records it."""
    started.append(True)
    if call is None:
        return (yield from inner)
    recorder = StreamRecorder(call)
    sent: Any = None
    thrown: BaseException | None = None
    while True:
        call.activate()
        try:
            chunk = inner.send(sent) if thrown is None else inner.throw(thrown)
        except StopIteration as stop:
            call.deactivate()
            recorder.finish()
            return stop.value
        except BaseException as exc:
            call.deactivate()
            recorder.fail(exc)
            raise
        call.deactivate()
        recorder.on_chunk(chunk)
        thrown = None
        try:
            sent = yield chunk
        except GeneratorExit:
            inner.close()
            recorder.finish()
            raise
        except BaseException as exc:
            thrown = exc


async def _traced_async_stream(call: LlmCall | None, inner: AsyncGenerator[Any, Any],
                               started: list[bool]) -> AsyncGenerator[Any, Any]:
    """The async twin of ``_traced_stream`` (asend/athrow/aclose are forwarded)."""
    started.append(True)
    if call is None:
        async for chunk in inner:
            yield chunk
        return
    recorder = StreamRecorder(call)
    sent: Any = None
    thrown: BaseException | None = None
    while True:
        call.activate()
        try:
            chunk = await (inner.asend(sent) if thrown is None else inner.athrow(thrown))
        except StopAsyncIteration:
            call.deactivate()
            recorder.finish()
            return
        except BaseException as exc:
            call.deactivate()
            recorder.fail(exc)
            raise
        call.deactivate()
        recorder.on_chunk(chunk)
        thrown = None
        try:
            sent = yield chunk
        except GeneratorExit:
            await inner.aclose()
            recorder.finish()
            raise
        except BaseException as exc:
            thrown = exc
