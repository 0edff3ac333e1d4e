"""The evaluator interface: a span goes in, a scored result comes out."""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from canarytrace import attributes as A
from canarytrace import messages


@dataclass(frozen=True)
class SpanRecord:
    """One stored span as evaluators see it: ids, canonical columns and raw attributes."""

    trace_id: str
    span_id: str
    attributes: Mapping[str, str]
    parent_span_id: str = ""
    name: str = ""
    timestamp_ns: int = 0
    duration_ns: int = 0
    service_name: str = ""
    status_code: str = ""
    project: str = ""
    model: str = ""
    variant: str = ""
    role: str = ""
    pair_id: str = ""
    route: str = ""
    cohort: str = ""
    trace_spans: tuple[SpanRecord, ...] = ()
    """The other spans of the same trace, when the caller loaded them (agent runs)."""

    def expectation(self, name: str) -> Any:
        """The parsed JSON value of a ``canary.expect.*`` attribute, or None when absent."""
        raw = self.attributes.get(name)
        if raw in (None, ""):
            return None
        try:
            return json.loads(raw)
        except ValueError:
            return raw

    @property
    def input_messages(self) -> list[messages.Message]:
        return messages.loads(self.attributes.get(A.GEN_AI_INPUT_MESSAGES))

    @property
    def output_messages(self) -> list[messages.Message]:
        return messages.loads(self.attributes.get(A.GEN_AI_OUTPUT_MESSAGES))

    @property
    def input_text(self) -> str:
        return messages.text_of(self.input_messages)

    @property
    def output_text(self) -> str:
        return messages.text_of(self.output_messages)


JUDGE_ERROR = "judge_error"
"""The label of a result the judge could not give (down, timed out): provisional, so the
worker scores that span again on its next run instead of counting it as done."""


@dataclass(frozen=True)
class EvalResult:
    """What an evaluator says about one span. ``passed`` is None for score-only evaluators."""

    score: float | None
    passed: bool | None
    label: str = ""
    reason: str = ""
    details: dict[str, Any] = field(default_factory=dict)


class Evaluator(ABC):
    """One evaluator: a stable ``name``, a ``version`` bumped when its verdicts change."""

    name: ClassVar[str]
    version: ClassVar[str] = "1"
    needs_partners: ClassVar[bool] = False
    """True when scoring a mirrored candidate span reads its base arm: the run then puts the
    pair's other spans in ``trace_spans`` (``pairwise``)."""

    def preferred_batch_size(self) -> int | None:
        """Spans per ``evaluate_batch`` call that keep this evaluator's backend busy (a
        judge's concurrency), or None for the run's default."""
        return None

    def applies_to(self, span: SpanRecord) -> bool:
        """Whether this span carries what the evaluator needs (an expectation, an output)."""
        return True

    @abstractmethod
    def evaluate(self, span: SpanRecord) -> EvalResult: ...

    def evaluate_batch(self, spans: Sequence[SpanRecord]) -> list[EvalResult]:
        """Score many spans; model-based evaluators override this to batch."""
        return [self.evaluate(span) for span in spans]
