"""pairwise: candidate vs base on the same request, judged twice with positions swapped."""

import pytest

from canarytrace import attributes as A
from canarytrace.evaluators.judges import LocalTransformersJudge, OpenAICompatibleJudge
from canarytrace.evaluators.pairwise import PairwiseJudge, base_partner
from tests.evaluators.judge_server import judge_server
from tests.evaluators.span_builders import llm_span
from tests.support.tiny_models import build_causal_lm

QUESTION = "What is the capital of Australia?"


@pytest.fixture(scope="module")
def server():
    with judge_server() as running:
        yield running


def http_judge(server, model="grader"):
    return PairwiseJudge(OpenAICompatibleJudge(server.base_url, model))


def mirrored_pair(candidate_answer, base_answer, pair_id="req-1"):
    """The candidate span of a mirrored request, with the base span in its trace."""
    def arm(variant, role, answer, at):
        return llm_span(answer, question=QUESTION, timestamp_ns=at, pair_id=pair_id,
                        variant=variant, role=role,
                        attributes={A.CANARY_PAIR_ID: pair_id, A.CANARY_VARIANT: variant,
                                    A.CANARY_ROLE: role})
    base = arm(A.VARIANT_BASE, A.ROLE_PRIMARY, base_answer, 1)
    unrelated = llm_span("Sydney", question=QUESTION, pair_id="other", variant=A.VARIANT_BASE)
    candidate = arm(A.VARIANT_CANDIDATE, A.ROLE_SHADOW, candidate_answer, 2)
    return llm_span(candidate_answer, question=QUESTION, timestamp_ns=2, pair_id=pair_id,
                    variant=A.VARIANT_CANDIDATE, role=A.ROLE_SHADOW, span_id=candidate.span_id,
                    attributes=dict(candidate.attributes), trace_spans=(base, unrelated))


@pytest.mark.parametrize("candidate, base, label, score, passed", [
    ("Canberra. CORRECT", "Sydney", "win", 1.0, True),
    ("Sydney", "Canberra. CORRECT", "loss", 0.0, False),
    ("Canberra. CORRECT", "Canberra, CORRECT", "tie", 0.5, None),
])
def test_consistent_verdicts_in_both_orders(server, candidate, base, label, score, passed):
    result = http_judge(server).evaluate(mirrored_pair(candidate, base))
    assert (result.label, result.score, result.passed) == (label, score, passed)


def test_each_pair_is_judged_in_both_positions(server):
    http_judge(server).evaluate(mirrored_pair("Canberra. CORRECT", "Sydney"))
    # The two orders are sent at once: they may arrive either way round.
    first, second = sorted((r["body"]["messages"][-1]["content"] for r in server.requests[-2:]),
                           key=lambda prompt: "[Assistant A's answer]\nSydney" in prompt)
    assert "[Assistant A's answer]\nCanberra. CORRECT" in first
    assert "[Assistant A's answer]\nSydney" in second
    assert QUESTION in first and QUESTION in second


def test_position_bias_becomes_a_tie(server):
    result = http_judge(server, "always-a").evaluate(mirrored_pair("Canberra", "Sydney"))
    assert (result.label, result.score, result.passed) == ("tie", 0.5, None)
    assert result.details["candidate_first"] == result.details["candidate_second"] == "A"
    assert "disagreed" in result.reason


def test_tie_in_both_orders(server):
    result = http_judge(server, "always-c").evaluate(mirrored_pair("Canberra", "Sydney"))
    assert result.label == "tie" and "both orders" in result.reason


def test_unparsed_and_failed_judges_give_no_score(server):
    unparsed = http_judge(server, "chatty").evaluate(mirrored_pair("Canberra", "Sydney"))
    assert (unparsed.label, unparsed.score, unparsed.passed) == ("unparsed", None, None)
    failed = http_judge(server, "overloaded").evaluate(mirrored_pair("Canberra", "Sydney"))
    assert (failed.label, failed.score) == ("judge_error", None)
    assert "HTTP 500" in failed.reason


def test_batch_keeps_order_and_flags_spans_without_a_base(server):
    lonely = llm_span("Canberra", question=QUESTION, pair_id="solo",
                      variant=A.VARIANT_CANDIDATE)
    spans = [mirrored_pair("Sydney", "Canberra. CORRECT", "p1"), lonely,
             mirrored_pair("Canberra. CORRECT", "Sydney", "p2")]
    labels = [r.label for r in http_judge(server).evaluate_batch(spans)]
    assert labels == ["loss", "no_pair", "win"]


def test_applies_to_candidate_spans_with_a_base_answer(server):
    judge = http_judge(server)
    pair = mirrored_pair("Canberra", "Sydney")
    assert base_partner(pair).variant == A.VARIANT_BASE
    assert judge.applies_to(pair)
    assert not judge.applies_to(pair.trace_spans[0])          # the base span itself
    assert not judge.applies_to(llm_span("x", variant=A.VARIANT_CANDIDATE, pair_id="none"))


def test_compare_without_spans(server):
    assert http_judge(server).compare(QUESTION, "Canberra CORRECT", "Perth").label == "win"


def test_local_model_judge_forced_to_always_answer_a_is_a_tie(tmp_path):
    import torch

    torch.set_num_threads(1)
    judge = PairwiseJudge(LocalTransformersJudge(build_causal_lm(tmp_path, forced_text="[[A]]")),
                          max_tokens=2)
    result = judge.evaluate(mirrored_pair("Canberra", "Sydney"))
    assert (result.label, result.score) == ("tie", 0.5)
    assert result.details["replies"] == ["[[A]][[A]]", "[[A]][[A]]"]


def test_from_env_needs_a_judge():
    with pytest.raises(ValueError, match="CANARYTRACE_JUDGE_URL"):
        PairwiseJudge.from_env({})
    judge = PairwiseJudge.from_env({"CANARYTRACE_JUDGE_URL": "http://judge/v1",
                                    "CANARYTRACE_JUDGE_MODEL": "m"})
    assert isinstance(judge.judge, OpenAICompatibleJudge)
