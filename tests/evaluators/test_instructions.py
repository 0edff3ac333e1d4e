"""The 25 IFEval checkers (a pass and a fail each), loose readings, and the evaluator on spans."""

from __future__ import annotations

import json

import pytest

from canarytrace import attributes as A
from canarytrace.evaluators.base import SpanRecord
from canarytrace.evaluators.ifbench_instructions import IFBENCH_INSTRUCTIONS
from canarytrace.evaluators.instruction_adherence import InstructionAdherence
from canarytrace.evaluators.instructions import (
    INSTRUCTIONS,
    InstructionError,
    UnknownInstruction,
    build_instruction,
    follows_loose,
    follows_strict,
)

IFEVAL_IDS = {
    "keywords:existence", "keywords:frequency", "keywords:forbidden_words",
    "keywords:letter_frequency", "language:response_language",
    "length_constraints:number_sentences", "length_constraints:number_paragraphs",
    "length_constraints:number_words", "length_constraints:nth_paragraph_first_word",
    "detectable_content:number_placeholders", "detectable_content:postscript",
    "detectable_format:number_bullet_lists", "detectable_format:constrained_response",
    "detectable_format:number_highlighted_sections", "detectable_format:multiple_sections",
    "detectable_format:json_format", "detectable_format:title",
    "combination:two_responses", "combination:repeat_prompt",
    "startend:end_checker", "startend:quotation",
    "change_case:capital_word_frequency", "change_case:english_capital",
    "change_case:english_lowercase", "punctuation:no_comma",
}

# (instruction id, kwargs, a response that follows it, one that does not)
CASES = [
    # keywords
    ("keywords:existence", {"keywords": ["canary", "rollback"]},
     "The canary failed, so we did a ROLLBACK.", "The canary passed."),
    ("keywords:frequency", {"keyword": "canary", "frequency": 3, "relation": "at least"},
     "Canary one, canary two, CANARY three.", "Canary one, canary two."),
    ("keywords:frequency", {"keyword": "very", "frequency": 2, "relation": "less than"},
     "This is very good.", "This is very, very good."),
    ("keywords:forbidden_words", {"forbidden_words": ["cheap", "free"]},
     "Cheaply made, freely given: neither word appears whole.", "It is CHEAP to run."),
    ("keywords:letter_frequency", {"letter": "z", "let_frequency": 3, "let_relation": "at least"},
     "Zany zebras buzz.", "A quiet morning."),
    ("keywords:letter_frequency", {"letter": "#", "let_frequency": 2, "let_relation": "at least"},
     "Ship it #canary #release", "Ship it #canary"),
    # language
    ("language:response_language", {"language": "fr"},
     "Le déploiement progressif permet de comparer le nouveau modèle avec l'ancien.",
     "A progressive rollout lets us compare the new model with the old one."),
    # length constraints
    ("length_constraints:number_sentences", {"num_sentences": 2, "relation": "less than"},
     "Dr. Smith deployed the canary at 9 a.m. on Monday.", "One. Two. Three."),
    ("length_constraints:number_sentences", {"num_sentences": 3, "relation": "at least"},
     "We shipped. It held. Latency fell.", "We shipped. It held."),
    ("length_constraints:number_paragraphs", {"num_paragraphs": 2},
     "First part.\n***\nSecond part.", "First part.\n***\n\n***\nSecond part."),
    ("length_constraints:number_words", {"num_words": 5, "relation": "at least"},
     "one two three four five", "one two three four"),
    ("length_constraints:number_words", {"num_words": 5, "relation": "less than"},
     "It's fine.", "one two three four five"),
    ("length_constraints:nth_paragraph_first_word",
     {"num_paragraphs": 2, "nth_paragraph": 2, "first_word": "rollback"},
     'Intro here.\n\n"Rollback, then investigate."', "Intro here.\n\nPromote it."),
    # detectable content
    ("detectable_content:number_placeholders", {"num_placeholders": 2},
     "Dear [name], we ship to [address].", "Dear [name], thanks."),
    ("detectable_content:postscript", {"postscript_marker": "P.S."},
     "Hello team.\nP.S. the canary is green.", "Hello team. Ps nothing else."),
    ("detectable_content:postscript", {"postscript_marker": "P.P.S"},
     "Hi.\nP.S. one\nP.P.S two", "Hi.\nP.S. one"),
    # detectable format
    ("detectable_format:number_bullet_lists", {"num_bullets": 2},
     "Steps:\n* deploy\n* watch", "Steps:\n* deploy\n* watch\n- rollback"),
    ("detectable_format:constrained_response", {},
     "My answer is maybe.", "Maybe."),
    ("detectable_format:number_highlighted_sections", {"num_highlights": 2},
     "*Latency* improved and **cost** fell.", "*Latency* improved and ** ** fell."),
    ("detectable_format:multiple_sections", {"section_spliter": "Section", "num_sections": 2},
     "Section 1\nSetup\nSection 2\nResults", "Section 1\nSetup and results"),
    ("detectable_format:json_format", {},
     '```json\n{"verdict": "PROMOTE"}\n```', 'Here it is: {"verdict": "PROMOTE"}'),
    ("detectable_format:title", {},
     "<<Canary Report>>\nAll green.", "<< >>\nAll green."),
    # combination
    ("combination:two_responses", {},
     "Promote it.\n******\nHold it a day.", "Promote it.\n******\nPromote it."),
    ("combination:repeat_prompt", {"prompt_to_repeat": "Summarize the rollout."},
     "summarize the rollout. It went well.", "It went well. Summarize the rollout."),
    # start / end
    ("startend:end_checker", {"end_phrase": "Any other questions?"},
     '"All green. Any other questions?"', "Any other questions? Thanks."),
    ("startend:quotation", {}, '  "wrapped in quotes"  ', 'not "wrapped" at all'),
    # change case
    ("change_case:capital_word_frequency", {"capital_frequency": 2, "capital_relation": "at least"},
     "SHIP IT now.", "Ship IT now."),
    ("change_case:capital_word_frequency",
     {"capital_frequency": 2, "capital_relation": "less than"},
     "Ship IT now.", "SHIP IT NOW."),
    ("change_case:english_capital", {},
     "THE CANARY RELEASE WENT WELL AND WE WILL PROMOTE THE NEW MODEL TOMORROW.",
     "The canary release went well and we will promote the new model tomorrow."),
    ("change_case:english_lowercase", {},
     "the canary release went well and we will promote the new model tomorrow.",
     "The canary release went well and we will promote the new model tomorrow."),
    ("change_case:english_lowercase", {},
     "the canary release went well and we will promote the new model tomorrow.",
     "le déploiement progressif a bien marché et nous allons promouvoir le nouveau modèle."),
    # punctuation
    ("punctuation:no_comma", {}, "No commas here.", "Commas, here."),
]


