"""Map spans of other GenAI conventions onto the canonical GenAI attributes.

One class per convention (OpenInference, traceAI, OpenLLMetry, older GenAI), each
registered in ``CONVENTIONS`` and applied in order. A convention only fills canonical
keys that are still absent, and never removes the raw attributes it read from.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from typing import Any, ClassVar

from canarytrace import attributes as A
from canarytrace import messages

Attributes = dict[str, str]

_INVOCATION_PARAMETERS = {
    "temperature": A.GEN_AI_REQUEST_TEMPERATURE,
    "top_p": A.GEN_AI_REQUEST_TOP_P,
    "top_k": A.GEN_AI_REQUEST_TOP_K,
    "max_tokens": A.GEN_AI_REQUEST_MAX_TOKENS,
    "max_completion_tokens": A.GEN_AI_REQUEST_MAX_TOKENS,
    "seed": A.GEN_AI_REQUEST_SEED,
}


def put(attrs: Attributes, key: str, value: Any) -> None:
    """Set ``key`` unless the span already has a non-empty value for it."""
    if value in (None, "", [], {}) or attrs.get(key):
        return
    attrs[key] = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def copy(attrs: Attributes, source: str, target: str) -> None:
    put(attrs, target, attrs.get(source))


def indexed(attrs: Attributes, prefix: str) -> list[Attributes]:
    """Group flattened ``<prefix><i>.<rest>`` keys into one ``{rest: value}`` dict per index i."""
    groups: dict[int, Attributes] = {}
    for key, value in attrs.items():
        if not key.startswith(prefix):
            continue
        index, _, rest = key[len(prefix):].partition(".")
        if index.isdigit() and rest:
            groups.setdefault(int(index), {})[rest] = value
    return [groups[i] for i in sorted(groups)]


def parse_json(raw: str | None) -> Any:
    """The JSON value of ``raw``, or ``raw`` itself when it is not JSON."""
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def text_messages(text: str | None, role: str) -> list[messages.Message]:
    return [{"role": role, "parts": [messages.text_part(text)]}] if text else []


class Convention(ABC):
    """One foreign attribute convention: how to recognise its spans and translate them."""

    name: ClassVar[str]
    markers: ClassVar[tuple[str, ...]]
    """Attribute names whose presence says a span follows this convention."""

    def detects(self, attrs: Attributes) -> bool:
        return not frozenset(self.markers).isdisjoint(attrs)

    @abstractmethod
    def normalize(self, attrs: Attributes) -> None:
        """Add canonical GenAI attributes derived from this convention's attributes."""


