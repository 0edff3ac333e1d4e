"""What an LLM call returned, read out of the shapes clients return.

Handles plain text, GenAI/OpenAI message lists, OpenAI chat/completion responses (dicts or
pydantic objects with ``model_dump``), Anthropic messages, Ollama chat responses and Hugging
Face pipeline outputs. Anything else is recorded as its JSON (or ``str``) text.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from canarytrace import messages

ASSISTANT = "assistant"


@dataclass
class Response:
    """The parts of a return value that go on an LLM span."""

    messages: list[messages.Message] = field(default_factory=list)
    input_tokens: int | None = None
    output_tokens: int | None = None
    finish_reasons: list[str] = field(default_factory=list)
    response_model: str | None = None
    response_id: str | None = None


def assistant_text(text: str, finish_reason: str | None = None) -> list[messages.Message]:
    message: messages.Message = {"role": ASSISTANT, "parts": [messages.text_part(text)]}
    if finish_reason:
        message["finish_reason"] = finish_reason
    return [message]


def as_mapping(value: Any) -> Mapping[str, Any] | None:
    """A dict view of a mapping or a pydantic-style object (``model_dump``); else None."""
    if isinstance(value, Mapping):
        return value
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        dumped = dump()
        return dumped if isinstance(dumped, Mapping) else None
    return None


def read_usage(usage: Any) -> tuple[int | None, int | None]:
    """(input, output) token counts from an OpenAI, Anthropic or GenAI ``usage``."""
    usage = as_mapping(usage) if usage is not None else None
    if not usage:
        return None, None
    return (_first_int(usage, "prompt_tokens", "input_tokens"),
            _first_int(usage, "completion_tokens", "output_tokens"))


def _first_int(mapping: Mapping[str, Any], *keys: str) -> int | None:
    for key in keys:
        value = mapping.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def parse_response(output: Any) -> Response:
    """Read messages, token counts, finish reasons and model out of ``output``."""
    if output is None:
        return Response()
    if isinstance(output, str):
        return Response(assistant_text(output))
    if isinstance(output, (list, tuple)):
        return _from_list(output)
    mapping = as_mapping(output)
    if mapping is None:
        return Response(assistant_text(str(output)))
    return _from_mapping(mapping)


def _from_list(items: list[Any] | tuple[Any, ...]) -> Response:
    if items and all(isinstance(i, Mapping) and "generated_text" in i for i in items):
        return Response(_generated_text_messages(items))
    return Response(messages.normalize(list(items), default_role=ASSISTANT))


def _generated_text_messages(items: Any) -> list[messages.Message]:
    """Hugging Face pipeline output: text, or the chat whose last message is the answer."""
    out: list[messages.Message] = []
    for item in items:
        generated = item["generated_text"]
        if isinstance(generated, list):
            out += messages.normalize(generated[-1:], default_role=ASSISTANT)
        else:
            out += assistant_text(str(generated))
    return out


def _from_mapping(data: Mapping[str, Any]) -> Response:
    if "choices" in data:
        response = _from_choices(data["choices"] or [])
    elif isinstance(data.get("message"), Mapping):  # Ollama chat
        response = Response(_one_message(data["message"], data.get("done_reason")))
        response.input_tokens = _first_int(data, "prompt_eval_count")
        response.output_tokens = _first_int(data, "eval_count")
    elif "content" in data or "parts" in data or "role" in data:  # one message, Anthropic's too
        response = Response(_one_message(data, data.get("stop_reason")))
    elif "generated_text" in data:
        response = Response(_generated_text_messages([data]))
    else:
        response = Response(assistant_text(json.dumps(data, default=str)))
    if "usage" in data:
        tokens = read_usage(data["usage"])
        response.input_tokens, response.output_tokens = tokens
    response.finish_reasons = [m["finish_reason"] for m in response.messages
                               if m.get("finish_reason")]
    response.response_model = data.get("model") if isinstance(data.get("model"), str) else None
    response.response_id = data.get("id") if isinstance(data.get("id"), str) else None
    return response


def _one_message(message: Mapping[str, Any], finish_reason: Any) -> list[messages.Message]:
    normalized = messages.normalize(message, default_role=ASSISTANT)
    if finish_reason and normalized and not normalized[0].get("finish_reason"):
        normalized[0]["finish_reason"] = str(finish_reason)
    return normalized


def _from_choices(choices: list[Any]) -> Response:
    """OpenAI chat completions (``message``) and legacy completions (``text``)."""
    out: list[messages.Message] = []
    for choice in choices:
        choice = as_mapping(choice) or {}
        reason = choice.get("finish_reason")
        if isinstance(choice.get("message"), Mapping):
            out += _one_message(choice["message"], reason)
        else:
            out += assistant_text(str(choice.get("text", "")), reason)
    return Response(out)


def chunk_text(chunk: Any) -> str:
    """The text a streamed chunk adds: a str, an OpenAI delta, or a ``text``/``content`` field."""
    if isinstance(chunk, str):
        return chunk
    if isinstance(chunk, bytes):
        return chunk.decode("utf-8", "replace")
    data = as_mapping(chunk)
    if data is None:
        return str(chunk)
    if data.get("choices"):
        choice = as_mapping(data["choices"][0]) or {}
        delta = as_mapping(choice.get("delta")) or {}
        return str(delta.get("content") or choice.get("text") or "")
    for key in ("text", "content", "token", "response"):
        if isinstance(data.get(key), str):
            return data[key]
    return ""


def chunk_usage(chunk: Any) -> tuple[int | None, int | None]:
    """Token counts carried by a streamed chunk (OpenAI sends them on the last one)."""
    if isinstance(chunk, (str, bytes)):
        return None, None
    data = as_mapping(chunk)
    if not data or data.get("usage") is None:
        return None, None
    return read_usage(data["usage"])
