"""Map spans of other GenAI conventions onto the canonical GenAI attributes.

One class per convention (OpenInference, traceAI, OpenLLMetry, older GenAI), each
registered in ``CONVENTIONS`` and applied in order. A convention fills canonical keys
that are still absent and never removes the raw attributes it read from (one exception:
traceAI writes the *response* model into ``gen_ai.request.model``; the request model from
its ``gen_ai.request.parameters`` replaces it, and the value moves to the response model).

``MAPPINGS`` is the conformance table: every attribute each convention maps, and to what.
Its ``COPY`` rows are plain renames, applied here from the table itself and shipped as
OTTL statements for the OpenTelemetry Collector's transform processor
(docker/otel-collector-config.yaml, checked against this table by the tests); the other
rows need code (JSON, flattened lists) and are done here only.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

import orjson

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

PROVIDER_NAMES = {
    "openai": "openai", "azure": "azure.ai.openai", "azureopenai": "azure.ai.openai",
    "azure openai": "azure.ai.openai", "az.ai.openai": "azure.ai.openai",
    "az.ai.inference": "azure.ai.inference", "anthropic": "anthropic",
    "aws": "aws.bedrock", "bedrock": "aws.bedrock", "aws bedrock": "aws.bedrock",
    "aws.bedrock": "aws.bedrock", "cohere": "cohere", "mistral": "mistral_ai",
    "mistralai": "mistral_ai", "mistral_ai": "mistral_ai", "groq": "groq",
    "google": "gcp.gen_ai", "gemini": "gcp.gemini", "vertex_ai": "gcp.vertex_ai",
    "vertexai": "gcp.vertex_ai", "vertex ai": "gcp.vertex_ai", "deepseek": "deepseek",
    "perplexity": "perplexity", "xai": "x_ai", "x_ai": "x_ai", "watsonx": "ibm.watsonx.ai",
    "ibm": "ibm.watsonx.ai", "ollama": "ollama", "huggingface": "huggingface",
}
"""``gen_ai.system`` / ``llm.provider`` / ``llm.system`` values (lower-cased) -> the GenAI
conventions' ``gen_ai.provider.name``; other values are lower-cased."""


def provider_name(value: str) -> str:
    """The conventions' provider name for a ``gen_ai.system``-style value ("OpenAI" -> openai)."""
    key = value.strip().lower()
    return PROVIDER_NAMES.get(key, key)


# --- the conformance table ---------------------------------------------------------------

COPY = "copy"
"""The value as is."""
HOW = {
    COPY: "copied",
    "provider": "lower-cased to the conventions' provider name",
    "json_field": "a field of the JSON object",
    "json_list": "wrapped in a JSON list",
    "messages": "flattened messages rebuilt as GenAI JSON messages",
    "tools": "tool definitions collected as one JSON list",
    "override": "replaces the value (traceAI puts the response model there)",
    "operation": "span kind mapped to the operation name",
    "text": "text wrapped as one message (when there are no structured messages)",
    "finish_reasons": "per-choice finish reasons collected as a JSON list",
}


@dataclass(frozen=True)
class Mapping:
    """One row of the conformance table: ``source`` of ``convention`` becomes ``target``."""

    convention: str
    source: str
    target: str
    how: str = COPY
    detail: str = ""

    def describe(self) -> str:
        return HOW[self.how] + (f" ({self.detail})" if self.detail else "")