class OpenInference(Convention):
    """Arize Phoenix: ``openinference.span.kind``, ``llm.*`` and flattened ``llm.*_messages``."""

    name = "openinference"
    kind_key = A.OPENINFERENCE_SPAN_KIND
    markers = (A.OPENINFERENCE_SPAN_KIND, A.OPENINFERENCE_MODEL_NAME,
               A.OPENINFERENCE_PROMPT_TOKENS)
    operations = {"LLM": A.OPERATION_CHAT, "TOOL": A.OPERATION_EXECUTE_TOOL,
                  "AGENT": A.OPERATION_INVOKE_AGENT, "EMBEDDING": "embeddings"}

    def normalize(self, attrs: Attributes) -> None:
        kind = attrs.get(self.kind_key, "LLM" if A.OPENINFERENCE_MODEL_NAME in attrs else "")
        kind = kind.upper()
        put(attrs, A.GEN_AI_OPERATION_NAME, self.operations.get(kind))
        copy(attrs, A.OPENINFERENCE_MODEL_NAME, A.GEN_AI_REQUEST_MODEL)
        copy(attrs, A.OPENINFERENCE_PROVIDER, A.GEN_AI_PROVIDER_NAME)
        copy(attrs, A.OPENINFERENCE_SYSTEM, A.GEN_AI_PROVIDER_NAME)
        copy(attrs, A.OPENINFERENCE_PROMPT_TOKENS, A.GEN_AI_USAGE_INPUT_TOKENS)
        copy(attrs, A.OPENINFERENCE_COMPLETION_TOKENS, A.GEN_AI_USAGE_OUTPUT_TOKENS)
        copy(attrs, A.OPENINFERENCE_SESSION_ID, A.GEN_AI_CONVERSATION_ID)
        self._invocation_parameters(attrs)
        if kind == "TOOL":
            copy(attrs, A.OPENINFERENCE_TOOL_NAME, A.GEN_AI_TOOL_NAME)
            copy(attrs, A.OPENINFERENCE_INPUT_VALUE, A.GEN_AI_TOOL_CALL_ARGUMENTS)
            copy(attrs, A.OPENINFERENCE_OUTPUT_VALUE, A.GEN_AI_TOOL_CALL_RESULT)
        elif kind == "LLM":
            self._messages(attrs)

    def _messages(self, attrs: Attributes) -> None:
        inputs = [self._message(m) for m in indexed(attrs, A.OPENINFERENCE_INPUT_MESSAGES_PREFIX)]
        outputs = [self._message(m) for m in indexed(attrs, A.OPENINFERENCE_OUTPUT_MESSAGES_PREFIX)]
        put(attrs, A.GEN_AI_INPUT_MESSAGES,
            inputs or text_messages(attrs.get(A.OPENINFERENCE_INPUT_VALUE), "user"))
        put(attrs, A.GEN_AI_OUTPUT_MESSAGES,
            outputs or text_messages(attrs.get(A.OPENINFERENCE_OUTPUT_VALUE), "assistant"))

    @staticmethod
    def _message(flat: Attributes) -> messages.Message:
        parts = []
        if flat.get(A.OPENINFERENCE_MESSAGE_CONTENT):
            parts.append(messages.text_part(flat[A.OPENINFERENCE_MESSAGE_CONTENT]))
        for content in indexed(flat, A.OPENINFERENCE_MESSAGE_CONTENTS + "."):
            if content.get(A.OPENINFERENCE_MESSAGE_CONTENT_TEXT):
                parts.append(messages.text_part(content[A.OPENINFERENCE_MESSAGE_CONTENT_TEXT]))
        for call in indexed(flat, A.OPENINFERENCE_MESSAGE_TOOL_CALLS + "."):
            parts.append(messages.tool_call_part(
                call.get(A.OPENINFERENCE_TOOL_CALL_FUNCTION_NAME, ""),
                parse_json(call.get(A.OPENINFERENCE_TOOL_CALL_FUNCTION_ARGUMENTS)),
                call.get(A.OPENINFERENCE_TOOL_CALL_ID)))
        return {"role": flat.get(A.OPENINFERENCE_MESSAGE_ROLE, "user"), "parts": parts}

    @staticmethod
    def _invocation_parameters(attrs: Attributes) -> None:
        params = parse_json(attrs.get(A.OPENINFERENCE_INVOCATION_PARAMETERS))
        if not isinstance(params, dict):
            return
        for name, key in _INVOCATION_PARAMETERS.items():
            if isinstance(params.get(name), (int, float)) and not isinstance(params[name], bool):
                put(attrs, key, str(params[name]))


class TraceAI(OpenInference):
    """FutureAGI traceAI: OpenInference's ``llm.*`` names under ``fi.span.kind``, plus raw I/O."""

    name = "traceai"
    kind_key = A.TRACEAI_SPAN_KIND
    markers = (A.TRACEAI_SPAN_KIND,)

    def normalize(self, attrs: Attributes) -> None:
        super().normalize(attrs)
        raw_input = parse_json(attrs.get(A.TRACEAI_RAW_INPUT))
        if isinstance(raw_input, dict) and raw_input.get("messages"):
            put(attrs, A.GEN_AI_INPUT_MESSAGES, messages.normalize(raw_input["messages"]))
        raw_output = parse_json(attrs.get(A.TRACEAI_RAW_OUTPUT))
        if isinstance(raw_output, dict) and raw_output.get("choices"):
            choice = raw_output["choices"][0]
            if isinstance(choice, dict) and isinstance(choice.get("message"), dict):
                output = dict(choice["message"], finish_reason=choice.get("finish_reason"))
                put(attrs, A.GEN_AI_OUTPUT_MESSAGES, messages.normalize(output, "assistant"))


