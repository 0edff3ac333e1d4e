"""``@llm``: trace every call of a function that calls an LLM.

Works on functions, coroutines, generators and async generators (and methods). The prompt is
the ``messages=``/``prompt=`` argument or else the first positional one (after ``self``);
the return value (or the joined stream) is the answer. A stream's span starts at the call, in
the caller's context and scope, and ends when the stream is exhausted, closed or collected.
Exceptions are recorded and re-raised unchanged; a failure inside the SDK is logged once and
never reaches the caller.
"""

from __future__ import annotations

import functools
import inspect
import types
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from canarytrace import attributes as A
from canarytrace._safety import log_once
from canarytrace.calls import LlmCall, span_name, start_attributes, start_call
from canarytrace.context import INSTRUMENTED_MARKER
from canarytrace.streams import traced_async_stream, traced_stream

F = TypeVar("F", bound=Callable[..., Any])

_PROMPT_NAMES = ("messages", "prompt")
_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


def _prompt_parameter(fn: Callable[..., Any]) -> tuple[int | None, str | None]:
    """(position, name) of the parameter that holds the prompt."""
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return 0, None
    for index, param in enumerate(params):
        if param.name in _PROMPT_NAMES:
            return (index if param.kind in _POSITIONAL else None), param.name
    for index, param in enumerate(params):
        if param.name in ("self", "cls") and index == 0:
            continue
        if param.kind in _POSITIONAL:
            return index, param.name
        if param.kind is inspect.Parameter.VAR_POSITIONAL:
            return index, None
        break
    return None, None


class _Instrumentation:
    """What one decorated function records: its span name, start attributes, prompt argument."""

    __slots__ = ("name", "attributes", "position", "keyword")

    def __init__(self, fn: Callable[..., Any], name: str, attributes: Mapping[str, Any]) -> None:
        self.name = name
        self.attributes = attributes
        self.position, self.keyword = _prompt_parameter(fn)

    def prompt(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, bool]:
        if kwargs:
            for key in (self.keyword, *_PROMPT_NAMES):
                if key in kwargs:
                    return kwargs[key], True
        if self.position is not None and len(args) > self.position:
            return args[self.position], True
        return None, False

    def begin(self, args: tuple[Any, ...], kwargs: dict[str, Any],
              activate: bool = True) -> LlmCall | None:
        """Start the span and record the prompt; None when the SDK itself failed."""
        try:
            call = start_call(self.name, self.attributes)
            if call.recording:
                value, found = self.prompt(args, kwargs)
                if found:
                    call.set_input(value)
            if activate:
                call.activate()
            return call
        except Exception as exc:  # noqa: BLE001 - telemetry never raises
            log_once("could not start LLM span", exc)
            return None

    @staticmethod
    def finish(call: LlmCall, result: Any) -> None:
        call.deactivate()
        call.set_output(result)
        call.end()

    @staticmethod
    def fail(call: LlmCall, exc: BaseException) -> None:
        call.deactivate()
        if not isinstance(exc, GeneratorExit):
            call.record_error(exc)
        call.end()


def llm(model: str | Callable[..., Any] | None = None, *, route: str | None = None,
        cohort: str | None = None, provider: str | None = None,
        operation: str = A.OPERATION_CHAT) -> Any:
    """Decorate a function that calls an LLM; each call becomes a CLIENT span.

    Use as ``@llm(model="m", route="billing")`` (or bare ``@llm``).
    """
    if callable(model):
        return llm()(model)

    def decorate(fn: F) -> F:
        spec = _Instrumentation(fn, span_name(operation, model),
                                start_attributes(model, operation, route, cohort, provider))
        wrapper = _wrap(fn, spec)
        setattr(wrapper, INSTRUMENTED_MARKER, True)
        return wrapper  # type: ignore[return-value]

    return decorate


def _wrap(fn: Callable[..., Any], spec: _Instrumentation) -> Callable[..., Any]:
    if inspect.isasyncgenfunction(fn):
        return _async_generator_wrapper(fn, spec)
    if inspect.iscoroutinefunction(fn):
        return _coroutine_wrapper(fn, spec)
    return _function_wrapper(fn, spec)


def _function_wrapper(fn: Callable[..., Any], spec: _Instrumentation) -> Callable[..., Any]:
    """Plain functions, and generator functions: their span starts at the call (in the
    caller's context and scope) and ends with the stream."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        call = spec.begin(args, kwargs)
        if call is None:
            return fn(*args, **kwargs)
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            spec.fail(call, exc)
            raise
        if isinstance(result, types.GeneratorType):
            call.deactivate()
            return traced_stream(call, result)
        spec.finish(call, result)
        return result

    return wrapper


def _coroutine_wrapper(fn: Callable[..., Any], spec: _Instrumentation) -> Callable[..., Any]:
    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        call = spec.begin(args, kwargs)
        if call is None:
            return await fn(*args, **kwargs)
        try:
            result = await fn(*args, **kwargs)
        except BaseException as exc:
            spec.fail(call, exc)
            raise
        spec.finish(call, result)
        return result

    return wrapper


def _async_generator_wrapper(fn: Callable[..., Any], spec: _Instrumentation) -> Callable[..., Any]:
    """The span starts at the call, in the caller's context and scope, and ends with the stream."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        inner = fn(*args, **kwargs)
        return traced_async_stream(spec.begin(args, kwargs, activate=False), inner)

    return wrapper