OI, TRACEAI, OPENLLMETRY, LEGACY = "openinference", "traceai", "openllmetry", "genai-legacy"
MAPPINGS: tuple[Mapping, ...] = (
    Mapping(OI, A.OPENINFERENCE_SPAN_KIND, A.GEN_AI_OPERATION_NAME, "operation",
            "LLM -> chat, TOOL -> execute_tool, AGENT -> invoke_agent"),
    Mapping(OI, A.OPENINFERENCE_INVOCATION_PARAMETERS, A.GEN_AI_REQUEST_MODEL, "json_field",
            A.INVOCATION_PARAMETER_MODEL),
    Mapping(OI, A.OPENINFERENCE_MODEL_NAME, A.GEN_AI_RESPONSE_MODEL),
    Mapping(OI, A.OPENINFERENCE_MODEL_NAME, A.GEN_AI_REQUEST_MODEL, COPY,
            "only without a model in the invocation parameters"),
    Mapping(OI, A.OPENINFERENCE_INVOCATION_PARAMETERS, A.GEN_AI_REQUEST_TEMPERATURE,
            "json_field", "temperature; likewise top_p, top_k, max_tokens, seed"),
    Mapping(OI, A.OPENINFERENCE_PROVIDER, A.GEN_AI_PROVIDER_NAME, "provider"),
    Mapping(OI, A.OPENINFERENCE_SYSTEM, A.GEN_AI_PROVIDER_NAME, "provider"),
    Mapping(OI, A.OPENINFERENCE_PROMPT_TOKENS, A.GEN_AI_USAGE_INPUT_TOKENS),
    Mapping(OI, A.OPENINFERENCE_COMPLETION_TOKENS, A.GEN_AI_USAGE_OUTPUT_TOKENS),
    Mapping(OI, A.OPENINFERENCE_SESSION_ID, A.GEN_AI_CONVERSATION_ID),
    Mapping(OI, A.OPENINFERENCE_FINISH_REASON, A.GEN_AI_RESPONSE_FINISH_REASONS, "json_list"),
    Mapping(OI, A.OPENINFERENCE_INPUT_MESSAGES_PREFIX + "<i>.message.*",
            A.GEN_AI_INPUT_MESSAGES, "messages", "role, content, contents, tool_calls"),
    Mapping(OI, A.OPENINFERENCE_OUTPUT_MESSAGES_PREFIX + "<i>.message.*",
            A.GEN_AI_OUTPUT_MESSAGES, "messages", "with llm.finish_reason"),
    Mapping(OI, A.OPENINFERENCE_INPUT_VALUE, A.GEN_AI_INPUT_MESSAGES, "text"),
    Mapping(OI, A.OPENINFERENCE_OUTPUT_VALUE, A.GEN_AI_OUTPUT_MESSAGES, "text"),
    Mapping(OI, A.OPENINFERENCE_TOOLS_PREFIX + "<i>." + A.OPENINFERENCE_TOOL_JSON_SCHEMA,
            A.GEN_AI_TOOL_DEFINITIONS, "tools"),
    Mapping(OI, A.OPENINFERENCE_TOOL_NAME, A.GEN_AI_TOOL_NAME, COPY, "TOOL spans"),
    Mapping(OI, A.OPENINFERENCE_INPUT_VALUE, A.GEN_AI_TOOL_CALL_ARGUMENTS, COPY, "TOOL spans"),
    Mapping(OI, A.OPENINFERENCE_OUTPUT_VALUE, A.GEN_AI_TOOL_CALL_RESULT, COPY, "TOOL spans"),
    Mapping(TRACEAI, A.TRACEAI_GEN_AI_SPAN_KIND, A.GEN_AI_OPERATION_NAME, "operation",
            "also fi.span.kind (before 0.1.10)"),
    Mapping(TRACEAI, A.TRACEAI_REQUEST_PARAMETERS, A.GEN_AI_REQUEST_MODEL, "override",
            A.INVOCATION_PARAMETER_MODEL),
    Mapping(TRACEAI, A.GEN_AI_REQUEST_MODEL, A.GEN_AI_RESPONSE_MODEL, COPY,
            "when the request parameters name another model"),
    Mapping(TRACEAI, A.TRACEAI_INPUT_MESSAGES_PREFIX + "<i>.message.*",
            A.GEN_AI_INPUT_MESSAGES, "messages", "also llm.input_messages (before 0.1.10)"),
    Mapping(TRACEAI, A.TRACEAI_OUTPUT_MESSAGES_PREFIX + "<i>.message.*",
            A.GEN_AI_OUTPUT_MESSAGES, "messages"),
    Mapping(TRACEAI, A.OPENINFERENCE_OUTPUT_VALUE, A.GEN_AI_OUTPUT_MESSAGES, "text",
            "streamed answers"),
    Mapping(TRACEAI, A.TRACEAI_TOOL_DEFINITIONS_PREFIX + "<i>." + A.OPENINFERENCE_TOOL_JSON_SCHEMA,
            A.GEN_AI_TOOL_DEFINITIONS, "tools"),
    Mapping(TRACEAI, A.TRACEAI_RAW_INPUT, A.GEN_AI_INPUT_MESSAGES, "messages",
            "its messages, before 0.1.10"),
    Mapping(TRACEAI, A.TRACEAI_RAW_OUTPUT, A.GEN_AI_OUTPUT_MESSAGES, "messages",
            "its first choice, before 0.1.10"),
    Mapping(OPENLLMETRY, A.LLM_REQUEST_TYPE, A.GEN_AI_OPERATION_NAME, "operation",
            "chat, completion -> text_completion; traceloop.span.kind tool/agent"),
    Mapping(OPENLLMETRY, A.LLM_REQUEST_MODEL, A.GEN_AI_REQUEST_MODEL),
    Mapping(OPENLLMETRY, A.LLM_RESPONSE_MODEL, A.GEN_AI_RESPONSE_MODEL),
    Mapping(OPENLLMETRY, A.LLM_USAGE_PROMPT_TOKENS, A.GEN_AI_USAGE_INPUT_TOKENS),
    Mapping(OPENLLMETRY, A.LLM_USAGE_COMPLETION_TOKENS, A.GEN_AI_USAGE_OUTPUT_TOKENS),
    Mapping(OPENLLMETRY, A.GEN_AI_PROMPT_PREFIX + "<i>.*", A.GEN_AI_INPUT_MESSAGES,
            "messages", "role, content, tool_calls"),
    Mapping(OPENLLMETRY, A.GEN_AI_COMPLETION_PREFIX + "<i>.*", A.GEN_AI_OUTPUT_MESSAGES,
            "messages", "role, content, tool_calls, finish_reason"),
    Mapping(OPENLLMETRY, A.GEN_AI_COMPLETION_PREFIX + "<i>." + A.LEGACY_MESSAGE_FINISH_REASON,
            A.GEN_AI_RESPONSE_FINISH_REASONS, "finish_reasons"),
    Mapping(OPENLLMETRY, A.LLM_REQUEST_FUNCTIONS_PREFIX + "<i>.{name,description,parameters}",
            A.GEN_AI_TOOL_DEFINITIONS, "tools"),
    Mapping(OPENLLMETRY, A.TRACELOOP_ENTITY_NAME, A.GEN_AI_TOOL_NAME, COPY, "tool spans"),
    Mapping(OPENLLMETRY, A.TRACELOOP_ENTITY_INPUT, A.GEN_AI_TOOL_CALL_ARGUMENTS, COPY,
            "tool spans"),
    Mapping(OPENLLMETRY, A.TRACELOOP_ENTITY_OUTPUT, A.GEN_AI_TOOL_CALL_RESULT, COPY,
            "tool spans"),
    Mapping(OPENLLMETRY, A.TRACELOOP_ENTITY_NAME, A.GEN_AI_AGENT_NAME, COPY, "agent spans"),
    Mapping(LEGACY, A.GEN_AI_SYSTEM, A.GEN_AI_PROVIDER_NAME, "provider"),
    Mapping(LEGACY, A.GEN_AI_USAGE_PROMPT_TOKENS, A.GEN_AI_USAGE_INPUT_TOKENS),
    Mapping(LEGACY, A.GEN_AI_USAGE_COMPLETION_TOKENS, A.GEN_AI_USAGE_OUTPUT_TOKENS),
    Mapping(LEGACY, A.GEN_AI_PROMPT, A.GEN_AI_INPUT_MESSAGES, "messages", "JSON or text"),
    Mapping(LEGACY, A.GEN_AI_COMPLETION, A.GEN_AI_OUTPUT_MESSAGES, "messages", "JSON or text"),
)


