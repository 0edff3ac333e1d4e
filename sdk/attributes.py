"""The attribute vocabulary: every span attribute name canarytrace writes or reads.

This is the only module that spells attribute names. Primary names follow the
OpenTelemetry GenAI semantic conventions; ``canary.*`` names exist where GenAI
has no equivalent. Names of other conventions (OpenInference, OpenLLMetry,
traceAI, older GenAI) are kept here too, for the collector's normalization.
"""

from __future__ import annotations

# --- OpenTelemetry GenAI semantic conventions -------------------------------
GEN_AI_OPERATION_NAME = "gen_ai.operation.name"
GEN_AI_PROVIDER_NAME = "gen_ai.provider.name"
GEN_AI_REQUEST_MODEL = "gen_ai.request.model"
GEN_AI_REQUEST_TEMPERATURE = "gen_ai.request.temperature"
GEN_AI_REQUEST_TOP_P = "gen_ai.request.top_p"
GEN_AI_REQUEST_TOP_K = "gen_ai.request.top_k"
GEN_AI_REQUEST_MAX_TOKENS = "gen_ai.request.max_tokens"
GEN_AI_REQUEST_SEED = "gen_ai.request.seed"
GEN_AI_RESPONSE_MODEL = "gen_ai.response.model"
GEN_AI_RESPONSE_ID = "gen_ai.response.id"
GEN_AI_RESPONSE_FINISH_REASONS = "gen_ai.response.finish_reasons"
GEN_AI_USAGE_INPUT_TOKENS = "gen_ai.usage.input_tokens"
GEN_AI_USAGE_OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
GEN_AI_INPUT_MESSAGES = "gen_ai.input.messages"
GEN_AI_OUTPUT_MESSAGES = "gen_ai.output.messages"
GEN_AI_TOOL_NAME = "gen_ai.tool.name"
GEN_AI_TOOL_CALL_ID = "gen_ai.tool.call.id"
GEN_AI_TOOL_CALL_ARGUMENTS = "gen_ai.tool.call.arguments"
GEN_AI_TOOL_CALL_RESULT = "gen_ai.tool.call.result"
GEN_AI_AGENT_NAME = "gen_ai.agent.name"
GEN_AI_CONVERSATION_ID = "gen_ai.conversation.id"
ERROR_TYPE = "error.type"

# Values of gen_ai.operation.name
OPERATION_CHAT = "chat"
OPERATION_TEXT_COMPLETION = "text_completion"
OPERATION_GENERATE_CONTENT = "generate_content"
OPERATION_INVOKE_AGENT = "invoke_agent"
OPERATION_EXECUTE_TOOL = "execute_tool"
LLM_OPERATIONS = (OPERATION_CHAT, OPERATION_TEXT_COMPLETION, OPERATION_GENERATE_CONTENT)

# --- canarytrace's own (no GenAI equivalent) --------------------------------
CANARY_VARIANT = "canary.variant"
CANARY_ROLE = "canary.role"
CANARY_PAIR_ID = "canary.pair_id"
CANARY_ROUTE = "canary.route"
CANARY_COHORT = "canary.cohort"
CANARY_FALLBACK = "canary.fallback"
CANARY_PARSER_ERRORS = "canary.parser.errors"
CANARY_PARSER_RETRIES = "canary.parser.retries"
CANARY_TIME_TO_FIRST_CHUNK_MS = "canary.stream.time_to_first_chunk_ms"
CANARY_STREAM_CHUNKS = "canary.stream.chunks"
CANARY_PROJECT = "canary.project"
AGENT_TRAJECTORY_STEP = "agent.trajectory.step"
AGENT_TRAJECTORY_STEP_KIND = "agent.trajectory.step.kind"

CANARY_EXPECT_INSTRUCTIONS = "canary.expect.instructions"
CANARY_EXPECT_JSON_SCHEMA = "canary.expect.json_schema"
CANARY_EXPECT_TOOLS = "canary.expect.tools"
CANARY_EXPECT_REFERENCE = "canary.expect.reference"
CANARY_TASK = "canary.task"

# Values of canary.variant and canary.role
VARIANT_BASE = "base"
VARIANT_CANDIDATE = "candidate"
ROLE_PRIMARY = "primary"
ROLE_SHADOW = "shadow"

