"""The normalization table as OTTL statements for the OTel Collector's transform processor.

At scale (``docker compose --profile scale``) the contrib ``clickhouse`` exporter writes spans
into ``otel_traces`` without passing through canarytrace's collector, so its normalization
(``normalize.MAPPINGS``) must run in the Go collector instead. ``span_statements()`` is
what ``docker/otel-collector-config.yaml`` ships (the tests check the file against it): the
plain renames, the span-kind -> operation mapping, the request model out of the invocation
parameters (and traceAI's response model), and the provider names. Rebuilding flattened
messages and tool definitions needs code: spans that arrive this way get those from
canarytrace's collector only.

    python -m canarytrace.collector.ottl      # print the statements as YAML list items
"""

from __future__ import annotations

import json
import re

from canarytrace import attributes as A
from canarytrace.collector.normalize import (
    MAPPINGS,
    PROVIDER_NAMES,
    OpenInference,
    OpenLLMetry,
    TraceAI,
    direct_renames,
)


def attr(name: str) -> str:
    return f'attributes["{name}"]'


def lit(value: str) -> str:
    return json.dumps(value)


def unset(name: str) -> str:
    return f"{attr(name)} == nil"


def _renames() -> list[str]:
    return [f"set({attr(m.target)}, {attr(m.source)}) where {unset(m.target)} "
            f"and {attr(m.source)} != nil" for m in direct_renames()]


def _operations() -> list[str]:
    statements = []
    kinds = [(key, OpenInference.operations) for key in OpenInference.kind_keys] + \
            [(key, TraceAI.operations) for key in TraceAI.kind_keys] + \
            [(A.LLM_REQUEST_TYPE, OpenLLMetry.request_types),
             (A.TRACELOOP_SPAN_KIND, OpenLLMetry.span_kinds)]
    for key, table in kinds:
        for value, operation in table.items():
            statements.append(f"set({attr(A.GEN_AI_OPERATION_NAME)}, {lit(operation)}) where "
                              f"{unset(A.GEN_AI_OPERATION_NAME)} and {attr(key)} == {lit(value)}")
    return statements


def _models() -> list[str]:
    model = lit(A.INVOCATION_PARAMETER_MODEL)
    names_model = lit(json.dumps(A.INVOCATION_PARAMETER_MODEL))  # the JSON has a "model" key
    params, traceai = A.TRACEAI_REQUEST_PARAMETERS, A.TRACEAI_GEN_AI_SPAN_KIND
    return [
        # traceAI records the response model as the request model: keep it as the response one
        f"set({attr(A.GEN_AI_RESPONSE_MODEL)}, {attr(A.GEN_AI_REQUEST_MODEL)}) where "
        f"{attr(traceai)} != nil and {unset(A.GEN_AI_RESPONSE_MODEL)} and "
        f"{attr(A.GEN_AI_REQUEST_MODEL)} != nil and {attr(params)} != nil",
        f"set({attr(A.GEN_AI_REQUEST_MODEL)}, ParseJSON({attr(params)})[{model}]) where "
        f"{attr(traceai)} != nil and IsMatch({attr(params)}, {names_model})",
        f"set({attr(A.GEN_AI_REQUEST_MODEL)}, "
        f"ParseJSON({attr(A.OPENINFERENCE_INVOCATION_PARAMETERS)})[{model}]) where "
        f"{unset(A.GEN_AI_REQUEST_MODEL)} and "
        f"IsMatch({attr(A.OPENINFERENCE_INVOCATION_PARAMETERS)}, {names_model})",
        f"set({attr(A.GEN_AI_REQUEST_MODEL)}, {attr(A.OPENINFERENCE_MODEL_NAME)}) where "
        f"{unset(A.GEN_AI_REQUEST_MODEL)} and {attr(A.OPENINFERENCE_MODEL_NAME)} != nil",
    ]


def provider_sources() -> list[str]:
    """The attributes MAPPINGS turns into ``gen_ai.provider.name``, in the order applied."""
    return [m.source for m in MAPPINGS if m.how == "provider"]


def _providers() -> list[str]:
    by_name: dict[str, list[str]] = {}
    for key, name in PROVIDER_NAMES.items():
        by_name.setdefault(name, []).append(key)
    statements = []
    for source in provider_sources():
        for name, keys in by_name.items():
            pattern = "(?i)^(" + "|".join(re.escape(k) for k in sorted(keys)) + ")$"
            statements.append(f"set({attr(A.GEN_AI_PROVIDER_NAME)}, {lit(name)}) where "
                              f"{unset(A.GEN_AI_PROVIDER_NAME)} and "
                              f"IsMatch({attr(source)}, {lit(pattern)})")
        statements.append(f"set({attr(A.GEN_AI_PROVIDER_NAME)}, "
                          f"ConvertCase({attr(source)}, \"lower\")) where "
                          f"{unset(A.GEN_AI_PROVIDER_NAME)} and {attr(source)} != nil")
    return statements


def span_statements() -> list[str]:
    """Every OTTL statement (span context) the transform processor runs, in order."""
    return _models() + _renames() + _operations() + _providers()


if __name__ == "__main__":
    for statement in span_statements():
        print(f"          - {json.dumps(statement)}")