def direct_renames(convention: str | None = None) -> list[Mapping]:
    """The plain-copy rows (of one convention), the ones the Go transform also applies."""
    return [m for m in MAPPINGS if m.how == COPY and not m.detail
            and (convention is None or m.convention == convention)]


# --- helpers --------------------------------------------------------------------------------

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


def tool_definition(raw: Any) -> dict[str, Any] | None:
    """One tool definition in the GenAI shape ``{"type", "name", "description", "parameters"}``
    from OpenAI's ``{"type": "function", "function": {...}}`` or an already flat one."""
    value = parse_json(raw) if isinstance(raw, str) else raw
    if not isinstance(value, dict):
        return None
    function = value.get("function") if isinstance(value.get("function"), dict) else value
    if not isinstance(function.get("name"), str):
        return None
    definition = {"type": value.get("type") or "function", "name": function["name"]}
    for field in ("description", "parameters"):
        if function.get(field) not in (None, ""):
            definition[field] = parse_json(function[field]) if field == "parameters" \
                and isinstance(function[field], str) else function[field]
    return definition


def tool_definitions(items: Iterable[Any]) -> list[dict[str, Any]]:
    return [d for d in map(tool_definition, items) if d is not None]


def finish_reasons_of(output: list[messages.Message]) -> list[str]:
    return [str(m["finish_reason"]) for m in output if m.get("finish_reason")]


