"""Mirrored pairs as the built-in page shows them: the canaries seen in the spans, one pair's
two arms side by side, and the pairs on which an evaluator's verdict differs between the arms.

A *pair* is what the comparison engine compares: the calls that share ``canary.pair_id``, one
arm per model; an arm is its model's earliest-starting span (the outermost) with what its
nested spans add (eval results, parser errors, the output).
"""

from __future__ import annotations

import difflib
import json
import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from canarytrace import attributes as A
from canarytrace import messages
from canarytrace.analysis.inputs import SLICE_COLUMNS
from canarytrace.store.client import Store
from canarytrace.store.timestamps import to_ns

MAX_CANARIES = 6
MAX_DIFF_CHARS = 20_000
"""Longer answers are diffed on their first this many characters (the page shows all)."""


class BadSlice(ValueError):
    """A slice the API cannot read (HTTP 400)."""


# --- the canaries: base -> candidate model pairs seen in mirrored traffic ---------------

CANARIES_SQL = """
SELECT base_model, candidate_model, count() AS pairs,
       toUnixTimestamp64Milli(min(first)) AS first_ms,
       toUnixTimestamp64Milli(max(last)) AS last_ms,
       arraySort(groupUniqArray(service)) AS services
FROM (
    SELECT PairId,
           anyIf(Model, Variant = {{base:String}}) AS base_model,
           anyIf(Model, Variant = {{candidate:String}}) AS candidate_model,
           min(Timestamp) AS first, max(Timestamp) AS last, any(ServiceName) AS service
    FROM {spans}
    WHERE Project = {{project:String}} AND PairId != '' AND Model != ''
      AND Timestamp >= fromUnixTimestamp64Nano({{since:Int64}})
      AND Timestamp <= fromUnixTimestamp64Nano({{until:Int64}})
    GROUP BY PairId
    HAVING base_model != '' AND candidate_model != ''
)
GROUP BY base_model, candidate_model
ORDER BY pairs DESC
LIMIT {limit}
"""

SPLIT_SQL = """
SELECT Variant AS variant, Model AS model, count() AS calls,
       toUnixTimestamp64Milli(min(Timestamp)) AS first_ms,
       toUnixTimestamp64Milli(max(Timestamp)) AS last_ms,
       arraySort(groupUniqArray(ServiceName)) AS services
FROM {spans}
WHERE Project = {{project:String}} AND Model != ''
  AND Variant IN ({{base:String}}, {{candidate:String}})
  AND Timestamp >= fromUnixTimestamp64Nano({{since:Int64}})
  AND Timestamp <= fromUnixTimestamp64Nano({{until:Int64}})
GROUP BY Variant, Model
ORDER BY calls DESC
"""


def list_canaries(store: Store, project: str, since: datetime, until: datetime
                  ) -> list[dict[str, Any]]:
    """Base -> candidate model pairs with mirrored pairs in the window, most pairs first;
    without mirroring, the busiest base and candidate models (a canary split)."""
    params = {"project": project, "since": to_ns(since), "until": to_ns(until),
              "base": A.VARIANT_BASE, "candidate": A.VARIANT_CANDIDATE}
    spans = store.table("otel_traces")
    found = store.query(CANARIES_SQL.format(spans=spans, limit=MAX_CANARIES), params)
    if found:
        return [{**row, "mirrored": True} for row in found]
    by_variant: dict[str, dict[str, Any]] = {}
    for row in store.query(SPLIT_SQL.format(spans=spans), params):
        by_variant.setdefault(row["variant"], row)
    base, candidate = by_variant.get(A.VARIANT_BASE), by_variant.get(A.VARIANT_CANDIDATE)
    if base is None or candidate is None:
        return []
    return [{"base_model": base["model"], "candidate_model": candidate["model"], "pairs": 0,
             "first_ms": min(base["first_ms"], candidate["first_ms"]),
             "last_ms": max(base["last_ms"], candidate["last_ms"]),
             "services": sorted(set(base["services"]) | set(candidate["services"])),
             "mirrored": False}]


EVALUATORS_SQL = """
SELECT DISTINCT Evaluator FROM {evals}
WHERE Project = {{project:String}} AND Passed IS NOT NULL
  AND SpanTimestamp >= fromUnixTimestamp64Nano({{since:Int64}})
  AND SpanTimestamp <= fromUnixTimestamp64Nano({{until:Int64}})
ORDER BY Evaluator
"""


