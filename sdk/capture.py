"""Captured content: the JSON text of messages and tool payloads, after the ``redact`` hook.

Every function returns None when ``init(capture_content=False)``; callers then set nothing.
Values JSON cannot encode are recorded as their ``str()``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from canarytrace import messages
from canarytrace._runtime import Redactor, state
from canarytrace._safety import log_once

_PART_KEYS_KEPT = frozenset({"type", "id", "name"})


def _unserializable(value: Any) -> str:
    log_once(f"recorded str() of unserializable {type(value).__name__}")
    return str(value)


_encoder = json.JSONEncoder(ensure_ascii=False, default=_unserializable)


def to_json(value: Any) -> str:
    """``value`` as JSON text; objects JSON cannot encode become their ``str()``."""
    return _encoder.encode(value)


def redact_tree(value: Any, redact: Redactor) -> Any:
    """A copy of ``value`` with ``redact`` applied to every string in it."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {k: redact_tree(v, redact) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_tree(v, redact) for v in value]
    return value


def _redact_message(message: messages.Message, redact: Redactor) -> messages.Message:
    parts = [{k: v if k in _PART_KEYS_KEPT else redact_tree(v, redact) for k, v in p.items()}
             for p in message.get("parts", [])]
    return {**message, "parts": parts}


def messages_json(normalized: list[messages.Message]) -> str | None:
    """The ``gen_ai.*.messages`` attribute value for already-normalized messages."""
    settings = state.settings
    if not settings.capture_content:
        return None
    if settings.redact is not None:
        normalized = [_redact_message(m, settings.redact) for m in normalized]
    return to_json(normalized)


def content_json(value: Any) -> str | None:
    """A captured payload (tool arguments, tool results) as JSON text, redacted."""
    settings = state.settings
    if not settings.capture_content:
        return None
    if settings.redact is not None:
        value = redact_tree(value, settings.redact)
    return to_json(value)


def redacted_text(text: str) -> str:
    """``text`` after the redaction hook (used for expectations, which are always recorded)."""
    redact = state.settings.redact
    return redact(text) if redact is not None else text