def put_finish_reasons(attrs: Attributes, reasons: list[str]) -> None:
    """``gen_ai.response.finish_reasons`` as the JSON list an SDK array attribute becomes."""
    if reasons:
        put(attrs, A.GEN_AI_RESPONSE_FINISH_REASONS, orjson.dumps(reasons).decode())


def put_output_messages(attrs: Attributes, output: list[messages.Message]) -> None:
    put(attrs, A.GEN_AI_OUTPUT_MESSAGES, output)
    put_finish_reasons(attrs, finish_reasons_of(output))


def put_provider(attrs: Attributes, source: str) -> None:
    if attrs.get(source):
        put(attrs, A.GEN_AI_PROVIDER_NAME, provider_name(attrs[source]))


# --- conventions ----------------------------------------------------------------------------

class Convention(ABC):
    """One foreign attribute convention: how to recognise its spans and translate them."""

    name: ClassVar[str]
    markers: ClassVar[tuple[str, ...]]
    """Attribute names whose presence says a span follows this convention."""

    def detects(self, attrs: Attributes) -> bool:
        return not frozenset(self.markers).isdisjoint(attrs)

    def renames(self, attrs: Attributes) -> None:
        """Apply this convention's plain-copy rows of ``MAPPINGS``."""
        for mapping in direct_renames(self.name):
            copy(attrs, mapping.source, mapping.target)

    @abstractmethod
    def normalize(self, attrs: Attributes) -> None:
        """Add canonical GenAI attributes derived from this convention's attributes."""