def test_the_registry_covers_exactly_the_25_ifeval_instructions():
    assert set(INSTRUCTIONS) - set(IFBENCH_INSTRUCTIONS) == IFEVAL_IDS  # and IFBench's
    assert {case[0] for case in CASES} == IFEVAL_IDS


@pytest.mark.parametrize(("instruction_id", "kwargs", "follows", "breaks"), CASES,
                         ids=[f"{case[0]}-{i}" for i, case in enumerate(CASES)])
def test_checker_passes_and_fails(instruction_id, kwargs, follows, breaks):
    instruction = build_instruction(instruction_id, kwargs)
    assert follows_strict(instruction, follows)
    assert not follows_strict(instruction, breaks)


def test_an_empty_response_follows_nothing():
    assert not follows_strict(build_instruction("punctuation:no_comma"), "  \n ")
    assert not follows_loose(build_instruction("punctuation:no_comma"), "  \n ")


def test_undetectable_language_counts_as_followed_like_the_reference():
    assert follows_strict(build_instruction("language:response_language", {"language": "fr"}),
                          "1234 5678 !!!")


def test_keywords_are_matched_literally_not_as_regular_expressions():
    instruction = build_instruction("keywords:existence", {"keywords": ["C++"]})
    assert follows_strict(instruction, "We rewrote it in C++.")
    assert not follows_strict(instruction, "We rewrote it in CCC.")


def test_loose_forgives_a_preamble_line():
    instruction = build_instruction("change_case:english_lowercase")
    response = "Sure! Here it is:\nthe canary release went well and we will promote the model."
    assert not follows_strict(instruction, response)
    assert follows_loose(instruction, response)


def test_loose_forgives_markdown_asterisks():
    instruction = build_instruction("startend:quotation")
    response = '**"the whole answer, quoted"**'
    assert not follows_strict(instruction, response)
    assert follows_loose(instruction, response)


def test_loose_still_fails_what_no_reading_follows():
    instruction = build_instruction("punctuation:no_comma")
    assert not follows_loose(instruction, "Intro\nyes, a comma in the middle\nOutro")


@pytest.mark.parametrize(("instruction_id", "kwargs", "message"), [
    ("length_constraints:number_words", {"num_words": 10}, "missing argument(s) relation"),
    ("length_constraints:number_words", {"num_words": 10, "relation": "more than"},
     "relation must be 'less than' or 'at least'"),
    ("length_constraints:number_words", {"num_words": "ten", "relation": "at least"},
     "num_words must be an integer"),
    ("punctuation:no_comma", {"strict": True}, "unexpected argument(s) strict"),
    ("length_constraints:nth_paragraph_first_word",
     {"num_paragraphs": 2, "nth_paragraph": 3, "first_word": "so"}, "must be at most"),
    ("keywords:letter_frequency", {"letter": "ab", "let_frequency": 1, "let_relation": "at least"},
     "single character"),
])
def test_bad_kwargs_are_rejected_with_a_clear_message(instruction_id, kwargs, message):
    with pytest.raises(InstructionError, match=f"^{instruction_id}: .*") as raised:
        build_instruction(instruction_id, kwargs)
    assert message in str(raised.value)


def test_none_valued_kwargs_count_as_absent_like_the_hugging_face_export():
    instruction = build_instruction("punctuation:no_comma", {"num_words": None, "letter": None})
    assert follows_strict(instruction, "no commas")


