"""ct.agent / run.step / ct.tool_call: an agent's trajectory as spans."""

from __future__ import annotations

import json

import pytest
from opentelemetry.trace import SpanKind, StatusCode

import canarytrace as ct
from canarytrace import attributes as A


def test_steps_are_numbered_in_order_under_the_agent_span(traced):
    @ct.llm(model="planner")
    def plan(messages):
        return "look up the invoice"

    with ct.agent("support-agent") as run:
        run.set_input("Why was I charged twice?")
        with run.step("plan"):
            plan("Why was I charged twice?")
        with run.step("tool_call"), ct.tool_call("lookup_invoice",
                                                 arguments={"invoice": "INV-7"}) as tool:
            tool.set_result({"status": "duplicate", "amount": 20})
        with run.step("respond"):
            pass
        run.set_output("You were charged twice by mistake; refunded.")

    agent = traced.one("invoke_agent support-agent")
    assert agent.kind is SpanKind.INTERNAL
    assert agent.attributes[A.GEN_AI_OPERATION_NAME] == "invoke_agent"
    assert agent.attributes[A.GEN_AI_AGENT_NAME] == "support-agent"
    assert json.loads(agent.attributes[A.GEN_AI_OUTPUT_MESSAGES])[0]["parts"][0]["content"] \
        .startswith("You were charged twice")
    steps = sorted((s for s in traced.spans() if A.AGENT_TRAJECTORY_STEP in s.attributes),
                   key=lambda s: s.attributes[A.AGENT_TRAJECTORY_STEP])
    assert [(s.attributes[A.AGENT_TRAJECTORY_STEP], s.attributes[A.AGENT_TRAJECTORY_STEP_KIND])
            for s in steps] == [(0, "plan"), (1, "tool_call"), (2, "respond")]
    assert all(s.parent.span_id == agent.context.span_id for s in steps)
    assert all(s.kind is SpanKind.INTERNAL for s in steps)
    assert traced.one("chat planner").parent.span_id == steps[0].context.span_id

    tool_span = traced.one("execute_tool lookup_invoice")
    assert tool_span.kind is SpanKind.INTERNAL
    assert tool_span.parent.span_id == steps[1].context.span_id
    assert tool_span.attributes[A.GEN_AI_OPERATION_NAME] == "execute_tool"
    assert tool_span.attributes[A.GEN_AI_TOOL_NAME] == "lookup_invoice"
    assert json.loads(tool_span.attributes[A.GEN_AI_TOOL_CALL_ARGUMENTS]) == {"invoice": "INV-7"}
    assert json.loads(tool_span.attributes[A.GEN_AI_TOOL_CALL_RESULT]) == {
        "status": "duplicate", "amount": 20}
    assert A.AGENT_TRAJECTORY_STEP not in tool_span.attributes  # its step carries the number


def test_tool_calls_directly_in_a_run_take_step_numbers(traced):
    with ct.agent("researcher") as run:
        with run.step("plan"):
            pass
        with ct.tool_call("search", arguments={"q": "canary"}, call_id="call-1") as tool:
            tool.set_result(["doc-1", "doc-2"])
        with ct.tool_call("fetch", arguments={"url": "doc-1"}):
            pass
    search, fetch = traced.one("execute_tool search"), traced.one("execute_tool fetch")
    assert search.attributes[A.AGENT_TRAJECTORY_STEP] == 1
    assert fetch.attributes[A.AGENT_TRAJECTORY_STEP] == 2
    assert search.attributes[A.AGENT_TRAJECTORY_STEP_KIND] == "tool_call"
    assert search.attributes[A.GEN_AI_TOOL_CALL_ID] == "call-1"


def test_each_run_numbers_its_own_steps(traced):
    for name in ("a", "b"):
        with ct.agent(name) as run:
            for kind in ("plan", "respond"):
                with run.step(kind):
                    pass
    numbers = [s.attributes[A.AGENT_TRAJECTORY_STEP] for s in traced.spans()
               if A.AGENT_TRAJECTORY_STEP in s.attributes]
    assert numbers == [0, 1, 0, 1]


def test_tool_failure_is_recorded_and_reraised(traced):
    with pytest.raises(LookupError), ct.agent("a"), ct.tool_call("lookup"):
        raise LookupError("no such invoice")
    tool = traced.one("execute_tool lookup")
    assert tool.status.status_code is StatusCode.ERROR
    assert tool.attributes[A.ERROR_TYPE] == "LookupError"
    assert traced.one("invoke_agent a").status.status_code is StatusCode.ERROR


def test_tool_call_outside_an_agent(traced):
    with ct.tool_call("calculator", arguments={"expr": "2+2"}) as tool:
        tool.set_result(4)
    span = traced.one("execute_tool calculator")
    assert span.attributes[A.GEN_AI_TOOL_CALL_RESULT] == "4"
    assert A.AGENT_TRAJECTORY_STEP not in span.attributes
