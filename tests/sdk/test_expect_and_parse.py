"""ct.expect and ct.parse_json: what evaluators later read off the LLM span."""

from __future__ import annotations

import json

import pytest

import canarytrace as ct
from canarytrace import attributes as A

SCHEMA = {"type": "object", "required": ["name", "qty"],
          "properties": {"name": {"type": "string"}, "qty": {"type": "integer"}}}


def test_expect_inside_a_call_sets_every_expectation_as_json(traced):
    @ct.llm(model="m")
    def generate(messages):
        ct.expect(instructions=["detectable_format:json_format",
                                {"id": "length_constraints:number_words",
                                 "kwargs": {"relation": "less than", "num_words": 50}}],
                  json_schema=SCHEMA,
                  tools=[{"name": "lookup_invoice", "arguments": {"id": "INV-1"}}],
                  reference="Refund of 20 EUR", task="Answer the refund question")
        return '{"name": "x", "qty": 1}'

    generate("hi")
    span = traced.one("chat m")
    assert json.loads(span.attributes[A.CANARY_EXPECT_INSTRUCTIONS]) == [
        {"id": "detectable_format:json_format", "kwargs": {}},
        {"id": "length_constraints:number_words",
         "kwargs": {"relation": "less than", "num_words": 50}}]
    assert json.loads(span.attributes[A.CANARY_EXPECT_JSON_SCHEMA]) == SCHEMA
    assert json.loads(span.attributes[A.CANARY_EXPECT_TOOLS]) == [
        {"name": "lookup_invoice", "arguments": {"id": "INV-1"}}]
    assert span.attributes[A.CANARY_EXPECT_REFERENCE] == "Refund of 20 EUR"
    assert span.attributes[A.CANARY_TASK] == "Answer the refund question"


def test_expect_in_a_nested_span_also_reaches_the_llm_span(traced):
    tracer = traced.provider.get_tracer("app")

    with ct.llm_call(model="m"), tracer.start_as_current_span("post-process"):
        ct.expect(reference="42")
    assert traced.one("post-process").attributes[A.CANARY_EXPECT_REFERENCE] == "42"
    assert traced.one("chat m").attributes[A.CANARY_EXPECT_REFERENCE] == "42"


def test_expect_as_context_manager_stamps_calls_started_inside(traced):
    @ct.llm(model="m")
    def generate(messages):
        return "ok"

    with ct.expect(json_schema=SCHEMA, tools=["search"]):
        generate("first")
        generate("second")
    generate("after")
    first, second, after = traced.named("chat m")
    for span in (first, second):
        assert json.loads(span.attributes[A.CANARY_EXPECT_JSON_SCHEMA]) == SCHEMA
        assert json.loads(span.attributes[A.CANARY_EXPECT_TOOLS]) == [{"name": "search"}]
    assert A.CANARY_EXPECT_JSON_SCHEMA not in after.attributes


def test_invalid_instruction_items_are_skipped_not_raised(traced):
    with ct.llm_call(model="m"):
        ct.expect(instructions=["keywords:existence", 42])
    assert json.loads(traced.one("chat m").attributes[A.CANARY_EXPECT_INSTRUCTIONS]) == [
        {"id": "keywords:existence", "kwargs": {}}]


@pytest.mark.parametrize("text", [
    '{"name": "bolt", "qty": 3}',
    'Here you go:\n```json\n{"name": "bolt", "qty": 3}\n```\nAnything else?',
    'Sure! The order is {"name": "bolt", "qty": 3}. Let me know.',
    '```\n{"name": "bolt", "qty": 3}\n```',
])
def test_parse_json_finds_json_in_fences_and_prose(traced, text):
    assert ct.parse_json(text, SCHEMA) == {"name": "bolt", "qty": 3}


def test_parse_json_error_says_where_the_json_breaks(traced):
    text = 'Result:\n{"name": "bolt",\n "qty": }'
    with pytest.raises(ct.JSONParseError) as raised:
        ct.parse_json(text)
    error = raised.value
    assert isinstance(error, ValueError)
    assert (error.lineno, error.colno) == (3, 9)
    assert text[error.position] == "}"
    assert "line 3, column 9" in str(error)


def test_parse_json_without_any_json(traced):
    with pytest.raises(ct.JSONParseError, match="no JSON object or array"):
        ct.parse_json("I cannot help with that.")


def test_schema_violation_lists_the_path(traced):
    with pytest.raises(ct.JSONParseError) as raised:
        ct.parse_json('{"name": "bolt", "qty": "three"}', SCHEMA)
    assert raised.value.schema_errors == ["$.qty: 'three' is not of type 'integer'"]


def test_parser_errors_and_retries_are_counted_on_the_llm_span(traced):
    answers = iter(["not json", '{"name": "bolt"', '{"name": "bolt", "qty": 2}'])

    @ct.llm(model="extractor")
    def extract(messages):
        for attempt in range(3):
            try:
                return ct.parse_json(next(answers), SCHEMA, retry=attempt > 0)
            except ct.JSONParseError:
                continue
        raise AssertionError("unreachable")

    assert extract("order 2 bolts") == {"name": "bolt", "qty": 2}
    span = traced.one("chat extractor")
    assert span.attributes[A.CANARY_PARSER_ERRORS] == 2
    assert span.attributes[A.CANARY_PARSER_RETRIES] == 2


def test_parser_counts_in_a_plain_span_outside_llm_calls(traced):
    tracer = traced.provider.get_tracer("app")
    with tracer.start_as_current_span("handler"):
        for _ in range(2):
            with pytest.raises(ct.JSONParseError):
                ct.parse_json("nope")
    assert traced.one("handler").attributes[A.CANARY_PARSER_ERRORS] == 2


def test_parse_json_without_a_span_still_parses():
    assert ct.parse_json("[1, 2]") == [1, 2]