class OpenInference(Convention):
    """Arize Phoenix: ``openinference.span.kind``, ``llm.*`` and flattened ``llm.*_messages``."""

    name = OI
    kind_keys: ClassVar[tuple[str, ...]] = (A.OPENINFERENCE_SPAN_KIND,)
    input_prefixes: ClassVar[tuple[str, ...]] = (A.OPENINFERENCE_INPUT_MESSAGES_PREFIX,)
    output_prefixes: ClassVar[tuple[str, ...]] = (A.OPENINFERENCE_OUTPUT_MESSAGES_PREFIX,)
    tools_prefixes: ClassVar[tuple[str, ...]] = (A.OPENINFERENCE_TOOLS_PREFIX,)
    markers = (A.OPENINFERENCE_SPAN_KIND, A.OPENINFERENCE_MODEL_NAME,
               A.OPENINFERENCE_PROMPT_TOKENS)
    operations = {"LLM": A.OPERATION_CHAT, "TOOL": A.OPERATION_EXECUTE_TOOL,
                  "AGENT": A.OPERATION_INVOKE_AGENT, "EMBEDDING": "embeddings"}

    def kind(self, attrs: Attributes) -> str:
        for key in self.kind_keys:
            if attrs.get(key):
                return attrs[key].upper()
        return "LLM" if A.OPENINFERENCE_MODEL_NAME in attrs else ""

    def normalize(self, attrs: Attributes) -> None:
        kind = self.kind(attrs)
        put(attrs, A.GEN_AI_OPERATION_NAME, self.operations.get(kind))
        self.models(attrs)
        self.renames(attrs)
        put_provider(attrs, A.OPENINFERENCE_PROVIDER)
        put_provider(attrs, A.OPENINFERENCE_SYSTEM)
        self._invocation_parameters(attrs)
        if kind == "TOOL":
            copy(attrs, A.OPENINFERENCE_TOOL_NAME, A.GEN_AI_TOOL_NAME)
            copy(attrs, A.OPENINFERENCE_INPUT_VALUE, A.GEN_AI_TOOL_CALL_ARGUMENTS)
            copy(attrs, A.OPENINFERENCE_OUTPUT_VALUE, A.GEN_AI_TOOL_CALL_RESULT)
        elif kind == "LLM":
            self._messages(attrs)
            self._tools(attrs)

    def models(self, attrs: Attributes) -> None:
        """Request model from the invocation parameters, response model from llm.model_name."""
        put(attrs, A.GEN_AI_REQUEST_MODEL,
            self.parameter(attrs, A.OPENINFERENCE_INVOCATION_PARAMETERS))
        copy(attrs, A.OPENINFERENCE_MODEL_NAME, A.GEN_AI_REQUEST_MODEL)

    @staticmethod
    def parameter(attrs: Attributes, key: str, name: str = A.INVOCATION_PARAMETER_MODEL) -> Any:
        params = parse_json(attrs.get(key))
        value = params.get(name) if isinstance(params, dict) else None
        return value if isinstance(value, str) else None

    def _messages(self, attrs: Attributes) -> None:
        inputs = [self._message(m, "user") for prefix in self.input_prefixes
                  for m in indexed(attrs, prefix)]
        outputs = [self._message(m, "assistant") for prefix in self.output_prefixes
                   for m in indexed(attrs, prefix)]
        finish = attrs.get(A.OPENINFERENCE_FINISH_REASON)
        if finish:
            put_finish_reasons(attrs, [finish])
            for message in outputs:
                message.setdefault("finish_reason", finish)
        put(attrs, A.GEN_AI_INPUT_MESSAGES,
            inputs or text_messages(attrs.get(A.OPENINFERENCE_INPUT_VALUE), "user"))
        self.output_messages(attrs, outputs)

    @staticmethod
    def output_messages(attrs: Attributes, outputs: list[messages.Message]) -> None:
        """The structured output messages, else the output text (traceAI's streamed answers)."""
        if outputs:
            put_output_messages(attrs, outputs)
        else:
            put(attrs, A.GEN_AI_OUTPUT_MESSAGES,
                text_messages(attrs.get(A.OPENINFERENCE_OUTPUT_VALUE), "assistant"))

    def _tools(self, attrs: Attributes) -> None:
        raw = [t.get(A.OPENINFERENCE_TOOL_JSON_SCHEMA) for prefix in self.tools_prefixes
               for t in indexed(attrs, prefix)]
        put(attrs, A.GEN_AI_TOOL_DEFINITIONS, tool_definitions(raw))

    @staticmethod
    def _message(flat: Attributes, default_role: str) -> messages.Message:
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
        return {"role": flat.get(A.OPENINFERENCE_MESSAGE_ROLE, default_role), "parts": parts}

    @staticmethod
    def _invocation_parameters(attrs: Attributes) -> None:
        for key in (A.OPENINFERENCE_INVOCATION_PARAMETERS, A.TRACEAI_REQUEST_PARAMETERS):
            params = parse_json(attrs.get(key))
            if not isinstance(params, dict):
                continue
            for name, target in _INVOCATION_PARAMETERS.items():
                value = params.get(name)
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    put(attrs, target, str(value))


