"""``pairwise``: is the candidate's answer better than the base's answer to the same request?

A judge compares the two answers twice, with their positions swapped, to cancel its
position bias; when the two verdicts disagree the result is a tie. The result is
written on the candidate span, from the candidate's view: label ``win`` (score 1,
passed True), ``tie`` (0.5, passed None) or ``loss`` (0, passed False); ``unparsed``
or ``judge_error`` (no score) when a verdict is missing. The base answer is the span
with the same ``canary.pair_id`` and variant ``base`` among the trace's spans (the
evaluation run puts it there: ``needs_partners``). The two calls of a pair, and those of
every pair in a batch, go to the judge at once.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from canarytrace import attributes as A
from canarytrace.evaluators.base import JUDGE_ERROR, EvalResult, Evaluator, SpanRecord
from canarytrace.evaluators.judges import (
    JudgeBackend,
    judge_batch_size,
    judge_from_env,
    parse_preference,
    replies_or_errors,
)
from canarytrace.evaluators.traces import answer_of, question_of

WIN, LOSS, TIE = "win", "loss", "tie"
_OUTCOMES = {WIN: (1.0, True), TIE: (0.5, None), LOSS: (0.0, False)}
_CANDIDATE_FIRST = {"A": WIN, "B": LOSS, "C": TIE}
_CANDIDATE_SECOND = {"A": LOSS, "B": WIN, "C": TIE}

PAIRWISE_INSTRUCTIONS = (
    "You are an impartial judge. Compare two AI assistants' answers to the user's question "
    "and decide which one answers it better: more correct, complete and helpful. Ignore the "
    "order in which they appear and their length. Explain briefly, then end with your verdict "
    "exactly as \"[[A]]\" if assistant A is better, \"[[B]]\" if assistant B is better, or "
    "\"[[C]]\" for a tie."
)


def pairwise_messages(question: str, answer_a: str, answer_b: str) -> list[dict]:
    """The chat a judge reads to compare answer A with answer B."""
    user = (f"[Question]\n{question}\n\n[Assistant A's answer]\n{answer_a}\n[End of A]\n\n"
            f"[Assistant B's answer]\n{answer_b}\n[End of B]")
    return [{"role": "system", "content": PAIRWISE_INSTRUCTIONS},
            {"role": "user", "content": user}]


def _variant(span: SpanRecord) -> str:
    return span.variant or span.attributes.get(A.CANARY_VARIANT, "")


def _pair_id(span: SpanRecord) -> str:
    return span.pair_id or span.attributes.get(A.CANARY_PAIR_ID, "")


def base_partner(span: SpanRecord) -> SpanRecord | None:
    """The base arm's span of the same request (earliest, i.e. outermost, if nested)."""
    pair_id = _pair_id(span)
    if not pair_id:
        return None
    partners = [s for s in span.trace_spans if s.span_id != span.span_id
                and _pair_id(s) == pair_id and _variant(s) == A.VARIANT_BASE]
    return min(partners, key=lambda s: s.timestamp_ns, default=None)


def outcomes_by_order(first: str | None, second: str | None) -> tuple[str, str] | None:
    """The candidate's outcome with it as A and as B; None if a verdict is missing."""
    if first is None or second is None:
        return None
    return _CANDIDATE_FIRST[first], _CANDIDATE_SECOND[second]


def verdict(as_a: str, as_b: str) -> str:
    """The two orders agree: that outcome; they disagree (position bias): a tie."""
    return as_a if as_a == as_b else TIE


class PairwiseJudge(Evaluator):
    """Candidate-vs-base preference by an LLM judge, position-swapped."""

    name = "pairwise"
    version = "1"
    needs_partners = True

    def __init__(self, judge: JudgeBackend, *, max_tokens: int = 512) -> None:
        self.judge, self.max_tokens = judge, max_tokens

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> PairwiseJudge:
        judge = judge_from_env(environ)
        if judge is None:
            raise ValueError("pairwise needs a judge: set CANARYTRACE_JUDGE_URL and "
                             "CANARYTRACE_JUDGE_MODEL, or CANARYTRACE_JUDGE_MODEL_PATH")
        return cls(judge)

    def preferred_batch_size(self) -> int | None:
        return judge_batch_size(self.judge, calls_per_span=2)

    def applies_to(self, span: SpanRecord) -> bool:
        if _variant(span) != A.VARIANT_CANDIDATE:
            return False
        base = base_partner(span)
        return base is not None and bool(answer_of(base)) and bool(answer_of(span))

    def evaluate(self, span: SpanRecord) -> EvalResult:
        return self.evaluate_batch([span])[0]

    def compare(self, question: str, candidate: str, base: str) -> EvalResult:
        """The candidate's win/tie/loss against the base answer to ``question``."""
        return self.compare_many([(question, candidate, base)])[0]

    def compare_many(self, triples: Sequence[tuple[str, str, str]]) -> list[EvalResult]:
        """``compare`` for many (question, candidate, base) triples, batched."""
        chats = []
        for question, candidate, base in triples:
            chats += [pairwise_messages(question, candidate, base),
                      pairwise_messages(question, base, candidate)]
        outcomes = replies_or_errors(self.judge, chats, self.max_tokens)
        return [self._result(outcomes[i], outcomes[i + 1]) for i in range(0, len(chats), 2)]

    def evaluate_batch(self, spans: Sequence[SpanRecord]) -> list[EvalResult]:
        bases = [base_partner(span) for span in spans]
        paired = [i for i, base in enumerate(bases) if base is not None]
        judged = self.compare_many([(question_of(spans[i]), answer_of(spans[i]),
                                     answer_of(bases[i])) for i in paired])
        results = dict(zip(paired, judged, strict=True))
        missing = EvalResult(None, None, "no_pair", "no base answer for this request in its trace")
        return [results.get(i, missing) for i in range(len(spans))]

    @staticmethod
    def _result(first: tuple[str | None, str], second: tuple[str | None, str]) -> EvalResult:
        errors = [error for reply, error in (first, second) if reply is None]
        if errors:
            return EvalResult(None, None, JUDGE_ERROR, f"the judge failed: {errors[0]}")
        verdicts = parse_preference(first[0]), parse_preference(second[0])
        details = {"candidate_first": verdicts[0], "candidate_second": verdicts[1],
                   "replies": [first[0][-500:], second[0][-500:]]}
        by_order = outcomes_by_order(*verdicts)
        if by_order is None:
            return EvalResult(None, None, "unparsed",
                              "a judge reply has no [[A]]/[[B]]/[[C]] verdict", details)
        outcome = verdict(*by_order)
        score, passed = _OUTCOMES[outcome]
        return EvalResult(score, passed, outcome, _reason(outcome, *by_order), details)


def _reason(outcome: str, as_a: str, as_b: str) -> str:
    if as_a != as_b:
        return (f"the verdicts disagreed when the answers were swapped ({as_a} as A, "
                f"{as_b} as B): a tie")
    if outcome == TIE:
        return "the judge called it a tie in both orders"
    winner = "candidate" if outcome == WIN else "base"
    return f"the judge preferred the {winner}'s answer in both orders"
