"""json_validation on outputs as models write them: bare, fenced, in prose, broken, off-schema."""

import pytest

from canarytrace import attributes as A
from canarytrace.evaluators.json_validation import JsonValidation
from tests.evaluators.span_builders import llm_span

ORDER_SCHEMA = {
    "type": "object",
    "required": ["order_id", "items"],
    "properties": {
        "order_id": {"type": "string"},
        "items": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["sku", "qty"],
                "properties": {"sku": {"type": "string"}, "qty": {"type": "integer", "minimum": 1}},
            },
        },
        "email": {"type": "string", "format": "email"},
    },
}
VALID_ORDER = '{"order_id": "A1", "items": [{"sku": "X", "qty": 2}]}'

evaluator = JsonValidation()


def score(output: str, schema=ORDER_SCHEMA, **attributes):
    return evaluator.evaluate(llm_span(output, expect={A.CANARY_EXPECT_JSON_SCHEMA: schema},
                                       attributes=attributes))


@pytest.mark.parametrize("output, source", [
    (VALID_ORDER, "whole"),
    (f"Sure! Here is the order:\n```json\n{VALID_ORDER}\n```\nAnything else?", "fence"),
    (f"Here it is:\n```\n{VALID_ORDER}\n```", "fence"),
    (f"The order is {VALID_ORDER} as requested [1].", "prose"),
])
def test_valid_json_passes_wherever_the_model_put_it(output, source):
    result = score(output)
    assert (result.passed, result.score, result.label) == (True, 1.0, "valid")
    assert result.details["source"] == source


def test_output_without_json_is_no_json():
    result = score("I'm sorry, I can't place that order.")
    assert (result.passed, result.score, result.label) == (False, 0.0, "no_json")


def test_empty_output_is_no_json():
    assert score("").label == "no_json"


def test_parse_error_gives_line_and_column_in_the_output():
    output = 'Here you go:\n{"order_id": "A1",\n "items": [}\n'
    result = score(output)
    assert (result.passed, result.label) == (False, "parse_error")
    assert (result.details["line"], result.details["column"]) == (3, 12)
    assert "line 3, column 12" in result.reason


def test_parse_error_inside_a_json_fence_is_located_in_the_whole_output():
    output = 'Result:\n\n```json\n{\n  "order_id": "A1",\n  "items": [1,]\n}\n```'
    result = score(output)
    assert result.label == "parse_error"
    assert result.details["source"] == "fence"
    assert (result.details["line"], result.details["column"]) == (6, 15)


def test_nested_valid_object_inside_broken_json_is_not_taken_for_the_answer():
    result = score('Result: {"order_id": "A1", "items": [{"sku": "X", "qty": 2}], }')
    assert result.label == "parse_error"


def test_schema_errors_are_all_reported_with_json_paths_best_first():
    output = '{"items": [{"sku": 7, "qty": 0}, {"qty": "two"}]}'
    result = score(output)
    assert (result.passed, result.label) == (False, "schema_error")
    errors = result.details["errors"]
    assert result.details["error_count"] == len(errors) == 5
    assert errors[0]["path"] == "$" and "'order_id' is a required property" in errors[0]["message"]
    paths = {(e["path"], e["keyword"]) for e in errors}
    assert paths == {("$", "required"), ("$.items[0].sku", "type"),
                     ("$.items[0].qty", "minimum"), ("$.items[1]", "required"),
                     ("$.items[1].qty", "type")}
    assert "$: 'order_id' is a required property" in result.reason


def test_format_is_checked():
    result = score('{"order_id": "A1", "items": [], "email": "not-an-email"}')
    assert result.label == "schema_error"
    assert result.details["errors"][0]["path"] == "$.email"


@pytest.mark.parametrize("output, label", [
    ('{"anything": [1, 2]}', "valid"),
    ("42", "valid"),
    ('"just a string"', "valid"),
    ("no json at all", "no_json"),
    ('{"broken": }', "parse_error"),
])
def test_schema_true_means_any_json(output, label):
    assert score(output, schema=True).label == label


def test_recorded_parser_errors_reduce_the_score_of_a_valid_final_output():
    result = score(VALID_ORDER, **{A.CANARY_PARSER_ERRORS: 1, A.CANARY_PARSER_RETRIES: 1})
    assert (result.passed, result.label) == (True, "valid")
    assert result.score == pytest.approx(0.5)
    assert result.details["parser_errors"] == 1 and result.details["parser_retries"] == 1
    assert "1 / (1 + parser_errors)" in result.details["score_rule"]
    assert score(VALID_ORDER, **{A.CANARY_PARSER_ERRORS: 3}).score == pytest.approx(0.25)


def test_recorded_parser_errors_with_an_invalid_final_output_fail():
    result = score('{"order_id": 5}', **{A.CANARY_PARSER_ERRORS: 2})
    assert (result.passed, result.score, result.label) == (False, 0.0, "schema_error")
    assert result.details["parser_errors"] == 2


@pytest.mark.parametrize("recorded", ["lots", "nan", "inf", "-3"])
def test_unreadable_parser_error_counts_are_taken_as_none(recorded):
    result = score(VALID_ORDER, **{A.CANARY_PARSER_ERRORS: recorded})
    assert (result.passed, result.score, result.details["parser_errors"]) == (True, 1.0, 0)


def test_unusable_schema_is_reported_not_scored():
    result = score(VALID_ORDER, schema={"type": "no-such-type"})
    assert (result.passed, result.score, result.label) == (None, None, "invalid_schema")
    assert "no-such-type" in result.reason
    broken = score(VALID_ORDER, schema="{not json")
    assert broken.label == "invalid_schema"


def test_applies_only_to_spans_that_expect_json():
    assert evaluator.applies_to(llm_span("{}", expect={A.CANARY_EXPECT_JSON_SCHEMA: True}))
    assert not evaluator.applies_to(llm_span("{}"))


def test_batch_scores_each_span():
    spans = [llm_span(o, expect={A.CANARY_EXPECT_JSON_SCHEMA: ORDER_SCHEMA})
             for o in (VALID_ORDER, "nope", "{")]
    assert [r.label for r in evaluator.evaluate_batch(spans)] == ["valid", "no_json",
                                                                 "parse_error"]
