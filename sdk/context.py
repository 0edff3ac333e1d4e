"""Ambient attributes: what an enclosing scope (a canary arm, a route) stamps on LLM spans.

``Canary`` opens a scope per arm call; every LLM span started inside it (``@llm``,
``llm_call``, instrumented transformers) copies these attributes at start, so
nested spans carry the same variant, role, pair id, route and cohort. A scope may also carry
a deadline, which only the first LLM span started inside it (the arm's own) takes.

Below every scope lie the process's own attributes: the mesh labels ``CANARYTRACE_VARIANT``
and ``CANARYTRACE_ROLE`` (set by ``_runtime``); any scope overrides them.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from types import MappingProxyType
from typing import Any

_EMPTY: Mapping[str, Any] = MappingProxyType({})
_scope: contextvars.ContextVar[Mapping[str, Any]] = contextvars.ContextVar(
    "canarytrace_scope", default=_EMPTY
)

_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "canarytrace_deadline", default=None
)

_process: Mapping[str, Any] = _EMPTY

INSTRUMENTED_MARKER = "__canarytrace_llm__"


def set_process_attributes(attributes: Mapping[str, Any]) -> None:
    """Attributes every LLM span of this process gets, below any scope's (the mesh labels)."""
    global _process
    _process = MappingProxyType(dict(attributes)) if attributes else _EMPTY


@contextmanager
def scoped_attributes(attributes: Mapping[str, Any]) -> Iterator[None]:
    """Within this block, LLM spans get ``attributes`` (inner scopes override outer ones)."""
    token = _scope.set(MappingProxyType({**_scope.get(), **attributes}))
    try:
        yield
    finally:
        _scope.reset(token)


def current_scope() -> Mapping[str, Any]:
    """The attributes the innermost scope stamps on LLM spans started now, over the
    process's own."""
    scope = _scope.get()
    if not _process:
        return scope
    if not scope:
        return _process
    return MappingProxyType({**_process, **scope})


@contextmanager
def scoped_deadline(deadline: float | None) -> Iterator[None]:
    """Within this block, the next LLM span started takes ``deadline`` (``time.monotonic()``):
    if it ends later, it is marked a TimeoutError."""
    token = _deadline.set(deadline)
    try:
        yield
    finally:
        _deadline.reset(token)


def take_deadline() -> float | None:
    """The pending deadline, handed to one span only: the spans nested in it do not get it."""
    deadline = _deadline.get()
    if deadline is not None:
        _deadline.set(None)
    return deadline


def is_instrumented(fn: Any) -> bool:
    """True for callables wrapped by ``@canarytrace.llm`` (they record their own span)."""
    return bool(getattr(fn, INSTRUMENTED_MARKER, False))
