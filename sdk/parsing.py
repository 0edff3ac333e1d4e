"""``parse_json()``: read the JSON an LLM answered, counting failures and retries on its span.

The JSON may be bare, inside a Markdown code fence, or surrounded by prose. Each failure adds
one to ``canary.parser.errors`` on the current LLM call's span; ``retry=True`` marks a parse of
a re-asked answer and adds one to ``canary.parser.retries``. Call it inside the LLM call
(``@llm`` function or ``llm_call`` block) whose answer it parses::

    @ct.llm(model="m")
    def extract(messages):
        for attempt in range(3):
            try:
                return ct.parse_json(client(messages), schema, retry=attempt > 0)
            except ct.JSONParseError as exc:
                messages = messages + [{"role": "user", "content": f"Invalid JSON: {exc}"}]
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

from opentelemetry import trace

from canarytrace import attributes as A
from canarytrace._safety import log_once
from canarytrace.calls import current_call

_FENCE = re.compile(r"```[ \t]*(?:[A-Za-z0-9_+-]*)[ \t]*\r?\n(.*?)```", re.DOTALL)
_OPENING = re.compile(r"[{\[]")
_decoder = json.JSONDecoder()


class JSONParseError(ValueError):
    """The text holds no JSON value (or none matching the schema).

    ``position``/``lineno``/``colno`` locate the syntax error in ``text`` when there is one;
    ``schema_errors`` lists schema violations as ``"$.path: message"``.
    """

    def __init__(self, message: str, text: str, position: int | None = None,
                 schema_errors: list[str] | None = None) -> None:
        self.text = text
        self.position = position
        self.lineno = self.colno = None
        if position is not None:
            self.lineno = text.count("\n", 0, position) + 1
            self.colno = position - text.rfind("\n", 0, position)
            message = f"{message} (line {self.lineno}, column {self.colno}, char {position})"
        self.schema_errors = schema_errors or []
        super().__init__(message)


def parse_json(text: str, schema: Mapping[str, Any] | None = None, *, retry: bool = False) -> Any:
    """The JSON value in ``text``, validated against ``schema`` (a JSON Schema) when given.

    Raises JSONParseError when there is none; ``retry=True`` counts this parse as a retry.
    """
    if retry:
        _count(A.CANARY_PARSER_RETRIES)
    try:
        value = _extract(text)
        if schema is not None:
            _validate(value, schema, text)
    except JSONParseError:
        _count(A.CANARY_PARSER_ERRORS)
        raise
    return value


def _candidates(text: str) -> Iterator[str]:
    """The whole text, then each fenced code block."""
    yield text
    for match in _FENCE.finditer(text):
        yield match.group(1)


def _extract(text: Any) -> Any:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    if not isinstance(text, str):
        raise JSONParseError(f"expected text, got {type(text).__name__}", str(text))
    for snippet in _candidates(text):
        try:
            return json.loads(snippet)
        except json.JSONDecodeError:
            pass
    found = _embedded_value(text)
    if found is not None:
        return found[0]
    raise _syntax_error(text)


def _embedded_value(text: str) -> tuple[Any] | None:
    """The first object or array that decodes, scanning from each ``{`` and ``[`` in order."""
    for match in _OPENING.finditer(text):
        try:
            value, _ = _decoder.raw_decode(text, match.start())
        except json.JSONDecodeError:
            continue
        return (value,)
    return None


def _syntax_error(text: str) -> JSONParseError:
    """The error to report: where the first fenced block, or else the first ``{``/``[``, breaks."""
    fence = _FENCE.search(text)
    opening = _OPENING.search(text)
    if fence is None and opening is None:
        return JSONParseError("no JSON object or array found in the text", text)
    try:
        if fence is not None:
            json.loads(fence.group(1))
        else:
            _decoder.raw_decode(text, opening.start())
    except json.JSONDecodeError as exc:
        offset = fence.start(1) if fence is not None else 0
        return JSONParseError(f"invalid JSON: {exc.msg}", text, exc.pos + offset)
    return JSONParseError("invalid JSON", text)


def _validate(value: Any, schema: Mapping[str, Any], text: str) -> None:
    try:
        import jsonschema
    except ImportError as exc:
        raise ImportError("parse_json(schema=...) needs jsonschema: "
                          "pip install jsonschema (or canarytrace[evaluators])") from exc
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = sorted(validator.iter_errors(value), key=lambda e: list(e.absolute_path))
    if errors:
        described = [f"{e.json_path}: {e.message}" for e in errors]
        raise JSONParseError(f"JSON does not match the schema: {described[0]}", text,
                             schema_errors=described)


def _count(key: str) -> None:
    """Add one to ``key`` on the current LLM call's span (else on the current span)."""
    try:
        call = current_call()
        if call is not None:
            if key == A.CANARY_PARSER_ERRORS:
                call.add_parser_error()
            else:
                call.add_parser_retry()
            return
        span = trace.get_current_span()
        if span.is_recording():
            previous = (getattr(span, "attributes", None) or {}).get(key, 0)
            span.set_attribute(key, int(previous) + 1)
    except Exception as exc:  # noqa: BLE001 - telemetry never raises
        log_once("could not count a parser event", exc)
