"""tool_selection: BFCL-style matching of called tools against canary.expect.tools."""

import pytest

from canarytrace import attributes as A
from canarytrace.evaluators.tool_selection import ToolSelection
from tests.evaluators.span_builders import agent_run, llm_span

evaluator = ToolSelection()

WEATHER = {"name": "get_weather", "arguments": {"city": "San Francisco, CA", "days": 3}}
TIME = {"name": "get_time", "arguments": {"timezone": "Europe/Paris"}}
# BFCL "possible answers" form: allowed values per parameter, "" marks it optional.
WEATHER_BFCL = {"get_weather": {"city": ["San Francisco, CA", "SF"], "days": [3],
                                "unit": ["celsius", "fahrenheit", ""]}}


def call(name, **arguments):
    return {"name": name, "arguments": arguments}


CASES = [
    # (id, expected, calls, label, passed)
    ("exact match", [WEATHER], [call("get_weather", city="San Francisco, CA", days=3)],
     "correct", True),
    ("strings normalized: case, spaces, punctuation", [WEATHER],
     [call("get_weather", city="san francisco ca", days=3)], "correct", True),
    ("single quote read as double quote", [call("say", text='say "hi"')],
     [call("say", text="say 'hi'")], "correct", True),
    ("dotted name may be called with underscores", [call("math.hypot", x=3, y=4)],
     [call("math_hypot", x=3, y=4)], "correct", True),
    ("wrong function name", [WEATHER], [call("get_forecast", city="SF", days=3)],
     "wrong_func_name", False),
    ("missing required parameter", [WEATHER], [call("get_weather", city="San Francisco, CA")],
     "missing_required", False),
    ("unexpected parameter", [WEATHER],
     [call("get_weather", city="San Francisco, CA", days=3, verbose=True)],
     "unexpected_param", False),
    ("string where an int is expected", [WEATHER],
     [call("get_weather", city="San Francisco, CA", days="3")], "type_error", False),
    ("int accepted where a float is expected", [call("set_temp", degrees=21.0)],
     [call("set_temp", degrees=21)], "correct", True),
    ("float where an int is expected", [WEATHER],
     [call("get_weather", city="San Francisco, CA", days=3.0)], "type_error", False),
    ("bool is not a number", [call("page", size=1)], [call("page", size=True)],
     "type_error", False),
    ("wrong string value", [WEATHER], [call("get_weather", city="Los Angeles", days=3)],
     "value_error", False),
    ("wrong number value", [WEATHER],
     [call("get_weather", city="San Francisco, CA", days=5)], "value_error", False),
    ("null expected and given", [call("clear", filter=None)], [call("clear", filter=None)],
     "correct", True),
    ("BFCL: any allowed value", [WEATHER_BFCL], [call("get_weather", city="SF", days=3)],
     "correct", True),
    ("BFCL: optional parameter left out", [WEATHER_BFCL],
     [call("get_weather", city="SF", days=3)], "correct", True),
    ("BFCL: optional parameter given an allowed value", [WEATHER_BFCL],
     [call("get_weather", city="SF", days=3, unit="Celsius")], "correct", True),
    ("BFCL: optional parameter given a value not allowed", [WEATHER_BFCL],
     [call("get_weather", city="SF", days=3, unit="kelvin")], "value_error", False),
    ("BFCL: required parameter left out", [WEATHER_BFCL], [call("get_weather", city="SF")],
     "missing_required", False),
    ("BFCL: value outside the allowed list", [WEATHER_BFCL],
     [call("get_weather", city="Oakland", days=3)], "value_error", False),
    ("list value in order", [call("tag", labels=["Urgent", "billing"])],
     [call("tag", labels=["urgent", "Billing"])], "correct", True),
    ("list value in another order", [call("tag", labels=["urgent", "billing"])],
     [call("tag", labels=["billing", "urgent"])], "value_error", False),
    ("BFCL: list alternatives", [{"tag": {"labels": [["a", "b"], ["b", "a"]]}}],
     [call("tag", labels=["b", "a"])], "correct", True),
    ("object value", [call("book", guest={"name": "Ann Lee", "nights": 2})],
     [call("book", guest={"name": "ann lee", "nights": 2})], "correct", True),
    ("object value with a wrong field", [call("book", guest={"name": "Ann", "nights": 2})],
     [call("book", guest={"name": "Ann", "nights": 3})], "value_error", False),
    ("object value with an extra key", [call("book", guest={"name": "Ann"})],
     [call("book", guest={"name": "Ann", "vip": True})], "value_error", False),
    ("BFCL: object with an optional key", [{"book": {"guest": [{"name": ["Ann"],
                                                                "vip": [True, ""]}]}}],
     [call("book", guest={"name": "Ann"})], "correct", True),
    ("parallel calls in another order", [call("get_weather", city="Paris"),
                                         call("get_weather", city="Rome")],
     [call("get_weather", city="Rome"), call("get_weather", city="Paris")], "correct", True),
    ("parallel calls, one wrong value", [call("get_weather", city="Paris"),
                                         call("get_weather", city="Rome")],
     [call("get_weather", city="Rome"), call("get_weather", city="Milan")],
     "value_error", False),
    ("several functions in any order", [WEATHER, TIME],
     [call("get_time", timezone="europe/paris"),
      call("get_weather", city="San Francisco, CA", days=3)], "correct", True),
    ("several functions, one never called", [WEATHER, TIME],
     [call("get_weather", city="San Francisco, CA", days=3), call("get_news", topic="x")],
     "wrong_func_name", False),
    ("too few calls", [WEATHER, TIME], [call("get_time", timezone="Europe/Paris")],
     "wrong_count", False),
    ("too many calls", [TIME], [call("get_time", timezone="Europe/Paris"),
                                call("get_time", timezone="Europe/Paris")],
     "wrong_count", False),
    ("expected call never made", [WEATHER], [], "missing_call", False),
    ("irrelevance: no call expected, none made", [], [], "correct", True),
    ("irrelevance: no call expected, one made", [], [call("get_time", timezone="UTC")],
     "irrelevance_violation", False),
    ("called without arguments", [TIME], [call("get_time")], "missing_required", False),
    ("name-only expectation accepts any arguments", [{"name": "get_time"}, "get_weather"],
     [call("get_weather", city="Oslo"), call("get_time", tz="UTC")], "correct", True),
    ("name-only expectation still checks the name", ["get_time"], [call("get_date")],
     "wrong_func_name", False),
    ("empty arguments expected, some given", [{"name": "refresh", "arguments": {}}],
     [call("refresh", force=True)], "unexpected_param", False),
]


