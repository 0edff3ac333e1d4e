"""Traces as the built-in page shows them: a filtered trace list, and one trace as a span
tree with agent steps, tool calls, messages, eval results and feedback.

The page never sees attribute names: spans are shaped here into fields (``kind``,
``input_messages``, ``tool``, ``step`` ...) and the raw attributes are passed along as-is.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from canarytrace import attributes as A
from canarytrace import messages
from canarytrace.store.client import Store
from canarytrace.store.timestamps import to_ns

Outcome = Literal["eval_failed", "error", "fallback", "thumbs_down"]

TRACES_SQL = """
SELECT
    TraceId AS trace_id,
    toUnixTimestamp64Milli(min(Timestamp)) AS started_ms,
    (max(toUnixTimestamp64Nano(Timestamp) + Duration)
        - min(toUnixTimestamp64Nano(Timestamp))) / 1e6 AS duration_ms,
    argMin(SpanName, (ParentSpanId != '', Timestamp)) AS root_name,
    argMin(ServiceName, (ParentSpanId != '', Timestamp)) AS service,
    arraySort(groupUniqArrayIf(Model, Model != '')) AS models,
    arraySort(groupUniqArrayIf(Route, Route != '')) AS routes,
    groupUniqArray(ServiceName) AS services,
    groupUniqArray(Variant) AS variants,
    sum(InputTokens) AS input_tokens,
    sum(OutputTokens) AS output_tokens,
    countIf(StatusCode = 'Error') AS errors,
    max(Fallback) AS fallback,
    count() AS spans
FROM {spans} FINAL
WHERE {where}
GROUP BY TraceId
HAVING {having}
ORDER BY started_ms DESC
LIMIT {{limit:UInt32}}
"""

EVAL_SUMMARY_SQL = """
SELECT TraceId, countIf(Passed = false) AS failed, countIf(Passed IS NOT NULL) AS scored
FROM {evals} FINAL
WHERE Project = {{project:String}} AND TraceId IN {{trace_ids:Array(String)}}
GROUP BY TraceId
"""

FEEDBACK_SUMMARY_SQL = """
SELECT TraceId, countIf(Score > 0) AS up, countIf(Score < 0) AS down
FROM {feedback} FINAL
WHERE Project = {{project:String}} AND TraceId IN {{trace_ids:Array(String)}}
GROUP BY TraceId
"""


@dataclass(frozen=True)
class TraceQuery:
    """Which traces the list shows: started in [since, until], newest first."""

    since: datetime
    until: datetime
    service: str | None = None
    route: str | None = None
    model: str | None = None
    variant: str | None = None
    outcome: Outcome | None = None
    trace_id_prefix: str | None = None
    limit: int = 100


def list_traces(store: Store, project: str, q: TraceQuery) -> list[dict[str, Any]]:
    """One summary row per trace, with its eval and feedback counts."""
    where, having, params = _trace_conditions(store, project, q)
    sql = TRACES_SQL.format(spans=store.table("otel_traces"), where=" AND ".join(where),
                            having=" AND ".join(having) or "1")
    traces = store.query(sql, params)
    ids = {"project": project, "trace_ids": [t["trace_id"] for t in traces]}
    evals = {r["TraceId"]: r for r in store.query(
        EVAL_SUMMARY_SQL.format(evals=store.table("eval_results")), ids)} if traces else {}
    votes = {r["TraceId"]: r for r in store.query(
        FEEDBACK_SUMMARY_SQL.format(feedback=store.table("feedback")), ids)} if traces else {}
    return [_summary(t, evals.get(t["trace_id"], {}), votes.get(t["trace_id"], {}))
            for t in traces]


def _trace_conditions(store: Store, project: str, q: TraceQuery):
    where = ["Project = {project:String}",
             "Timestamp >= fromUnixTimestamp64Nano({since:Int64})",
             "Timestamp <= fromUnixTimestamp64Nano({until:Int64})"]
    params: dict[str, Any] = {"project": project, "since": to_ns(q.since),
                              "until": to_ns(q.until), "limit": q.limit}
    having = []
    for column, value in (("services", q.service), ("routes", q.route),
                          ("models", q.model), ("variants", q.variant)):
        if value:
            having.append(f"has({column}, {{{column}:String}})")
            params[column] = value
    if q.trace_id_prefix:
        where.append("startsWith(TraceId, {prefix:String})")
        params["prefix"] = q.trace_id_prefix.lower()
    if q.outcome == "error":
        having.append("errors > 0")
    elif q.outcome == "fallback":
        having.append("fallback = 1")
    elif q.outcome == "eval_failed":
        where.append(f"TraceId IN (SELECT TraceId FROM {store.table('eval_results')} FINAL "
                     "WHERE Project = {project:String} AND Passed = false)")
    elif q.outcome == "thumbs_down":
        where.append(f"TraceId IN (SELECT TraceId FROM {store.table('feedback')} FINAL "
                     "WHERE Project = {project:String} AND Score < 0)")
    return where, having, params


def _summary(trace: Mapping[str, Any], evals: Mapping[str, Any],
             votes: Mapping[str, Any]) -> dict[str, Any]:
    keep = ("trace_id", "started_ms", "duration_ms", "root_name", "service", "models", "routes",
            "input_tokens", "output_tokens", "errors", "spans")
    return {**{k: trace[k] for k in keep}, "fallback": bool(trace["fallback"]),
            "evals_failed": evals.get("failed", 0), "evals_scored": evals.get("scored", 0),
            "thumbs_up": votes.get("up", 0), "thumbs_down": votes.get("down", 0)}

SPANS_SQL = """
SELECT
    SpanId, ParentSpanId, SpanName, SpanKind, ServiceName,
    toUnixTimestamp64Nano(Timestamp) AS start_ns, Duration, StatusCode, StatusMessage,
    SpanAttributes, Model, Variant, Role, Route, Cohort, InputTokens, OutputTokens, Fallback
