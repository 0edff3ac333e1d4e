"""``expect()``: what a correct answer looks like, written on the span for evaluators.

``expect(...)`` sets the ``canary.expect.*`` attributes on the current span and on the
current LLM call's span. Used as a context manager it also stamps them on every LLM span
started inside the block, so expectations can be stated before the call is made::

    with ct.expect(json_schema=schema, instructions=["detectable_format:json_format"]):
        answer = generate(messages)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any

from opentelemetry import trace

from canarytrace import attributes as A
from canarytrace._safety import log_once
from canarytrace.calls import current_call
from canarytrace.capture import redacted_text, to_json
from canarytrace.context import scoped_attributes


def _instruction(item: Any) -> dict[str, Any] | None:
    """``"id"``, ``("id", {kwargs})`` or ``{"id": ..., "kwargs": {...}}`` as the stored shape."""
    if isinstance(item, str):
        return {"id": item, "kwargs": {}}
    if isinstance(item, Mapping) and isinstance(item.get("id"), str):
        return {"id": item["id"], "kwargs": dict(item.get("kwargs") or {})}
    if isinstance(item, Sequence) and len(item) == 2 and isinstance(item[0], str):
        return {"id": item[0], "kwargs": dict(item[1] or {})}
    log_once(f"ignored an instruction that is not an id or {{'id', 'kwargs'}}: {item!r}")
    return None


def _tool(item: Any) -> dict[str, Any] | None:
    """``"name"``, ``{"name", "arguments"}`` or BFCL's ``{"func": {"param": [...]}}``."""
    if isinstance(item, str):
        return {"name": item}
    if isinstance(item, Mapping) and isinstance(item.get("name"), str):
        return {"name": item["name"], **({"arguments": item["arguments"]}
                                         if "arguments" in item else {})}
    if isinstance(item, Mapping) and len(item) == 1:
        (name, allowed), = item.items()
        if isinstance(name, str) and isinstance(allowed, Mapping):
            return {name: dict(allowed)}
    log_once(f"ignored an expected tool call without a name: {item!r}")
    return None


def _schema(schema: Any) -> str:
    """JSON text of a schema given as a dict, JSON text, or a pydantic model class."""
    if isinstance(schema, str):
        return schema
    model_json_schema = getattr(schema, "model_json_schema", None)
    if callable(model_json_schema):
        schema = model_json_schema()
    return to_json(schema)


def expectation_attributes(instructions: Sequence[Any] | None = None,
                           json_schema: Any = None,
                           tools: Sequence[Any] | None = None,
                           reference: str | None = None,
                           task: str | None = None) -> dict[str, str]:
    """The ``canary.expect.*`` attributes for these expectations (JSON strings)."""
    found: dict[str, str] = {}
    if instructions is not None:
        items = [i for i in map(_instruction, instructions) if i is not None]
        found[A.CANARY_EXPECT_INSTRUCTIONS] = to_json(items)
    if json_schema is not None:
        found[A.CANARY_EXPECT_JSON_SCHEMA] = _schema(json_schema)
    if tools is not None:
        found[A.CANARY_EXPECT_TOOLS] = to_json([t for t in map(_tool, tools) if t is not None])
    if reference is not None:
        found[A.CANARY_EXPECT_REFERENCE] = redacted_text(str(reference))
    if task is not None:
        found[A.CANARY_TASK] = redacted_text(str(task))
    return found


class Expectations(AbstractContextManager["Expectations"]):
    """Expectations already set on the current spans; ``with`` extends them to calls inside."""

    def __init__(self, attributes: Mapping[str, str]) -> None:
        self.attributes = dict(attributes)
        self._scopes: list[AbstractContextManager[None]] = []

    def __enter__(self) -> Expectations:
        scope = scoped_attributes(self.attributes)
        scope.__enter__()
        self._scopes.append(scope)
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._scopes.pop().__exit__(*exc_info)


def expect(instructions: Sequence[Any] | None = None, json_schema: Any = None,
           tools: Sequence[Any] | None = None, reference: str | None = None,
           task: str | None = None) -> Expectations:
    """Record what the answer must satisfy: IFEval instructions, a JSON Schema, tool calls,
    a reference answer, the task statement."""
    try:
        found = expectation_attributes(instructions, json_schema, tools, reference, task)
        _set_on_current_spans(found)
    except Exception as exc:  # noqa: BLE001 - telemetry never raises
        log_once("could not record expectations", exc)
        found = {}
    return Expectations(found)


def _set_on_current_spans(found: Mapping[str, str]) -> None:
    spans = [trace.get_current_span()]
    call = current_call()
    if call is not None and call.span is not spans[0]:
        spans.append(call.span)
    for span in spans:
        if span.is_recording():
            span.set_attributes(found)
