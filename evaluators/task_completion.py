"""``task_completion``: did the answer do the task, and did the agent run finish properly?

The answer is checked by a judge with a rubric when one is configured (spans that
carry ``canary.task`` or ``canary.expect.reference``), else against the reference
answer by similarity: MiniLM sentence embeddings (cosine, default threshold 0.7), or
token F1 (default threshold 0.5) when the model is not installed. For an agent run
(``invoke_agent`` span with its trace loaded) the trajectory is checked too: a final
step (``agent.trajectory.step.kind`` respond/final) and every tool named in
``canary.expect.tools`` used. Passing needs both; the score is the answer's score times
the share of trajectory checks met. Labels: ``completed``, ``not_completed``,
``no_final_step``, ``missing_tools``, ``unparsed`` and ``judge_error`` (``passed`` None).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from canarytrace import attributes as A
from canarytrace.evaluators.base import JUDGE_ERROR, EvalResult, Evaluator, SpanRecord
from canarytrace.evaluators.judges import (
    FAIL,
    PASS,
    JudgeBackend,
    judge_batch_size,
    judge_from_env,
    parse_pass_fail,
    replies_or_errors,
)
from canarytrace.evaluators.similarity import Similarity, default_similarity
from canarytrace.evaluators.tool_matching import InvalidExpectation, same_function
from canarytrace.evaluators.tool_selection import parse_expectation
from canarytrace.evaluators.traces import (
    FINAL_STEP_KINDS,
    answer_of,
    called_tools,
    descendants,
    final_step,
    is_agent,
    question_of,
)

DEFAULT_THRESHOLDS = {"embedding": 0.7, "token_f1": 0.5}
DEFAULT_RUBRIC = (
    "PASS only if the answer does what the task asks, completely: every part of the task is "
    "addressed, nothing it states is wrong, and when a reference answer is given the answer "
    "agrees with it in substance (wording and style do not matter). Otherwise FAIL."
)
JUDGE_INSTRUCTIONS = (
    "You grade whether an AI assistant completed a user's task.\nRubric: {rubric}\n"
    "Reason in at most three sentences, then end with one line: VERDICT: PASS or VERDICT: FAIL."
)


@dataclass(frozen=True)
class Check:
    """One part of the verdict (the answer or the trajectory)."""

    score: float | None
    passed: bool | None
    label: str
    reason: str
    details: dict[str, Any] = field(default_factory=dict)


def judge_messages(rubric: str, task: str, answer: str, reference: str = "") -> list[dict]:
    """The chat a judge reads to grade one answer."""
    parts = [f"Task:\n{task}"]
    if reference:
        parts.append(f"Reference answer:\n{reference}")
    parts.append(f"Answer to grade:\n{answer}")
    return [{"role": "system", "content": JUDGE_INSTRUCTIONS.format(rubric=rubric)},
            {"role": "user", "content": "\n\n".join(parts)}]


def _judged(reply: str | None, error: str) -> Check:
    if reply is None:
        return Check(None, None, JUDGE_ERROR, f"the judge failed: {error}")
    verdict = parse_pass_fail(reply)
    details = {"method": "judge", "judge_reply": reply[-1000:]}
    if verdict == PASS:
        return Check(1.0, True, "completed", "the judge says the task is done", details)
    if verdict == FAIL:
        return Check(0.0, False, "not_completed", "the judge says the task is not done",
                     details)
    return Check(None, None, "unparsed", "the judge's reply has no 'VERDICT: PASS' or "
                                         "'VERDICT: FAIL' line", details)


def _required_tools(span: SpanRecord) -> list[str]:
    """The tool names ``canary.expect.tools`` lists; none when it is absent or unreadable."""
    try:
        return [call.name for call in parse_expectation(span.expectation(A.CANARY_EXPECT_TOOLS))]
    except InvalidExpectation:
        return []


def trajectory_check(span: SpanRecord, final_kinds: frozenset[str] = FINAL_STEP_KINDS) -> Check:
    """Whether an agent run reached a final step and used every expected tool."""
    steps = [s.attributes.get(A.AGENT_TRAJECTORY_STEP_KIND, "") for s in descendants(span)
             if s.attributes.get(A.AGENT_TRAJECTORY_STEP_KIND)]
    has_final = final_step(span, final_kinds) is not None
    required = _required_tools(span)
    used = [str(call["name"]) for call in called_tools(span)]
    missing = [n for n in required if not any(same_function(u, n) for u in used)]
    met = [has_final] + [name not in missing for name in required]
    details = {"steps": steps, "final_step": has_final, "required_tools": required,
               "tools_used": used, "missing_tools": missing}
    score = sum(met) / len(met)
    if not has_final:
        return Check(score, False, "no_final_step", "the agent run has no final (respond) step",
                     details)
    if missing:
        return Check(score, False, "missing_tools", f"the agent never used {missing}", details)
    return Check(1.0, True, "completed", "the agent run reached its final step", details)


def combine(answer: Check | None, trajectory: Check | None) -> EvalResult:
    """One verdict: both parts must pass; the score is their product."""
    parts = [c for c in (answer, trajectory) if c is not None]
    details: dict[str, Any] = dict(answer.details) if answer else {}
    if trajectory is not None:
        details["trajectory"] = trajectory.details
    if len(parts) == 1 or parts[0].passed is None:
        only = parts[0]
        return EvalResult(only.score, only.passed, only.label, only.reason, details)
    failed = next((c for c in parts if not c.passed), None)
    score = answer.score * trajectory.score
    if failed is None:
        return EvalResult(score, True, "completed", f"{answer.reason}; {trajectory.reason}",
                          details)
    return EvalResult(score, False, failed.label, failed.reason, details)


class TaskCompletion(Evaluator):
    """Judge- or reference-based task completion, with agent trajectory checks."""

    name = "task_completion"
    version = "1"

    def __init__(self, judge: JudgeBackend | None = None, *, rubric: str = DEFAULT_RUBRIC,
                 threshold: float | None = None, similarity: Similarity | None = None,
                 final_step_kinds: frozenset[str] = FINAL_STEP_KINDS,
                 max_tokens: int = 256) -> None:
        self.judge, self.rubric, self.max_tokens = judge, rubric, max_tokens
        self._threshold, self._similarity = threshold, similarity
        self.final_step_kinds = frozenset(k.lower() for k in final_step_kinds)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> TaskCompletion:
        """Judge from ``CANARYTRACE_JUDGE_*``; threshold from ``CANARYTRACE_TASK_THRESHOLD``."""
        threshold = environ.get("CANARYTRACE_TASK_THRESHOLD")
        return cls(judge_from_env(environ), threshold=float(threshold) if threshold else None)

    @property
    def similarity(self) -> Similarity:
        if self._similarity is None:
            self._similarity = default_similarity()
        return self._similarity

    @property
    def threshold(self) -> float:
        return self._threshold if self._threshold is not None else \
            DEFAULT_THRESHOLDS.get(self.similarity.method, 0.5)

    def preferred_batch_size(self) -> int | None:
        return judge_batch_size(self.judge)

    def _answer_mode(self, span: SpanRecord) -> str | None:
        has_reference = bool(span.attributes.get(A.CANARY_EXPECT_REFERENCE))
        if self.judge is not None and (has_reference or span.attributes.get(A.CANARY_TASK)):
            return "judge"
        return "reference" if has_reference else None

    def _runs_trajectory(self, span: SpanRecord) -> bool:
        return is_agent(span) and bool(span.trace_spans)

    def applies_to(self, span: SpanRecord) -> bool:
        return self._answer_mode(span) is not None or self._runs_trajectory(span)

    def evaluate(self, span: SpanRecord) -> EvalResult:
        return self.evaluate_batch([span])[0]

    def evaluate_batch(self, spans: Sequence[SpanRecord]) -> list[EvalResult]:
        answers = {**self._judge_answers(spans), **self._compare_to_references(spans)}
        return [self._verdict(span, answers.get(i)) for i, span in enumerate(spans)]

    def _verdict(self, span: SpanRecord, answer: Check | None) -> EvalResult:
        trajectory = (trajectory_check(span, self.final_step_kinds)
                      if self._runs_trajectory(span) else None)
        if answer is None and trajectory is None:
            return EvalResult(None, None, "not_applicable",
                              "no judge, reference answer or agent trajectory to check")
        return combine(answer, trajectory)

    def _judge_answers(self, spans: Sequence[SpanRecord]) -> dict[int, Check]:
        chosen = [i for i, s in enumerate(spans) if self._answer_mode(s) == "judge"]
        chats = [judge_messages(self.rubric,
                                spans[i].attributes.get(A.CANARY_TASK) or question_of(spans[i]),
                                answer_of(spans[i]),
                                spans[i].attributes.get(A.CANARY_EXPECT_REFERENCE, ""))
                 for i in chosen]
        outcomes = replies_or_errors(self.judge, chats, self.max_tokens) if chosen else []
        return {i: _judged(reply, error) for i, (reply, error) in zip(chosen, outcomes,
                                                                        strict=True)}

    def _compare_to_references(self, spans: Sequence[SpanRecord]) -> dict[int, Check]:
        chosen = [i for i, s in enumerate(spans) if self._answer_mode(s) == "reference"]
        if not chosen:
            return {}
        answers = [answer_of(spans[i]) for i in chosen]
        references = [spans[i].attributes[A.CANARY_EXPECT_REFERENCE] for i in chosen]
        scores = self.similarity.scores(answers, references)
        return {i: self._similarity_check(score) for i, score in zip(chosen, scores, strict=True)}

    def _similarity_check(self, score: float) -> Check:
        method, threshold = self.similarity.method, self.threshold
        details = {"method": method, "similarity": round(score, 4), "threshold": threshold}
        if score >= threshold:
            return Check(score, True, "completed",
                         f"{method} similarity to the reference {score:.2f} >= {threshold}",
                         details)
        return Check(score, False, "not_completed",
                     f"{method} similarity to the reference {score:.2f} < {threshold}", details)