def evaluators_seen(store: Store, project: str, since: datetime, until: datetime) -> list[str]:
    """The evaluators with pass/fail results in the window: the metrics with disagreements."""
    rows = store.query(EVALUATORS_SQL.format(evals=store.table("eval_results")),
                       {"project": project, "since": to_ns(since), "until": to_ns(until)})
    return [row["Evaluator"] for row in rows]


# --- one pair, side by side -------------------------------------------------------------

PAIR_SPANS_SQL = """
SELECT TraceId, SpanId, SpanName, ServiceName, toUnixTimestamp64Nano(Timestamp) AS start_ns,
       Duration, StatusCode, StatusMessage, SpanAttributes, Model, Variant, Role, Route, Cohort,
       InputTokens, OutputTokens, ParserErrors, ParserRetries, Fallback
FROM {spans} FINAL
WHERE Project = {{project:String}} AND PairId = {{pair_id:String}} AND Model != ''
ORDER BY Timestamp, SpanId
"""

PAIR_EVALS_SQL = """
SELECT SpanId, Evaluator, EvaluatorVersion, Score, Passed, Label, Reason, Timestamp
FROM {evals} FINAL
WHERE Project = {{project:String}} AND PairId = {{pair_id:String}}
ORDER BY Evaluator, Timestamp
"""


def load_pair(store: Store, project: str, pair_id: str) -> dict[str, Any] | None:
    """Both arms of the pair (base first), its input once and a word diff of the answers;
    None when the project has no spans with this pair id."""
    params = {"project": project, "pair_id": pair_id}
    spans = store.query(PAIR_SPANS_SQL.format(spans=store.table("otel_traces")), params)
    if not spans:
        return None
    evals = store.query(PAIR_EVALS_SQL.format(evals=store.table("eval_results")), params)
    by_span: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for row in evals:
        by_span[row["SpanId"]].append(row)
    by_model: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for span in spans:
        by_model[span["Model"]].append(span)
    arms = sorted((_arm(model_spans, by_span) for model_spans in by_model.values()),
                  key=lambda a: (a["variant"] != A.VARIANT_BASE, a["started_ms"]))
    first = min(spans, key=lambda s: s["start_ns"])
    inputs = next((a["input_messages"] for a in arms if a["input_messages"]), [])
    texts = [a["output_text"] for a in arms]
    return {
        "pair_id": pair_id, "started_ms": first["start_ns"] / 1e6,
        "route": first["Route"], "cohort": first["Cohort"], "service": first["ServiceName"],
        "trace_ids": sorted({s["TraceId"] for s in spans}),
        "input_messages": inputs,
        "same_input": len({_messages_key(a["input_messages"]) for a in arms
                           if a["input_messages"]}) <= 1,
        "arms": arms,
        "diff": word_diff(texts[0], texts[1]) if len(texts) == 2 else [],
    }


def _arm(spans: Sequence[Mapping[str, Any]],
         evals_by_span: Mapping[str, list[Mapping[str, Any]]]) -> dict[str, Any]:
    """One model's calls in the pair, as the comparison counts them."""
    outer = min(spans, key=lambda s: s["start_ns"])
    attributes = [dict(s["SpanAttributes"]) for s in spans]
    outputs = next((messages.loads(a.get(A.GEN_AI_OUTPUT_MESSAGES)) for a in attributes
                    if a.get(A.GEN_AI_OUTPUT_MESSAGES)), [])
    inputs = next((messages.loads(a.get(A.GEN_AI_INPUT_MESSAGES)) for a in attributes
                   if a.get(A.GEN_AI_INPUT_MESSAGES)), [])
    errors = [s for s in spans if s["StatusCode"] == "Error"]
    return {
        "model": outer["Model"], "variant": outer["Variant"], "role": outer["Role"],
        "trace_id": outer["TraceId"], "span_id": outer["SpanId"],
        "span_ids": [s["SpanId"] for s in spans],
        "started_ms": outer["start_ns"] / 1e6, "latency_ms": outer["Duration"] / 1e6,
        "input_tokens": max(s["InputTokens"] for s in spans),
        "output_tokens": max(s["OutputTokens"] for s in spans),
        "parser_errors": sum(s["ParserErrors"] for s in spans),
        "parser_retries": sum(s["ParserRetries"] for s in spans),
        "fallback": any(s["Fallback"] for s in spans),
        "error": bool(errors),
        "status_message": next((s["StatusMessage"] for s in errors if s["StatusMessage"]), ""),
        "input_messages": inputs, "output_messages": outputs,
        "output_text": answer_text(outputs),
        "evals": _latest_evals([row for s in spans for row in evals_by_span.get(s["SpanId"], [])]),
    }