@pytest.mark.parametrize("expected, calls, label, passed",
                         [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_bfcl_cases(expected, calls, label, passed):
    result = evaluator.evaluate(llm_span(tool_calls=calls,
                                         expect={A.CANARY_EXPECT_TOOLS: expected}))
    assert (result.label, result.passed) == (label, passed), result.reason
    if passed:
        assert result.score == 1.0
    else:
        assert result.score < 1.0 and result.reason


def test_cases_cover_every_error_type():
    labels = {case[3] for case in CASES}
    assert labels >= {"correct", "wrong_func_name", "missing_required", "unexpected_param",
                      "type_error", "value_error", "wrong_count", "missing_call",
                      "irrelevance_violation"}
    assert len(CASES) >= 30


def test_arguments_that_are_not_json_are_malformed():
    span = llm_span(tool_calls=[call("get_time")], expect={A.CANARY_EXPECT_TOOLS: [TIME]})
    raw = span.attributes[A.GEN_AI_OUTPUT_MESSAGES].replace('"arguments": "{}"',
                                                            '"arguments": "timezone=UTC"')
    broken = llm_span(question=None, attributes={A.GEN_AI_OUTPUT_MESSAGES: raw},
                      expect={A.CANARY_EXPECT_TOOLS: [TIME]})
    result = evaluator.evaluate(broken)
    assert (result.label, result.passed) == ("malformed_arguments", False)


def test_partial_credit_is_the_share_of_calls_matched():
    result = evaluator.evaluate(llm_span(
        tool_calls=[call("get_time", timezone="Europe/Paris")],
        expect={A.CANARY_EXPECT_TOOLS: [WEATHER, TIME]}))
    assert result.score == pytest.approx(0.5)
    matches = result.details["matches"]
    assert [m["expected"] for m in matches] == ["get_weather", "get_time"]
    assert matches[1]["errors"] == [] and matches[0]["errors"][0]["type"] == "wrong_func_name"


def test_error_details_name_the_parameter():
    result = evaluator.evaluate(llm_span(
        tool_calls=[call("get_weather", city="Oslo", days="3", extra=1)],
        expect={A.CANARY_EXPECT_TOOLS: [WEATHER]}))
    errors = result.details["matches"][0]["errors"]
    assert [(e["type"], e["param"]) for e in errors] == [
        ("unexpected_param", "extra"), ("type_error", "days"), ("value_error", "city")]
    assert result.label == "unexpected_param"


def test_a_single_expected_object_is_read_as_one_call():
    result = evaluator.evaluate(llm_span(tool_calls=[call("get_time", timezone="Europe/Paris")],
                                         expect={A.CANARY_EXPECT_TOOLS: TIME}))
    assert result.passed is True


def test_unreadable_expectation_is_reported_not_scored():
    for bad in ("not json", [{"arguments": {}}], [42], [""], [{"name": 3}]):
        result = evaluator.evaluate(llm_span(tool_calls=[call("f")],
                                             expect={A.CANARY_EXPECT_TOOLS: bad}))
        assert (result.passed, result.score, result.label) == (None, None,
                                                               "invalid_expectation")


def test_agent_run_is_judged_on_its_executed_tools():
    expected = {A.CANARY_EXPECT_TOOLS: [call("lookup_invoice", invoice_id="INV-7"),
                                        call("send_email", to="ann@example.com")]}
    good = agent_run([("plan", []), ("act", [("lookup_invoice", {"invoice_id": "inv 7"}),
                                             ("send_email", {"to": "ann@example.com"})]),
                      ("respond", [])], expect=expected)
    assert evaluator.evaluate(good).passed is True
    bad = agent_run([("act", [("lookup_invoice", {"invoice_id": "INV-8"}),
                              ("send_email", {"to": "ann@example.com"})])], expect=expected)
    result = evaluator.evaluate(bad)
    assert (result.label, result.passed) == ("value_error", False)
    assert result.details["called"] == ["lookup_invoice", "send_email"]


def test_applies_only_when_tools_are_expected():
    assert evaluator.applies_to(llm_span("hi", expect={A.CANARY_EXPECT_TOOLS: []}))
    assert not evaluator.applies_to(llm_span("hi"))
