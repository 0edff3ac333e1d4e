"""Chat messages in the GenAI semantic-convention JSON shape.

``gen_ai.input.messages`` / ``gen_ai.output.messages`` hold a JSON list of
``{"role": ..., "parts": [{"type": "text", "content": ...} |
{"type": "tool_call", "id": ..., "name": ..., "arguments": {...}}], "finish_reason": ...}``.
Writers normalize whatever the user passed; readers pull text and tool calls back out.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

Message = dict[str, Any]

TEXT = "text"
TOOL_CALL = "tool_call"
TOOL_CALL_RESPONSE = "tool_call_response"


def text_part(content: str) -> dict[str, Any]:
    return {"type": TEXT, "content": content}


def tool_call_part(name: str, arguments: Any, call_id: str | None = None) -> dict[str, Any]:
    part: dict[str, Any] = {"type": TOOL_CALL, "name": name, "arguments": arguments}
    if call_id:
        part["id"] = call_id
    return part


def _content_block_part(block: Any) -> dict[str, Any]:
    """One item of a content list: OpenAI/Anthropic text blocks and Anthropic tool_use blocks."""
    if not isinstance(block, Mapping):
        return text_part(str(block))
    if block.get("type") == "tool_use":
        return tool_call_part(block.get("name", ""), block.get("input"), block.get("id"))
    return text_part(block.get("text", block.get("content", "")))


def _normalize_one(message: Any, default_role: str) -> Message:
    if isinstance(message, str):
        return {"role": default_role, "parts": [text_part(message)]}
    if not isinstance(message, (dict, Mapping)):  # dict first: skips the slower ABC check
        return {"role": default_role, "parts": [text_part(str(message))]}
    if "parts" in message:
        return dict(message)
    # OpenAI-style {"role", "content", "tool_calls"}
    parts: list[dict[str, Any]] = []
    content = message.get("content")
    if isinstance(content, str) and content:
        parts.append(text_part(content))
    elif isinstance(content, list):
        parts += [_content_block_part(c) for c in content]
    for call in message.get("tool_calls") or []:
        fn = call.get("function", call)
        args = fn.get("arguments")
        if isinstance(args, str):
            with contextlib.suppress(ValueError):
                args = json.loads(args)
        parts.append(tool_call_part(fn.get("name", ""), args, call.get("id")))
    normalized: Message = {"role": message.get("role", default_role), "parts": parts}
    if message.get("finish_reason"):
        normalized["finish_reason"] = message["finish_reason"]
    return normalized


def normalize(value: Any, default_role: str = "user") -> list[Message]:
    """Turn a string, one message or a list of messages (OpenAI or GenAI shape) into GenAI shape."""
    if value is None:
        return []
    if isinstance(value, (list, tuple)):  # the common case, before the slower ABC checks
        return [_normalize_one(m, default_role) for m in value]
    if isinstance(value, (str, Mapping)):
        return [_normalize_one(value, default_role)]
    if isinstance(value, Iterable):
        return [_normalize_one(m, default_role) for m in value]
    return [_normalize_one(value, default_role)]


def loads(raw: str | None) -> list[Message]:
    """Parse a stored messages attribute; anything unparsable is one text message."""
    if not raw:
        return []
    try:
        value = json.loads(raw)
        return normalize(value, default_role="assistant")
    except (ValueError, RecursionError):  # not JSON, or nested past what a reader can parse
        return [{"role": "assistant", "parts": [text_part(raw)]}]


def text_of(messages: list[Message], role: str | None = None) -> str:
    """The concatenated text parts of ``messages`` (optionally of one role only)."""
    chunks = []
    for message in messages:
        if role and message.get("role") != role:
            continue
        chunks += [str(p.get("content", "")) for p in message.get("parts", [])
                   if p.get("type") == TEXT]
    return "\n".join(chunks)


def tool_calls_of(messages: list[Message]) -> list[dict[str, Any]]:
    """The ``{"name", "arguments"}`` tool calls found in ``messages``, in order."""
    calls = []
    for message in messages:
        for part in message.get("parts", []):
            if part.get("type") == TOOL_CALL:
                args = part.get("arguments")
                if isinstance(args, str):
                    with contextlib.suppress(ValueError):
                        args = json.loads(args)
                calls.append({"name": part.get("name", ""), "arguments": args})
    return calls
