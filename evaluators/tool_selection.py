"""``tool_selection``: did the model call the expected tools with the right arguments?

The expected calls come from ``canary.expect.tools`` (see ``tool_matching`` for the
two accepted forms); the actual calls are the ``tool_call`` parts of the span's output
messages, or for an agent run the ``execute_tool`` spans below it. Several and parallel
calls are matched greedily in any order, as BFCL's no-order checker does.

Labels: ``correct``; ``irrelevance_violation`` (``[]`` expected, a tool was called);
``missing_call`` (calls expected, none made); ``wrong_count``; else the first unmatched
call's error: ``wrong_func_name``, ``missing_required``, ``unexpected_param``,
``type_error``, ``value_error``, ``malformed_arguments``. ``invalid_expectation``
(``passed`` None) when the expectation cannot be read. The score is the share of
calls matched: ``matched / max(expected, called)``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from canarytrace import attributes as A
from canarytrace.evaluators.base import EvalResult, Evaluator, SpanRecord
from canarytrace.evaluators.tool_matching import (
    WRONG_FUNC_NAME,
    CallError,
    ExpectedCall,
    InvalidExpectation,
    check_call,
    parse_expected,
    same_function,
)
from canarytrace.evaluators.traces import called_tools


def parse_expectation(value: Any) -> list[ExpectedCall]:
    """``canary.expect.tools`` as ExpectedCalls; raises InvalidExpectation."""
    if isinstance(value, Mapping):
        value = [value]
    if not isinstance(value, list):
        raise InvalidExpectation(f"canary.expect.tools must be a JSON list, got {value!r}")
    return [parse_expected(entry) for entry in value]


def _closest_errors(expected: ExpectedCall, calls: Sequence[Mapping[str, Any]],
                    free: list[int]) -> tuple[int | None, list[CallError]]:
    """Why no free call matched ``expected``: the errors of the nearest same-named call."""
    same_name = [i for i in free if same_function(str(calls[i].get("name", "")), expected.name)]
    if not same_name:
        names = [calls[i].get("name") for i in free]
        return None, [CallError(WRONG_FUNC_NAME, f"{expected.name!r} was not called "
                                                 f"(unmatched calls: {names})")]
    errors = {i: check_call(calls[i], expected) for i in same_name}
    nearest = min(same_name, key=lambda i: len(errors[i]))
    return nearest, errors[nearest]


def match_calls(expected: Sequence[ExpectedCall],
                calls: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Greedy any-order matching: each expected call takes the first free call that fits."""
    free = list(range(len(calls)))
    outcomes = []
    for spec in expected:
        hit = next((i for i in free if not check_call(calls[i], spec)), None)
        if hit is not None:
            free.remove(hit)
            outcomes.append({"expected": spec.name, "call_index": hit, "errors": []})
            continue
        nearest, errors = _closest_errors(spec, calls, free)
        outcomes.append({"expected": spec.name, "call_index": nearest,
                         "errors": [e.as_dict() for e in errors]})
    return outcomes


class ToolSelection(Evaluator):
    """BFCL-style AST matching of the tools a span called against the expected calls."""

    name = "tool_selection"
    version = "1"

    def applies_to(self, span: SpanRecord) -> bool:
        return bool(span.attributes.get(A.CANARY_EXPECT_TOOLS))

    def evaluate(self, span: SpanRecord) -> EvalResult:
        try:
            expected = parse_expectation(span.expectation(A.CANARY_EXPECT_TOOLS))
        except InvalidExpectation as exc:
            return EvalResult(None, None, "invalid_expectation", str(exc))
        return judge_calls(expected, called_tools(span))


def judge_calls(expected: Sequence[ExpectedCall],
                calls: Sequence[Mapping[str, Any]]) -> EvalResult:
    """The tool_selection verdict for these actual ``calls`` against ``expected``."""
    called = [str(c.get("name", "")) for c in calls]
    if not expected:
        if calls:
            return EvalResult(0.0, False, "irrelevance_violation",
                              f"no tool call was expected, but {called} were called",
                              {"expected": [], "called": called})
        return EvalResult(1.0, True, "correct", "no tool call was expected and none was made",
                          {"expected": [], "called": []})
    if not calls:
        return EvalResult(0.0, False, "missing_call", "a tool call was expected, none was made",
                          {"expected": [e.name for e in expected], "called": []})
    outcomes = match_calls(expected, calls)
    matched = sum(not o["errors"] for o in outcomes)
    details = {"expected": [e.name for e in expected], "called": called, "matches": outcomes}
    score = matched / max(len(expected), len(calls))
    if len(calls) != len(expected):
        return EvalResult(score, False, "wrong_count",
                          f"{len(expected)} call(s) expected, {len(calls)} made", details)
    failed = next((o for o in outcomes if o["errors"]), None)
    if failed is None:
        return EvalResult(1.0, True, "correct", f"all {matched} expected call(s) made", details)
    first = failed["errors"][0]
    return EvalResult(score, False, first["type"], first["message"], details)
