"""Arms: the base and candidate callables, and one call of an arm inside its scope.

Every arm call runs inside ``scoped_attributes`` (its LLM spans carry ``canary.variant``,
``canary.role``, ``canary.pair_id``, route and cohort) and ``scoped_deadline`` (its span is
marked a TimeoutError when it ends late). An arm that is not ``@llm``-wrapped gets an
``llm_call`` span from the canary, with the request as input and its answer as output.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from canarytrace.calls import LlmCall, llm_call
from canarytrace.canary.assignment import Request
from canarytrace.context import is_instrumented, scoped_attributes, scoped_deadline


@dataclass(frozen=True)
class Arm:
    fn: Callable[[Request], Any]
    model: str
    variant: str
    instrumented: bool


def make_arm(fn: Callable[[Request], Any], model: str | None, variant: str) -> Arm:
    """Check ``fn`` and name its model (``model``, else the callable's name)."""
    if not callable(fn):
        raise TypeError(f"the {variant} arm must be callable, got {type(fn).__name__}")
    name = model or getattr(fn, "__qualname__", None) or type(fn).__name__
    return Arm(fn=fn, model=name, variant=variant, instrumented=is_instrumented(fn))


@dataclass(frozen=True, slots=True)
class ArmCall:
    """One call to make: the arm, the request, its spans' scope and the timeout it is held to."""

    arm: Arm
    request: Request
    scope: Mapping[str, Any]
    timeout_s: float | None = None


def deadline_after(timeout_s: float | None) -> float | None:
    """The ``time.monotonic()`` deadline ``timeout_s`` from now (None: no deadline)."""
    return None if timeout_s is None else time.monotonic() + timeout_s


def run_arm(call: ArmCall, deadline: float | None = None) -> Any:
    """Call a sync arm. It cannot be interrupted: its span is marked a TimeoutError when the
    call ends after ``deadline``."""
    with _recorded(call, deadline) as answered:
        return answered(call.arm.fn(call.request))


async def arun_arm(call: ArmCall) -> Any:
    """Call an async arm; ``call.timeout_s`` cancels it (``asyncio.wait_for``)."""
    with _recorded(call, deadline_after(call.timeout_s)) as answered:
        return answered(await _within(call.arm.fn(call.request), call.timeout_s))


@contextmanager
def _recorded(call: ArmCall, deadline: float | None) -> Iterator[Callable[[Any], Any]]:
    """Enter the call's scope (and its ``llm_call`` span when the arm records none); yields
    the function that records the answer and returns it."""
    with scoped_attributes(call.scope), scoped_deadline(deadline):
        if call.arm.instrumented:
            yield _as_is
            return
        with llm_call(model=call.arm.model) as span:
            span.set_input(messages_of(call.request))
            yield _output_recorder(span)


def _as_is(answer: Any) -> Any:
    return answer


def _output_recorder(span: LlmCall) -> Callable[[Any], Any]:
    def answered(answer: Any) -> Any:
        span.set_output(answer)
        return answer

    return answered


def messages_of(request: Request) -> Any:
    """What an arm's span records as input: a request's ``messages`` (or ``prompt``) when it
    is a mapping that has them, else the request itself."""
    if isinstance(request, Mapping):
        for name in ("messages", "prompt"):
            if name in request:
                return request[name]
    return request


async def _within(result: Any, timeout_s: float | None) -> Any:
    """Await ``result`` (if it is awaitable) for at most ``timeout_s`` seconds."""
    if not inspect.isawaitable(result):
        return result
    if timeout_s is None:
        return await result
    return await asyncio.wait_for(result, timeout_s)
