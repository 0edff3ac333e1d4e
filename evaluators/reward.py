"""``reward_score``: a reward model's score for the answer to the question (score only).

The reward model is a transformers sequence-classification model read on
(question, answer) pairs, its first logit the score — the kind OpenAssistant published
(e.g. ``OpenAssistant/reward-model-deberta-v3-large-v2``, downloaded beforehand to a
directory). Spans are scored in batches; ``passed`` is always None.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from canarytrace.evaluators.base import EvalResult, Evaluator, SpanRecord
from canarytrace.evaluators.traces import answer_of, question_of


class RewardScore(Evaluator):
    """Scores (question, answer) with a local reward model; torch loads on first use."""

    name = "reward_score"
    version = "1"

    def __init__(self, model_path: str | os.PathLike[str], *, device: str = "cpu",
                 batch_size: int = 16, max_length: int = 512) -> None:
        self.model_path = str(model_path)
        self.device, self.batch_size, self.max_length = device, batch_size, max_length
        self._tokenizer: Any = None
        self._model: Any = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> RewardScore:
        """The model directory from ``CANARYTRACE_REWARD_MODEL``."""
        path = environ.get("CANARYTRACE_REWARD_MODEL", "")
        if not path:
            raise ValueError("reward_score needs a reward model directory: set "
                             "CANARYTRACE_REWARD_MODEL")
        return cls(path)

    def _load(self) -> None:
        if self._model is not None:
            return
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self._tokenizer = AutoTokenizer.from_pretrained(self.model_path, local_files_only=True)
        model = AutoModelForSequenceClassification.from_pretrained(
            self.model_path, local_files_only=True)
        self._model = model.to(self.device).eval()
        context = getattr(model.config, "max_position_embeddings", None)
        if context:
            self.max_length = min(self.max_length, context)

    def applies_to(self, span: SpanRecord) -> bool:
        return bool(answer_of(span)) and bool(question_of(span))

    def evaluate(self, span: SpanRecord) -> EvalResult:
        return self.evaluate_batch([span])[0]

    def evaluate_batch(self, spans: Sequence[SpanRecord]) -> list[EvalResult]:
        pairs = [(question_of(span), answer_of(span)) for span in spans]
        return [EvalResult(score, None, "scored", "reward model score",
                           {"model": os.path.basename(self.model_path.rstrip("/"))})
                for score in self.score_pairs(pairs)]

    def score_pairs(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        """The reward for each (question, answer), in order, computed in batches."""
        self._load()
        scores: list[float] = []
        for start in range(0, len(pairs), self.batch_size):
            scores += self._score_batch(pairs[start:start + self.batch_size])
        return scores

    def _score_batch(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        import torch

        questions, answers = [q for q, _ in pairs], [a for _, a in pairs]
        inputs = self._tokenizer(questions, answers, padding=True, truncation=True,
                                 max_length=self.max_length, return_tensors="pt").to(self.device)
        with torch.no_grad():
            logits = self._model(**inputs).logits
        return [float(value) for value in logits[:, 0]]