class TraceAI(OpenInference):
    """FutureAGI traceAI: ``gen_ai.span.kind`` with flattened ``gen_ai.*.messages.<i>``
    (0.1.10 on), or OpenInference's ``llm.*`` names under ``fi.span.kind`` plus raw I/O."""

    name = TRACEAI
    kind_keys = (A.TRACEAI_GEN_AI_SPAN_KIND, A.TRACEAI_SPAN_KIND)
    input_prefixes = (A.TRACEAI_INPUT_MESSAGES_PREFIX, A.OPENINFERENCE_INPUT_MESSAGES_PREFIX)
    output_prefixes = (A.TRACEAI_OUTPUT_MESSAGES_PREFIX, A.OPENINFERENCE_OUTPUT_MESSAGES_PREFIX)
    tools_prefixes = (A.TRACEAI_TOOL_DEFINITIONS_PREFIX, A.OPENINFERENCE_TOOLS_PREFIX)
    markers = (A.TRACEAI_SPAN_KIND, A.TRACEAI_GEN_AI_SPAN_KIND)

    def normalize(self, attrs: Attributes) -> None:
        self._raw_io(attrs)
        super().normalize(attrs)

    def models(self, attrs: Attributes) -> None:
        requested = self.parameter(attrs, A.TRACEAI_REQUEST_PARAMETERS)
        recorded = attrs.get(A.GEN_AI_REQUEST_MODEL)
        if requested and recorded and requested != recorded:
            put(attrs, A.GEN_AI_RESPONSE_MODEL, recorded)
            attrs[A.GEN_AI_REQUEST_MODEL] = requested
        put(attrs, A.GEN_AI_REQUEST_MODEL, requested)
        super().models(attrs)

    def renames(self, attrs: Attributes) -> None:
        """OpenInference's plain copies (older traceAI uses its names) and traceAI's own."""
        for mapping in direct_renames(OI) + direct_renames(TRACEAI):
            copy(attrs, mapping.source, mapping.target)

    def _tools(self, attrs: Attributes) -> None:
        raw = [t.get(A.OPENINFERENCE_TOOL_JSON_SCHEMA) for prefix in self.tools_prefixes
               for t in indexed(attrs, prefix)]
        found = tool_definitions(raw)
        if found and parse_json(attrs.get(A.GEN_AI_TOOL_DEFINITIONS)) in (None, [], "null"):
            attrs[A.GEN_AI_TOOL_DEFINITIONS] = json.dumps(found, ensure_ascii=False)

    @staticmethod
    def _raw_io(attrs: Attributes) -> None:
        raw_input = parse_json(attrs.get(A.TRACEAI_RAW_INPUT))
        if isinstance(raw_input, dict) and raw_input.get("messages"):
            put(attrs, A.GEN_AI_INPUT_MESSAGES, messages.normalize(raw_input["messages"]))
        raw_output = parse_json(attrs.get(A.TRACEAI_RAW_OUTPUT))
        if isinstance(raw_output, dict) and raw_output.get("choices"):
            choice = raw_output["choices"][0]
            if isinstance(choice, dict) and isinstance(choice.get("message"), dict):
                output = dict(choice["message"], finish_reason=choice.get("finish_reason"))
                put_output_messages(attrs, messages.normalize(output, "assistant"))


