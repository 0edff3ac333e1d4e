"""Find the JSON value in a model's output: the whole text, a code fence, or inside prose."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

_FENCE = re.compile(r"```[ \t]*(?P<lang>[\w+-]*)[^\n]*\n(?P<body>.*?)```", re.DOTALL)
_OPENERS = re.compile(r"[{\[]")
_decoder = json.JSONDecoder()


@dataclass(frozen=True)
class ParseFailure:
    """Why the JSON did not parse, located in the whole output (1-based line and column)."""

    message: str
    line: int
    column: int
    offset: int

    def describe(self) -> str:
        return f"{self.message} at line {self.line}, column {self.column}"


@dataclass(frozen=True)
class Extraction:
    """The outcome of looking for JSON: a value, a parse failure, or nothing JSON-like."""

    found: bool
    value: Any = None
    source: str = ""
    """Where the value was: ``whole`` text, ``fence`` or ``prose``."""
    failure: ParseFailure | None = None


def _position(text: str, offset: int) -> tuple[int, int]:
    line = text.count("\n", 0, offset) + 1
    column = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return line, column


def _failure(text: str, start: int, error: json.JSONDecodeError) -> ParseFailure:
    offset = start + error.pos
    line, column = _position(text, offset)
    return ParseFailure(error.msg, line, column, offset)


def _parse_at(text: str, start: int, end: int) -> tuple[Any, ParseFailure | None]:
    """Parse ``text[start:end]`` as one complete JSON document (surrounding blanks allowed)."""
    try:
        return json.loads(text[start:end]), None
    except json.JSONDecodeError as error:
        return None, _failure(text, start, error)


def _from_fences(text: str) -> Extraction | None:
    fences = list(_FENCE.finditer(text))
    tagged = [f for f in fences if f.group("lang").lower() in ("json", "jsonc", "json5")]
    for fence in tagged + [f for f in fences if f not in tagged]:
        value, failure = _parse_at(text, fence.start("body"), fence.end("body"))
        if failure is None:
            return Extraction(True, value, "fence")
    if tagged:
        _, failure = _parse_at(text, tagged[0].start("body"), tagged[0].end("body"))
        return Extraction(False, failure=failure, source="fence")
    return None


def _from_prose(text: str) -> Extraction | None:
    """The longest JSON object/array embedded in prose; else the failure that got furthest.

    A value nested inside a broken outer one (``{"a": {"b": 1}, "c": }``) does not count:
    the outer value's parse error is what the author needs to see.
    """
    longest: tuple[int, Any] | None = None
    furthest: tuple[int, ParseFailure] | None = None
    resume_at = broken_until = 0
    for opener in _OPENERS.finditer(text):
        start = opener.start()
        if start < resume_at:
            continue
        try:
            value, end = _decoder.raw_decode(text, start)
        except json.JSONDecodeError as error:
            failure = _failure(text, 0, error)
            broken_until = max(broken_until, failure.offset)
            if furthest is None or failure.offset - start > furthest[0]:
                furthest = (failure.offset - start, failure)
            continue
        resume_at = end
        if end > broken_until and (longest is None or end - start > longest[0]):
            longest = (end - start, value)
    if longest is not None:
        return Extraction(True, longest[1], "prose")
    if furthest is not None:
        return Extraction(False, failure=furthest[1], source="prose")
    return None


def extract_json(text: str) -> Extraction:
    """Look for JSON in ``text``: the whole text, then code fences, then objects/arrays in prose."""
    if not text.strip():
        return Extraction(False)
    value, whole_failure = _parse_at(text, 0, len(text))
    if whole_failure is None:
        return Extraction(True, value, "whole")
    return _from_fences(text) or _from_prose(text) or Extraction(False)
