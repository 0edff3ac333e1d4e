"""What content leaves the process: redaction, the capture switch, odd objects, SDK failures."""

from __future__ import annotations

import json
import logging
import re

import canarytrace as ct
from canarytrace import attributes as A

EMAIL = re.compile(r"[\w.]+@[\w.]+")


def redact_emails(text: str) -> str:
    return EMAIL.sub("<email>", text)


def test_redact_applies_to_every_captured_text(traced):
    traced.init(redact=redact_emails)

    @ct.llm(model="m")
    def generate(messages):
        return {"role": "assistant", "content": "I emailed bob@corp.com",
                "tool_calls": [{"id": "1", "function": {
                    "name": "send_mail", "arguments": "{\"to\": \"bob@corp.com\"}"}}]}

    generate([{"role": "user", "content": "Mail alice@corp.com please"}])
    with ct.tool_call("send_mail", arguments={"to": "carol@corp.com"}) as tool:
        tool.set_result({"delivered_to": ["carol@corp.com"]})
    with ct.llm_call(model="m2"):
        ct.expect(reference="Contact dave@corp.com")

    exported = json.dumps([dict(s.attributes) for s in traced.spans()])
    assert "@corp.com" not in exported
    llm = traced.one("chat m")
    assert json.loads(llm.attributes[A.GEN_AI_INPUT_MESSAGES])[0]["parts"][0]["content"] \
        == "Mail <email> please"
    output = json.loads(llm.attributes[A.GEN_AI_OUTPUT_MESSAGES])[0]["parts"]
    assert output[0]["content"] == "I emailed <email>"
    assert output[1] == {"type": "tool_call", "name": "send_mail", "id": "1",
                         "arguments": {"to": "<email>"}}
    tool_span = traced.one("execute_tool send_mail")
    assert json.loads(tool_span.attributes[A.GEN_AI_TOOL_CALL_ARGUMENTS]) == {"to": "<email>"}
    assert traced.one("chat m2").attributes[A.CANARY_EXPECT_REFERENCE] == "Contact <email>"


def test_capture_off_records_no_content_but_keeps_the_rest(traced):
    traced.init(capture_content=False)

    @ct.llm(model="m", route="r")
    def generate(messages):
        return {"choices": [{"message": {"role": "assistant", "content": "secret answer"},
                             "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 3, "completion_tokens": 2}}

    @ct.llm(model="s")
    def stream(messages):
        yield "secret chunk"

    generate("secret question")
    list(stream("secret question"))
    with ct.agent("a") as run:
        run.set_input("secret task")
        with ct.tool_call("t", arguments={"k": "secret"}) as tool:
            tool.set_result("secret result")

    exported = json.dumps([dict(s.attributes) for s in traced.spans()])
    assert "secret" not in exported
    for key in (A.GEN_AI_INPUT_MESSAGES, A.GEN_AI_OUTPUT_MESSAGES,
                A.GEN_AI_TOOL_CALL_ARGUMENTS, A.GEN_AI_TOOL_CALL_RESULT):
        assert key not in exported
    span = traced.one("chat m")
    assert span.attributes[A.GEN_AI_USAGE_OUTPUT_TOKENS] == 2
    assert span.attributes[A.CANARY_ROUTE] == "r"
    assert traced.one("chat s").attributes[A.CANARY_STREAM_CHUNKS] == 1


def test_unserializable_objects_are_recorded_as_their_str(traced):
    class Ticket:
        def __str__(self):
            return "Ticket#77"

    @ct.llm(model="m")
    def generate(messages):
        return {"role": "assistant", "content": [{"type": "text", "text": "done"}]}

    with ct.tool_call("t", arguments={"ticket": Ticket()}):
        pass
    generate([{"role": "user", "content": "close", "metadata": {"ticket": Ticket()}}])
    assert json.loads(traced.one("execute_tool t").attributes[A.GEN_AI_TOOL_CALL_ARGUMENTS]) \
        == {"ticket": "Ticket#77"}
    assert traced.one("chat m").attributes[A.GEN_AI_OUTPUT_MESSAGES]

    @ct.llm(model="m2")
    def close_ticket(messages):
        return {"role": "assistant", "content": "closing", "tool_calls": [
            {"id": "1", "function": {"name": "close", "arguments": {"ticket": Ticket()}}}]}

    close_ticket([{"role": "user", "content": [Ticket()]}])
    span = traced.one("chat m2")
    assert json.loads(span.attributes[A.GEN_AI_INPUT_MESSAGES])[0]["parts"] == [
        {"type": "text", "content": "Ticket#77"}]
    assert json.loads(span.attributes[A.GEN_AI_OUTPUT_MESSAGES])[0]["parts"][1]["arguments"] \
        == {"ticket": "Ticket#77"}


def test_failing_redact_hook_never_breaks_the_call(traced, caplog):
    def broken_redact(text):
        raise RuntimeError("redactor bug")

    traced.init(redact=broken_redact)

    @ct.llm(model="m")
    def generate(messages):
        return "answer"

    @ct.llm(model="s")
    def stream(messages):
        yield "a"

    with caplog.at_level(logging.WARNING, logger="canarytrace"):
        for _ in range(3):
            assert generate("q") == "answer"
            assert list(stream("q")) == ["a"]
    spans = traced.named("chat m")
    assert len(spans) == 3
    assert all(A.GEN_AI_INPUT_MESSAGES not in s.attributes for s in spans)
    input_warnings = [r for r in caplog.records if "could not record LLM input" in r.message]
    assert len(input_warnings) <= 1  # logged once per kind, not once per call


def test_objects_whose_str_raises_do_not_reach_the_caller(traced):
    class Hostile:
        def __str__(self):
            raise ValueError("no str for you")

        __repr__ = __str__

    @ct.llm(model="m")
    def generate(messages):
        return Hostile()

    result = generate([Hostile()])
    assert isinstance(result, Hostile)
    assert len(traced.named("chat m")) == 1