def test_unknown_ids_are_their_own_error():
    with pytest.raises(UnknownInstruction):
        build_instruction("style:friendly_tone", {})


# --- the evaluator on spans ---------------------------------------------------

def _span(output: str, instructions) -> SpanRecord:
    attributes = {
        A.GEN_AI_OUTPUT_MESSAGES: json.dumps(
            [{"role": "assistant", "parts": [{"type": "text", "content": output}]}]),
    }
    if instructions is not None:
        attributes[A.CANARY_EXPECT_INSTRUCTIONS] = (
            instructions if isinstance(instructions, str) else json.dumps(instructions))
    return SpanRecord(trace_id="ab" * 16, span_id="cd" * 8, attributes=attributes)


NO_COMMA = {"id": "punctuation:no_comma", "kwargs": {}}
AT_LEAST_50_WORDS = {"id": "length_constraints:number_words",
                     "kwargs": {"num_words": 50, "relation": "at least"}}
LOWERCASE = {"id": "change_case:english_lowercase", "kwargs": {}}


def test_evaluator_scores_the_fraction_followed_and_fails_the_span():
    output = "Sure!\nthe canary release went well and we will promote the new model tomorrow."
    span = _span(output, [NO_COMMA, AT_LEAST_50_WORDS, LOWERCASE])
    result = InstructionAdherence().evaluate(span)
    assert result.score == pytest.approx(1 / 3)
    assert result.passed is False
    assert result.label == "not_followed"
    assert "length_constraints:number_words" in result.reason
    verdicts = {v["id"]: v for v in result.details["instructions"]}
    assert (verdicts["punctuation:no_comma"]["strict"], verdicts["punctuation:no_comma"]["loose"]) \
        == (True, True)
    assert (verdicts["change_case:english_lowercase"]["strict"],
            verdicts["change_case:english_lowercase"]["loose"]) == (False, True)
    assert verdicts["length_constraints:number_words"]["loose"] is False
    assert result.details["loose_score"] == pytest.approx(2 / 3)


def test_evaluator_passes_a_span_that_follows_everything():
    output = "the canary release went well and we will promote the new model tomorrow."
    result = InstructionAdherence().evaluate(_span(output, [NO_COMMA, LOWERCASE]))
    assert (result.score, result.passed, result.label) == (1.0, True, "followed")


def test_unknown_instructions_are_unchecked_and_never_fail_the_span():
    free_text = {"id": "style:friendly_tone", "kwargs": {}, "text": "Be friendly."}
    result = InstructionAdherence().evaluate(_span("no commas here", [NO_COMMA, free_text]))
    assert (result.score, result.passed) == (1.0, True)
    unchecked = result.details["instructions"][1]
    assert unchecked["status"] == "unchecked" and unchecked["strict"] is None
    assert "judge" in unchecked["reason"]


def test_a_judge_scores_unknown_instructions():
    asked = []

    def judge(instruction_text: str, response: str) -> bool:
        asked.append((instruction_text, response))
        return False

    items = [NO_COMMA, {"id": "style:friendly_tone", "text": "Be friendly."}, "Mention the date."]
    result = InstructionAdherence(judge=judge).evaluate(_span("no commas here", items))
    assert asked == [("Be friendly.", "no commas here"), ("Mention the date.", "no commas here")]
    assert (result.score, result.passed) == (pytest.approx(1 / 3), False)
    assert [v["status"] for v in result.details["instructions"]] == ["checked", "judged", "judged"]


def test_a_failing_judge_leaves_the_instruction_unchecked():
    def judge(instruction_text: str, response: str) -> bool:
        raise TimeoutError("judge model timed out")

    result = InstructionAdherence(judge=judge).evaluate(_span("fine", ["Be brief."]))
    assert (result.score, result.passed, result.label) == (None, None, "unchecked")
    assert "judge model timed out" in result.details["instructions"][0]["reason"]


def test_bad_instruction_kwargs_are_reported_not_blamed_on_the_model():
    bad = {"id": "length_constraints:number_words", "kwargs": {"num_words": 5}}
    result = InstructionAdherence().evaluate(_span("no commas here", [NO_COMMA, bad]))
    assert (result.score, result.passed) == (1.0, True)
    invalid = result.details["instructions"][1]
    assert invalid["status"] == "invalid" and "missing argument(s) relation" in invalid["reason"]


def test_evaluator_applies_only_to_spans_with_instructions():
    evaluator = InstructionAdherence()
    assert evaluator.name == "instruction_adherence"
    assert evaluator.applies_to(_span("hi", [NO_COMMA]))
    assert not evaluator.applies_to(_span("hi", None))
    assert not evaluator.applies_to(_span("hi", []))


def test_a_malformed_expectation_is_labelled_invalid():
    result = InstructionAdherence().evaluate(_span("hi", '{"id": "punctuation:no_comma"}'))
    assert (result.score, result.passed, result.label) == (None, None, "invalid")
    assert A.CANARY_EXPECT_INSTRUCTIONS in result.reason
