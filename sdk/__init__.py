"""canarytrace SDK: trace LLM calls as OpenTelemetry spans and ship tuned models as canaries."""

__version__ = "0.1.0"

from canarytrace import attributes  # noqa: E402
from canarytrace._runtime import force_flush, init, shutdown  # noqa: E402
from canarytrace.agents import AgentRun, ToolCall, agent, tool_call  # noqa: E402
from canarytrace.calls import LlmCall, llm_call  # noqa: E402
from canarytrace.canary import Canary, CanaryStats  # noqa: E402
from canarytrace.context import scoped_attributes  # noqa: E402
from canarytrace.decorators import llm  # noqa: E402
from canarytrace.expectations import Expectations, expect  # noqa: E402
from canarytrace.feedback import feedback  # noqa: E402
from canarytrace.middleware import RequestIdMiddleware, WSGIRequestIdMiddleware  # noqa: E402
from canarytrace.parsing import JSONParseError, parse_json  # noqa: E402
from canarytrace.request_context import request  # noqa: E402
from canarytrace.transformers_instrumentation import (  # noqa: E402
    instrument_transformers,
    uninstrument_transformers,
)

__all__ = [
    "AgentRun",
    "Canary",
    "CanaryStats",
    "Expectations",
    "JSONParseError",
    "LlmCall",
    "RequestIdMiddleware",
    "ToolCall",
    "WSGIRequestIdMiddleware",
    "__version__",
    "agent",
    "attributes",
    "expect",
    "feedback",
    "force_flush",
    "init",
    "instrument_transformers",
    "llm",
    "llm_call",
    "parse_json",
    "request",
    "scoped_attributes",
    "shutdown",
    "tool_call",
    "uninstrument_transformers",
]
