"""canarytrace SDK: trace LLM calls as OpenTelemetry spans and ship tuned models as canaries."""

from canarytrace import attributes

__version__ = "0.1.0"

__all__ = ["attributes", "__version__"]