# Marker appended to attribute values the collector truncated.
TRUNCATION_MARKER = "…[truncated]"

# --- resource attributes (OpenTelemetry) ------------------------------------
SERVICE_NAME = "service.name"

# --- other conventions, read by the collector's normalization ---------------
# OpenInference (Arize Phoenix)
OPENINFERENCE_SPAN_KIND = "openinference.span.kind"
OPENINFERENCE_MODEL_NAME = "llm.model_name"
OPENINFERENCE_PROVIDER = "llm.provider"
OPENINFERENCE_PROMPT_TOKENS = "llm.token_count.prompt"
OPENINFERENCE_COMPLETION_TOKENS = "llm.token_count.completion"
OPENINFERENCE_INPUT_MESSAGES_PREFIX = "llm.input_messages."
OPENINFERENCE_OUTPUT_MESSAGES_PREFIX = "llm.output_messages."
OPENINFERENCE_INPUT_VALUE = "input.value"
OPENINFERENCE_OUTPUT_VALUE = "output.value"
OPENINFERENCE_TOOL_NAME = "tool.name"
OPENINFERENCE_INVOCATION_PARAMETERS = "llm.invocation_parameters"
OPENINFERENCE_SESSION_ID = "session.id"

# OpenLLMetry (Traceloop), current and legacy
TRACELOOP_SPAN_KIND = "traceloop.span.kind"
TRACELOOP_ENTITY_NAME = "traceloop.entity.name"
TRACELOOP_ENTITY_INPUT = "traceloop.entity.input"
TRACELOOP_ENTITY_OUTPUT = "traceloop.entity.output"
LLM_REQUEST_TYPE = "llm.request.type"
LLM_USAGE_PROMPT_TOKENS = "llm.usage.prompt_tokens"
LLM_USAGE_COMPLETION_TOKENS = "llm.usage.completion_tokens"

# Older GenAI semantic conventions
GEN_AI_SYSTEM = "gen_ai.system"
GEN_AI_USAGE_PROMPT_TOKENS = "gen_ai.usage.prompt_tokens"
GEN_AI_USAGE_COMPLETION_TOKENS = "gen_ai.usage.completion_tokens"
GEN_AI_PROMPT_PREFIX = "gen_ai.prompt."
GEN_AI_COMPLETION_PREFIX = "gen_ai.completion."
GEN_AI_PROMPT = "gen_ai.prompt"
GEN_AI_COMPLETION = "gen_ai.completion"

# traceAI (FutureAGI)
TRACEAI_SPAN_KIND = "fi.span.kind"
TRACEAI_RAW_INPUT = "raw.input"
TRACEAI_RAW_OUTPUT = "raw.output"

# --- mirroring outcome, on each primary span a Canary serves ----------------
# Whether the request was also mirrored to the shadow arm: read by the
# "mirror drop rate" dashboard panel (spans carry it; metrics are not stored).
CANARY_MIRROR = "canary.mirror"
MIRROR_SENT = "sent"
MIRROR_DROPPED = "dropped"
MIRROR_NONE = "none"

# --- appended for the collector's normalization -----------------------------
# OpenInference: more top-level names
OPENINFERENCE_SYSTEM = "llm.system"
# OpenInference flattened message keys: llm.input_messages.<i>.message.<field>
OPENINFERENCE_MESSAGE_ROLE = "message.role"
OPENINFERENCE_MESSAGE_CONTENT = "message.content"
OPENINFERENCE_MESSAGE_CONTENTS = "message.contents"
OPENINFERENCE_MESSAGE_TOOL_CALLS = "message.tool_calls"
OPENINFERENCE_MESSAGE_CONTENT_TEXT = "message_content.text"
OPENINFERENCE_TOOL_CALL_ID = "tool_call.id"
OPENINFERENCE_TOOL_CALL_FUNCTION_NAME = "tool_call.function.name"
OPENINFERENCE_TOOL_CALL_FUNCTION_ARGUMENTS = "tool_call.function.arguments"
# OpenLLMetry legacy flattened prompt/completion keys: gen_ai.prompt.<i>.<field>
LEGACY_MESSAGE_ROLE = "role"
LEGACY_MESSAGE_CONTENT = "content"
LEGACY_MESSAGE_FINISH_REASON = "finish_reason"
LEGACY_MESSAGE_TOOL_CALLS = "tool_calls"
LEGACY_TOOL_CALL_NAME = "name"
LEGACY_TOOL_CALL_ARGUMENTS = "arguments"
LEGACY_TOOL_CALL_ID = "id"
# Older GenAI / OpenLLMetry request parameters
LLM_REQUEST_MODEL = "llm.request.model"
LLM_RESPONSE_MODEL = "llm.response.model"