class OpenLLMetry(Convention):
    """Traceloop OpenLLMetry: ``llm.request.type``, ``traceloop.*`` and ``gen_ai.prompt.<i>.*``."""

    name = "openllmetry"
    request_types = {"chat": A.OPERATION_CHAT, "completion": A.OPERATION_TEXT_COMPLETION,
                     "embedding": "embeddings"}
    span_kinds = {"tool": A.OPERATION_EXECUTE_TOOL, "agent": A.OPERATION_INVOKE_AGENT}
    markers = (A.TRACELOOP_SPAN_KIND, A.LLM_REQUEST_TYPE, A.LLM_USAGE_PROMPT_TOKENS,
               A.GEN_AI_PROMPT_PREFIX + "0." + A.LEGACY_MESSAGE_ROLE,
               A.GEN_AI_PROMPT_PREFIX + "0." + A.LEGACY_MESSAGE_CONTENT,
               A.GEN_AI_COMPLETION_PREFIX + "0." + A.LEGACY_MESSAGE_ROLE,
               A.GEN_AI_COMPLETION_PREFIX + "0." + A.LEGACY_MESSAGE_CONTENT)

    def normalize(self, attrs: Attributes) -> None:
        span_kind = attrs.get(A.TRACELOOP_SPAN_KIND, "")
        put(attrs, A.GEN_AI_OPERATION_NAME, self.span_kinds.get(span_kind)
            or self.request_types.get(attrs.get(A.LLM_REQUEST_TYPE, "")))
        copy(attrs, A.LLM_REQUEST_MODEL, A.GEN_AI_REQUEST_MODEL)
        copy(attrs, A.LLM_RESPONSE_MODEL, A.GEN_AI_RESPONSE_MODEL)
        copy(attrs, A.LLM_USAGE_PROMPT_TOKENS, A.GEN_AI_USAGE_INPUT_TOKENS)
        copy(attrs, A.LLM_USAGE_COMPLETION_TOKENS, A.GEN_AI_USAGE_OUTPUT_TOKENS)
        put(attrs, A.GEN_AI_INPUT_MESSAGES,
            [self._message(m, "user") for m in indexed(attrs, A.GEN_AI_PROMPT_PREFIX)])
        put(attrs, A.GEN_AI_OUTPUT_MESSAGES,
            [self._message(m, "assistant") for m in indexed(attrs, A.GEN_AI_COMPLETION_PREFIX)])
        if span_kind == "tool":
            copy(attrs, A.TRACELOOP_ENTITY_NAME, A.GEN_AI_TOOL_NAME)
            copy(attrs, A.TRACELOOP_ENTITY_INPUT, A.GEN_AI_TOOL_CALL_ARGUMENTS)
            copy(attrs, A.TRACELOOP_ENTITY_OUTPUT, A.GEN_AI_TOOL_CALL_RESULT)
        elif span_kind == "agent":
            copy(attrs, A.TRACELOOP_ENTITY_NAME, A.GEN_AI_AGENT_NAME)

    @staticmethod
    def _message(flat: Attributes, default_role: str) -> messages.Message:
        parts = []
        if flat.get(A.LEGACY_MESSAGE_CONTENT):
            parts.append(messages.text_part(flat[A.LEGACY_MESSAGE_CONTENT]))
        for call in indexed(flat, A.LEGACY_MESSAGE_TOOL_CALLS + "."):
            parts.append(messages.tool_call_part(
                call.get(A.LEGACY_TOOL_CALL_NAME, ""),
                parse_json(call.get(A.LEGACY_TOOL_CALL_ARGUMENTS)),
                call.get(A.LEGACY_TOOL_CALL_ID)))
        message: messages.Message = {"role": flat.get(A.LEGACY_MESSAGE_ROLE, default_role),
                                     "parts": parts}
        if flat.get(A.LEGACY_MESSAGE_FINISH_REASON):
            message["finish_reason"] = flat[A.LEGACY_MESSAGE_FINISH_REASON]
        return message


class LegacyGenAI(Convention):
    """GenAI semantic conventions before v1.37: ``gen_ai.system``, prompt/completion tokens."""

    name = "genai-legacy"
    markers = (A.GEN_AI_SYSTEM, A.GEN_AI_USAGE_PROMPT_TOKENS, A.GEN_AI_USAGE_COMPLETION_TOKENS,
               A.GEN_AI_PROMPT, A.GEN_AI_COMPLETION)

    def normalize(self, attrs: Attributes) -> None:
        copy(attrs, A.GEN_AI_SYSTEM, A.GEN_AI_PROVIDER_NAME)
        copy(attrs, A.GEN_AI_USAGE_PROMPT_TOKENS, A.GEN_AI_USAGE_INPUT_TOKENS)
        copy(attrs, A.GEN_AI_USAGE_COMPLETION_TOKENS, A.GEN_AI_USAGE_OUTPUT_TOKENS)
        if attrs.get(A.GEN_AI_PROMPT):
            put(attrs, A.GEN_AI_INPUT_MESSAGES,
                messages.normalize(parse_json(attrs[A.GEN_AI_PROMPT]), "user"))
        if attrs.get(A.GEN_AI_COMPLETION):
            put(attrs, A.GEN_AI_OUTPUT_MESSAGES,
                messages.normalize(parse_json(attrs[A.GEN_AI_COMPLETION]), "assistant"))


CONVENTIONS: tuple[Convention, ...] = (TraceAI(), OpenInference(), OpenLLMetry(), LegacyGenAI())
_ANY_MARKER = frozenset(marker for c in CONVENTIONS for marker in c.markers)


def normalize(attrs: Attributes) -> bool:
    """Add canonical GenAI attributes to ``attrs`` (in place); False when no convention applied."""
    if _ANY_MARKER.isdisjoint(attrs):
        return False
    applied = False
    for convention in CONVENTIONS:
        if convention.detects(attrs):
            convention.normalize(attrs)
            applied = True
    return applied