def _latest_evals(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One result per evaluator: its last-scored version, on the arm's earliest scored span."""
    latest: dict[str, Mapping[str, Any]] = {}
    for row in rows:
        current = latest.get(row["Evaluator"])
        if current is None or row["Timestamp"] > current["Timestamp"]:
            latest[row["Evaluator"]] = row
    return [{"evaluator": r["Evaluator"], "version": r["EvaluatorVersion"], "score": r["Score"],
             "passed": r["Passed"], "label": r["Label"], "reason": r["Reason"]}
            for r in sorted(latest.values(), key=lambda r: r["Evaluator"])]


def answer_text(output_messages: Sequence[Mapping[str, Any]]) -> str:
    """The answer as text: text parts as they are, tool calls as ``→ name(arguments)``."""
    lines = []
    for message in output_messages:
        for part in message.get("parts") or []:
            if part.get("type") == "text":
                lines.append(str(part.get("content", "")))
            elif part.get("type") == "tool_call":
                lines.append(f"→ {part.get('name', '')}({_compact(part.get('arguments'))})")
    return "\n".join(lines)


def _compact(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def _messages_key(items: Sequence[Mapping[str, Any]]) -> str:
    return repr([(m.get("role"), m.get("parts")) for m in items])


_TOKENS = re.compile(r"\s+|[\w]+|[^\w\s]")


def word_diff(before: str, after: str) -> list[dict[str, str]]:
    """``before`` -> ``after`` as runs of ``equal``, ``delete`` and ``insert`` text, by word."""
    a = _TOKENS.findall(before[:MAX_DIFF_CHARS])
    b = _TOKENS.findall(after[:MAX_DIFF_CHARS])
    runs: list[dict[str, str]] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if op in ("equal", "delete", "replace"):
            runs.append({"op": "equal" if op == "equal" else "delete", "text": "".join(a[i1:i2])})
        if op in ("insert", "replace"):
            runs.append({"op": "insert", "text": "".join(b[j1:j2])})
    return [r for r in runs if r["text"]]


# --- disagreements: one arm passed, the other failed ------------------------------------

@dataclass(frozen=True)
class DisagreementQuery:
    """Pairs of ``base`` and ``candidate`` in [since, until] that ``evaluator`` scored on both
    arms, within ``slice`` (``all``, ``route=billing``, ``route=billing/cohort=pro``)."""

    base: str
    candidate: str
    evaluator: str
    since: datetime
    until: datetime
    slice: str = "all"
    failed: str | None = None
    """``candidate`` (the candidate failed where the base passed), ``base``, or None: both."""
    limit: int = 100


def parse_slice(text: str) -> dict[str, str]:
    """``route=billing/cohort=pro`` -> {"route": "billing", "cohort": "pro"}; ``all`` -> {}."""
    if text.strip().lower() in ("", "all"):
        return {}
    dims: dict[str, str] = {}
    for part in text.split("/"):
        name, sep, value = part.partition("=")
        name = name.strip().lower()
        if not sep or name not in SLICE_COLUMNS:
            raise BadSlice(f"cannot read slice {text!r}: use all, or dimension=value parts "
                           f"joined by '/' ({', '.join(SLICE_COLUMNS)}), e.g. route=billing")
        if name in dims:
            raise BadSlice(f"slice {text!r} names {name} twice")
        dims[name] = value
    return dims


PAIR_OUTCOMES_SQL = """
SELECT PairId AS pair_id,
       toUnixTimestamp64Milli(min(SpanTimestamp)) AS started_ms,
       any(Route) AS route, any(Cohort) AS cohort, any(ServiceName) AS service,
       countIf({base_scored}) AS base_scored,
       countIf({candidate_scored}) AS candidate_scored,
       argMinIf(assumeNotNull(Passed), SpanTimestamp, {base_scored}) AS base_passed,
       argMinIf(assumeNotNull(Passed), SpanTimestamp, {candidate_scored}) AS candidate_passed,
       argMinIf(Score, SpanTimestamp, {base_scored}) AS base_score,
       argMinIf(Score, SpanTimestamp, {candidate_scored}) AS candidate_score,
       argMinIf(Reason, SpanTimestamp, {base_scored}) AS base_reason,
       argMinIf(Reason, SpanTimestamp, {candidate_scored}) AS candidate_reason,
       argMinIf(Label, SpanTimestamp, {base_scored}) AS base_label,
       argMinIf(Label, SpanTimestamp, {candidate_scored}) AS candidate_label
FROM {evals} FINAL
WHERE Project = {{project:String}} AND Evaluator = {{evaluator:String}} AND PairId != ''
  AND Model IN ({{base:String}}, {{candidate:String}})
  AND SpanTimestamp >= fromUnixTimestamp64Nano({{since:Int64}})
  AND SpanTimestamp < fromUnixTimestamp64Nano({{until:Int64}})
  -- the version that scored last, as the comparison reads it
  AND EvaluatorVersion = (
        SELECT argMax(EvaluatorVersion, Timestamp) FROM {evals}
        WHERE Project = {{project:String}} AND Evaluator = {{evaluator:String}}
          AND SpanTimestamp >= fromUnixTimestamp64Nano({{since:Int64}})
          AND SpanTimestamp < fromUnixTimestamp64Nano({{until:Int64}}))
GROUP BY PairId
HAVING base_scored > 0 AND candidate_scored > 0{slice_having}
"""

COUNTS_SQL = """
SELECT count() AS pairs,
       countIf(base_passed AND NOT candidate_passed) AS candidate_failed,
       countIf(candidate_passed AND NOT base_passed) AS base_failed
FROM ({outcomes})
"""

LIST_SQL = """
SELECT * FROM ({outcomes})
WHERE base_passed != candidate_passed{failed}
ORDER BY candidate_passed, started_ms DESC
LIMIT {{limit:UInt32}}
"""


def list_disagreements(store: Store, project: str, q: DisagreementQuery) -> dict[str, Any]:
    """How many scored pairs disagree each way, and the disagreeing pairs (the candidate's
    failures first, newest first)."""
    dims = parse_slice(q.slice)
    params: dict[str, Any] = {"project": project, "evaluator": q.evaluator, "base": q.base,
                              "candidate": q.candidate, "since": to_ns(q.since),
                              "until": to_ns(q.until), "limit": q.limit}
    having = ""
    for name, value in dims.items():
        having += f" AND {name} = {{slice_{name}:String}}"
        params[f"slice_{name}"] = value
    outcomes = PAIR_OUTCOMES_SQL.format(
        evals=store.table("eval_results"), slice_having=having,
        base_scored="Model = {base:String} AND Passed IS NOT NULL",
        candidate_scored="Model = {candidate:String} AND Passed IS NOT NULL")
    failed = {"candidate": " AND NOT candidate_passed", "base": " AND NOT base_passed"}
    counts = store.query(COUNTS_SQL.format(outcomes=outcomes), params)[0]
    rows = store.query(LIST_SQL.format(outcomes=outcomes, failed=failed.get(q.failed or "", "")),
                       params)
    return {"base_model": q.base, "candidate_model": q.candidate, "evaluator": q.evaluator,
            "slice": q.slice or "all", "slice_dims": dims, "counts": counts,
            "pairs": [_disagreement(r) for r in rows]}


def _disagreement(row: Mapping[str, Any]) -> dict[str, Any]:
    def arm(name: str) -> dict[str, Any]:
        return {"passed": bool(row[f"{name}_passed"]), "score": row[f"{name}_score"],
                "label": row[f"{name}_label"], "reason": row[f"{name}_reason"]}

    return {"pair_id": row["pair_id"], "started_ms": row["started_ms"], "route": row["route"],
            "cohort": row["cohort"], "service": row["service"],
            "failed": "candidate" if row["base_passed"] else "base",
            "base": arm("base"), "candidate": arm("candidate")}
