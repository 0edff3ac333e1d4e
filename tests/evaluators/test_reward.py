"""reward_score on a tiny real sequence-classification model: batching must not change scores."""

import pytest

from canarytrace import attributes as A
from canarytrace.evaluators.reward import RewardScore
from tests.evaluators.span_builders import llm_span
from tests.support.tiny_models import build_sequence_classifier

PAIRS = [
    ("what is the capital of france?", "paris"),
    ("hello", "hello world, how are you?"),
    ("is it sunny in london?", "no, rain"),
    ("which is the capital of england?", "london is the capital of england"),
    ("thanks", "you are welcome, have a good day"),
    ("what is a cat?", "a cat is a small animal"),
    ("why?", "because"),
]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    import torch

    torch.set_num_threads(1)
    return build_sequence_classifier(tmp_path_factory.mktemp("reward"))


@pytest.fixture(scope="module")
def spans():
    return [llm_span(answer, question=question) for question, answer in PAIRS]


def test_batched_scores_equal_one_by_one_scores_in_order(model_dir, spans):
    batched = RewardScore(model_dir, batch_size=3).evaluate_batch(spans)
    one_model = RewardScore(model_dir)
    single = [one_model.evaluate(span).score for span in spans]
    assert [r.score for r in batched] == pytest.approx(single, abs=1e-5)
    assert len({round(s, 3) for s in single}) == len(single), "scores should tell spans apart"


def test_scores_follow_the_spans_when_the_batch_is_reversed(model_dir, spans):
    evaluator = RewardScore(model_dir, batch_size=4)
    forward = [r.score for r in evaluator.evaluate_batch(spans)]
    backward = [r.score for r in evaluator.evaluate_batch(spans[::-1])]
    assert backward[::-1] == pytest.approx(forward, abs=1e-5)


def test_score_is_the_first_logit_of_the_question_answer_pair(model_dir):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    question, answer = PAIRS[0]
    with torch.no_grad():
        expected = model(**tokenizer(question, answer, return_tensors="pt")).logits[0, 0].item()
    assert RewardScore(model_dir).score_pairs([(question, answer)]) == [
        pytest.approx(expected, abs=1e-6)]


def test_reward_is_a_score_only(model_dir, spans):
    result = RewardScore(model_dir).evaluate(spans[0])
    assert result.passed is None and isinstance(result.score, float)
    assert result.label == "scored"


def test_question_is_the_last_user_message(model_dir):
    chat = llm_span("paris", question=None, attributes={
        A.GEN_AI_INPUT_MESSAGES: '[{"role": "system", "content": "be brief"}, '
                                 '{"role": "user", "content": "hello"}, '
                                 '{"role": "assistant", "content": "hi"}, '
                                 '{"role": "user", "content": "what is the capital of france?"}]'})
    evaluator = RewardScore(model_dir)
    assert evaluator.evaluate(chat).score == pytest.approx(
        evaluator.score_pairs([PAIRS[0]])[0], abs=1e-6)


def test_applies_only_to_answered_questions(model_dir):
    evaluator = RewardScore(model_dir)
    assert evaluator.applies_to(llm_span("paris", question="capital?"))
    assert not evaluator.applies_to(llm_span(None, question="capital?"))
    assert not evaluator.applies_to(llm_span("paris", question=None))


def test_from_env_reads_the_model_directory(model_dir):
    assert RewardScore.from_env({"CANARYTRACE_REWARD_MODEL": str(model_dir)}).model_path == str(
        model_dir)
    with pytest.raises(ValueError, match="CANARYTRACE_REWARD_MODEL"):
        RewardScore.from_env({})