class OpenLLMetry(Convention):
    """Traceloop OpenLLMetry: ``llm.request.type``, ``traceloop.*`` and ``gen_ai.prompt.<i>.*``."""

    name = OPENLLMETRY
    request_types = {"chat": A.OPERATION_CHAT, "completion": A.OPERATION_TEXT_COMPLETION,
                     "embedding": "embeddings"}
    span_kinds = {"tool": A.OPERATION_EXECUTE_TOOL, "agent": A.OPERATION_INVOKE_AGENT}
    markers = (A.TRACELOOP_SPAN_KIND, A.LLM_REQUEST_TYPE, A.LLM_USAGE_PROMPT_TOKENS,
               A.GEN_AI_PROMPT_PREFIX + "0." + A.LEGACY_MESSAGE_ROLE,
               A.GEN_AI_PROMPT_PREFIX + "0." + A.LEGACY_MESSAGE_CONTENT,
               A.GEN_AI_COMPLETION_PREFIX + "0." + A.LEGACY_MESSAGE_ROLE,
               A.GEN_AI_COMPLETION_PREFIX + "0." + A.LEGACY_MESSAGE_CONTENT,
               A.GEN_AI_COMPLETION_PREFIX + "0." + A.LEGACY_MESSAGE_FINISH_REASON,
               A.LLM_REQUEST_FUNCTIONS_PREFIX + "0." + A.LEGACY_FUNCTION_NAME)

    def normalize(self, attrs: Attributes) -> None:
        span_kind = attrs.get(A.TRACELOOP_SPAN_KIND, "")
        put(attrs, A.GEN_AI_OPERATION_NAME, self.span_kinds.get(span_kind)
            or self.request_types.get(attrs.get(A.LLM_REQUEST_TYPE, "")))
        self.renames(attrs)
        put(attrs, A.GEN_AI_INPUT_MESSAGES,
            [self._message(m, "user") for m in indexed(attrs, A.GEN_AI_PROMPT_PREFIX)])
        completions = indexed(attrs, A.GEN_AI_COMPLETION_PREFIX)
        put_output_messages(attrs, [self._message(m, "assistant") for m in completions])
        put(attrs, A.GEN_AI_TOOL_DEFINITIONS, tool_definitions(
            self._function(f) for f in indexed(attrs, A.LLM_REQUEST_FUNCTIONS_PREFIX)))
        if span_kind == "tool":
            copy(attrs, A.TRACELOOP_ENTITY_NAME, A.GEN_AI_TOOL_NAME)
            copy(attrs, A.TRACELOOP_ENTITY_INPUT, A.GEN_AI_TOOL_CALL_ARGUMENTS)
            copy(attrs, A.TRACELOOP_ENTITY_OUTPUT, A.GEN_AI_TOOL_CALL_RESULT)
        elif span_kind == "agent":
            copy(attrs, A.TRACELOOP_ENTITY_NAME, A.GEN_AI_AGENT_NAME)

    @staticmethod
    def _function(flat: Attributes) -> dict[str, Any]:
        return {"name": flat.get(A.LEGACY_FUNCTION_NAME),
                "description": flat.get(A.LEGACY_FUNCTION_DESCRIPTION),
                "parameters": flat.get(A.LEGACY_FUNCTION_PARAMETERS)}

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

    name = LEGACY
    markers = (A.GEN_AI_SYSTEM, A.GEN_AI_USAGE_PROMPT_TOKENS, A.GEN_AI_USAGE_COMPLETION_TOKENS,
               A.GEN_AI_PROMPT, A.GEN_AI_COMPLETION)

    def normalize(self, attrs: Attributes) -> None:
        put_provider(attrs, A.GEN_AI_SYSTEM)
        self.renames(attrs)
        if attrs.get(A.GEN_AI_PROMPT):
            put(attrs, A.GEN_AI_INPUT_MESSAGES,
                messages.normalize(parse_json(attrs[A.GEN_AI_PROMPT]), "user"))
        if attrs.get(A.GEN_AI_COMPLETION):
            put_output_messages(attrs, messages.normalize(parse_json(attrs[A.GEN_AI_COMPLETION]),
                                                          "assistant"))


CONVENTIONS: tuple[Convention, ...] = (TraceAI(), OpenInference(), OpenLLMetry(), LegacyGenAI())
CONVENTION_MARKERS = frozenset(marker for c in CONVENTIONS for marker in c.markers)
"""Attribute names that say a span follows one of ``CONVENTIONS``."""


def finish_reasons_from_messages(attrs: Attributes) -> bool:
    """Fill ``gen_ai.response.finish_reasons`` from the output messages' finish reasons (the
    OTel OpenAI instrumentation records them only there on streams); True when it did."""
    output = attrs.get(A.GEN_AI_OUTPUT_MESSAGES)
    if not output or attrs.get(A.GEN_AI_RESPONSE_FINISH_REASONS) \
            or '"finish_reason"' not in output:
        return False
    reasons = finish_reasons_in(output)
    if reasons is not None:
        attrs[A.GEN_AI_RESPONSE_FINISH_REASONS] = reasons
    return reasons is not None


def finish_reasons_in(output: str) -> str | None:
    """The finish reasons output messages (JSON) name, as the JSON list an SDK array
    attribute becomes; None when they name none or are not JSON messages.

    Every span without a convention's markers comes here, so it parses with orjson and reads
    the messages' own ``finish_reason`` keys, as ``messages.loads`` would keep them."""
    try:
        value = orjson.loads(output)
    except orjson.JSONDecodeError:
        return None
    output_messages = [value] if isinstance(value, dict) else value
    if not isinstance(output_messages, list):
        return None
    reasons = [str(m["finish_reason"]) for m in output_messages
               if isinstance(m, dict) and m.get("finish_reason")]
    return orjson.dumps(reasons).decode() if reasons else None


def normalize(attrs: Attributes) -> bool:
    """Add canonical GenAI attributes to ``attrs`` (in place); False when nothing was added."""
    if CONVENTION_MARKERS.isdisjoint(attrs):
        return finish_reasons_from_messages(attrs)
    applied = False
    for convention in CONVENTIONS:
        if convention.detects(attrs):
            convention.normalize(attrs)
            applied = True
    return applied