FROM {spans} FINAL
WHERE Project = {{project:String}} AND TraceId = {{trace_id:String}}
ORDER BY Timestamp, SpanId
"""

EVALS_SQL = """
SELECT SpanId, Evaluator, EvaluatorVersion, Score, Passed, Label, Reason
FROM {evals} FINAL
WHERE Project = {{project:String}} AND TraceId = {{trace_id:String}}
ORDER BY Evaluator
"""

FEEDBACK_SQL = """
SELECT toUnixTimestamp64Milli(Timestamp) AS time_ms, SpanId, Score, Comment, Source
FROM {feedback} FINAL
WHERE Project = {{project:String}} AND TraceId = {{trace_id:String}}
ORDER BY Timestamp
"""


def load_trace(store: Store, project: str, trace_id: str) -> dict[str, Any] | None:
    """The trace's span tree, eval results and feedback; None when the project has no such trace."""
    params = {"project": project, "trace_id": trace_id.lower()}
    spans = store.query(SPANS_SQL.format(spans=store.table("otel_traces")), params)
    if not spans:
        return None
    evals = store.query(EVALS_SQL.format(evals=store.table("eval_results")), params)
    feedback = store.query(FEEDBACK_SQL.format(feedback=store.table("feedback")), params)
    return {"trace_id": trace_id.lower(), "spans": span_tree(spans, evals),
            "feedback": [_feedback(f) for f in feedback]}


def span_tree(spans: Sequence[Mapping[str, Any]],
              evals: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Spans in depth-first order (children by start time), each with its depth and evals."""
    by_span = defaultdict(list)
    for row in evals:
        by_span[row["SpanId"]].append(_eval(row))
    ids = {s["SpanId"] for s in spans}
    children = defaultdict(list)
    for span in spans:
        parent = span["ParentSpanId"] if span["ParentSpanId"] in ids else ""
        children[parent].append(span)
    ordered: list[dict[str, Any]] = []

    def visit(parent: str, depth: int) -> None:
        for span in sorted(children[parent], key=lambda s: s["start_ns"]):
            ordered.append(shape_span(span, depth, by_span[span["SpanId"]]))
            visit(span["SpanId"], depth + 1)

    visit("", 0)
    return ordered


def span_kind(attributes: Mapping[str, str], model: str) -> str:
    """``agent``, ``step``, ``tool``, ``llm`` or ``span``: how the page draws the span."""
    operation = attributes.get(A.GEN_AI_OPERATION_NAME, "")
    if operation == A.OPERATION_INVOKE_AGENT:
        return "agent"
    if operation == A.OPERATION_EXECUTE_TOOL:
        return "tool"
    if A.AGENT_TRAJECTORY_STEP in attributes:
        return "step"
    if operation in A.LLM_OPERATIONS or model:
        return "llm"
    return "span"


def shape_span(span: Mapping[str, Any], depth: int,
               evals: list[dict[str, Any]]) -> dict[str, Any]:
    attributes = dict(span["SpanAttributes"])
    kind = span_kind(attributes, span["Model"])
    return {
        "span_id": span["SpanId"], "parent_span_id": span["ParentSpanId"], "depth": depth,
        "name": span["SpanName"], "kind": kind, "service": span["ServiceName"],
        "start_ms": span["start_ns"] / 1e6, "duration_ms": span["Duration"] / 1e6,
        "error": span["StatusCode"] == "Error", "status_message": span["StatusMessage"],
        "model": span["Model"], "variant": span["Variant"], "role": span["Role"],
        "route": span["Route"], "cohort": span["Cohort"],
        "input_tokens": span["InputTokens"], "output_tokens": span["OutputTokens"],
        "fallback": bool(span["Fallback"]),
        "step": _int_or_none(attributes.get(A.AGENT_TRAJECTORY_STEP)),
        "step_kind": attributes.get(A.AGENT_TRAJECTORY_STEP_KIND, ""),
        "tool": _tool(attributes) if kind == "tool" else None,
        "input_messages": messages.loads(attributes.get(A.GEN_AI_INPUT_MESSAGES)),
        "output_messages": messages.loads(attributes.get(A.GEN_AI_OUTPUT_MESSAGES)),
        "evals": evals,
        "attributes": attributes,
    }


def _tool(attributes: Mapping[str, str]) -> dict[str, Any]:
    return {"name": attributes.get(A.GEN_AI_TOOL_NAME, ""),
            "arguments": _json_or_text(attributes.get(A.GEN_AI_TOOL_CALL_ARGUMENTS)),
            "result": _json_or_text(attributes.get(A.GEN_AI_TOOL_CALL_RESULT))}


def _json_or_text(raw: str | None) -> Any:
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        return raw


def _int_or_none(raw: str | None) -> int | None:
    try:
        return int(raw) if raw is not None else None
    except ValueError:
        return None


def _eval(row: Mapping[str, Any]) -> dict[str, Any]:
    return {"evaluator": row["Evaluator"], "version": row["EvaluatorVersion"],
            "score": row["Score"], "passed": row["Passed"], "label": row["Label"],
            "reason": row["Reason"]}


def _feedback(row: Mapping[str, Any]) -> dict[str, Any]:
    return {"time_ms": row["time_ms"], "span_id": row["SpanId"], "score": row["Score"],
            "comment": row["Comment"], "source": row["Source"]}
