"""The ``instruction_adherence`` evaluator: IFEval and IFBench instructions on a span's output.

The span names its instructions in ``canary.expect.instructions`` as a JSON list of
``{"id": "...", "kwargs": {...}}``. Score is the fraction followed strictly; the span
passes when every checked instruction is followed strictly. Details carry a strict and
a loose verdict per instruction. Instructions no checker covers (unknown ids, or plain
strings, and ``words:start_verb``, which cannot be checked offline) never fail the span:
they are "unchecked", or "judged" by an optional ``judge(instruction_text, response) -> bool``
(a ``"text"`` field gives the wording, else the instruction's own wording or its id).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from canarytrace import attributes as A
from canarytrace.evaluators.base import EvalResult, Evaluator, SpanRecord
from canarytrace.evaluators.instructions import (
    InstructionError,
    UnknownInstruction,
    UnverifiableInstruction,
    build_instruction,
    follows_loose,
    follows_strict,
)

Judge = Callable[[str, str], bool]

CHECKED = "checked"
JUDGED = "judged"
UNCHECKED = "unchecked"
INVALID = "invalid"


@dataclass(frozen=True)
class InstructionVerdict:
    """What the evaluator concluded about one instruction; strict/loose are None if unscored."""

    id: str
    status: str
    strict: bool | None = None
    loose: bool | None = None
    reason: str = ""

    @property
    def scored(self) -> bool:
        return self.strict is not None


class InstructionAdherence(Evaluator):
    name = "instruction_adherence"
    version = "1"

    def __init__(self, judge: Judge | None = None) -> None:
        self.judge = judge

    def applies_to(self, span: SpanRecord) -> bool:
        return span.expectation(A.CANARY_EXPECT_INSTRUCTIONS) not in (None, [])

    def evaluate(self, span: SpanRecord) -> EvalResult:
        expected = span.expectation(A.CANARY_EXPECT_INSTRUCTIONS)
        if not isinstance(expected, list):
            return EvalResult(
                score=None, passed=None, label=INVALID,
                reason=f"{A.CANARY_EXPECT_INSTRUCTIONS} must be a JSON list of "
                       '{"id": ..., "kwargs": {...}} objects')
        response = span.output_text
        return summarize([self.verdict(item, response) for item in expected])

    def verdict(self, item: Any, response: str) -> InstructionVerdict:
        """Check one ``{"id", "kwargs"}`` item (or a free-text string) against the response."""
        if isinstance(item, str):
            return self._free_text(item, item, response)
        if not isinstance(item, dict) or not isinstance(item.get("id"), str):
            return InstructionVerdict(
                id="", status=INVALID, reason=f"not an object with a string 'id': {item!r}")
        instruction_id, kwargs = item["id"], item.get("kwargs") or {}
        if not isinstance(kwargs, dict):
            return InstructionVerdict(
                id=instruction_id, status=INVALID, reason="'kwargs' must be a JSON object")
        try:
            instruction = build_instruction(instruction_id, kwargs)
        except UnverifiableInstruction as exc:
            return self._free_text(instruction_id, item.get("text") or exc.wording, response,
                                   reason=f"{exc}; a judge can score it")
        except UnknownInstruction:
            return self._free_text(instruction_id, item.get("text") or instruction_id, response)
        except InstructionError as exc:
            return InstructionVerdict(id=instruction_id, status=INVALID, reason=str(exc))
        return InstructionVerdict(
            id=instruction_id, status=CHECKED,
            strict=follows_strict(instruction, response),
            loose=follows_loose(instruction, response))

    def _free_text(self, instruction_id: str, wording: str, response: str,
                   reason: str = "no built-in checker for this instruction; "
                                 "a judge can score it") -> InstructionVerdict:
        if self.judge is None:
            return InstructionVerdict(id=instruction_id, status=UNCHECKED, reason=reason)
        try:
            followed = bool(self.judge(wording, response))
        except Exception as exc:  # noqa: BLE001 - a failing judge leaves the item unchecked
            return InstructionVerdict(
                id=instruction_id, status=UNCHECKED,
                reason=f"judge failed: {type(exc).__name__}: {exc}")
        return InstructionVerdict(id=instruction_id, status=JUDGED, strict=followed, loose=followed)


def _fraction(flags: list[bool]) -> float:
    return sum(flags) / len(flags)


def summarize(verdicts: list[InstructionVerdict]) -> EvalResult:
    """Score, pass/fail, label and reason from the per-instruction verdicts."""
    scored = [v for v in verdicts if v.scored]
    details: dict[str, Any] = {"instructions": [asdict(v) for v in verdicts]}
    skipped = [v for v in verdicts if not v.scored]
    note = f"; {len(skipped)} not scored ({', '.join(sorted({v.status for v in skipped}))})"
    if not scored:
        label = INVALID if all(v.status == INVALID for v in verdicts) and verdicts else UNCHECKED
        return EvalResult(score=None, passed=None, label=label,
                          reason=f"no instruction could be scored{note}", details=details)
    strict = [bool(v.strict) for v in scored]
    loose = [bool(v.loose) for v in scored]
    details |= {"strict_score": _fraction(strict), "loose_score": _fraction(loose),
                "passed_loose": all(loose)}
    failed = [v.id for v in scored if not v.strict]
    reason = f"{sum(strict)} of {len(strict)} instructions followed (strict)"
    if failed:
        reason += f"; not followed: {', '.join(failed)}"
    if skipped:
        reason += note
    return EvalResult(score=_fraction(strict), passed=not failed,
                      label="followed" if not failed else "not_followed",
                      reason=reason, details=details)