# --- ct.Canary: its per-request span and metric attributes ------------------------------
CANARY_BASE_MODEL = "canary.base_model"
CANARY_CANDIDATE_MODEL = "canary.candidate_model"

# --- other instrumentations' spans, logs, metrics and evaluation events -----------------
# Scope keys that describe one arm call's outcome: canarytrace's own arm span records them;
# spans other instrumentations start inside the arm do not (they would count it twice).
CALL_OUTCOME_KEYS = frozenset({CANARY_MIRROR, CANARY_FALLBACK, ERROR_TYPE,
                               CANARY_BASE_MODEL, CANARY_CANDIDATE_MODEL})
GEN_AI_TOOL_DEFINITIONS = "gen_ai.tool.definitions"
GEN_AI_SYSTEM_INSTRUCTIONS = "gen_ai.system_instructions"
GEN_AI_TOKEN_TYPE = "gen_ai.token.type"
TOKEN_TYPE_INPUT = "input"
TOKEN_TYPE_OUTPUT = "output"
# traceAI (FutureAGI) >= 0.1.10: GenAI-looking names with flattened messages
TRACEAI_GEN_AI_SPAN_KIND = "gen_ai.span.kind"
TRACEAI_REQUEST_PARAMETERS = "gen_ai.request.parameters"
TRACEAI_INPUT_MESSAGES_PREFIX = "gen_ai.input.messages."
TRACEAI_OUTPUT_MESSAGES_PREFIX = "gen_ai.output.messages."
TRACEAI_TOOL_DEFINITIONS_PREFIX = "gen_ai.tool.definitions."
# OpenInference: finish reason, tool definitions (llm.tools.<i>.tool.json_schema)
OPENINFERENCE_FINISH_REASON = "llm.finish_reason"
OPENINFERENCE_TOOLS_PREFIX = "llm.tools."
OPENINFERENCE_TOOL_JSON_SCHEMA = "tool.json_schema"
INVOCATION_PARAMETER_MODEL = "model"
"""The key of the request model in OpenInference/traceAI invocation parameters (JSON)."""
# OpenLLMetry legacy function definitions: llm.request.functions.<i>.{name,description,...}
LLM_REQUEST_FUNCTIONS_PREFIX = "llm.request.functions."
LEGACY_FUNCTION_NAME = "name"
LEGACY_FUNCTION_DESCRIPTION = "description"
LEGACY_FUNCTION_PARAMETERS = "parameters"
# GenAI log events (OTLP logs)
EVENT_NAME = "event.name"
EVENT_INFERENCE_DETAILS = "gen_ai.client.inference.operation.details"
EVENT_SYSTEM_MESSAGE = "gen_ai.system.message"
EVENT_USER_MESSAGE = "gen_ai.user.message"
EVENT_ASSISTANT_MESSAGE = "gen_ai.assistant.message"
EVENT_TOOL_MESSAGE = "gen_ai.tool.message"
EVENT_CHOICE = "gen_ai.choice"
EVENT_EVALUATION_RESULT = "gen_ai.evaluation.result"
GEN_AI_EVALUATION_NAME = "gen_ai.evaluation.name"
GEN_AI_EVALUATION_SCORE_VALUE = "gen_ai.evaluation.score.value"
GEN_AI_EVALUATION_SCORE_LABEL = "gen_ai.evaluation.score.label"
GEN_AI_EVALUATION_EXPLANATION = "gen_ai.evaluation.explanation"
CANARY_EVALUATION_PASSED = "canary.evaluation.passed"
CANARY_EVALUATOR_VERSION = "canary.evaluator.version"
# GenAI client metrics
METRIC_TOKEN_USAGE = "gen_ai.client.token.usage"
METRIC_OPERATION_DURATION = "gen_ai.client.operation.duration"
