"""Local checkpoints for replay: load from a directory, render prompts, generate in batches.

Batches are left-padded (a pad token is the end-of-sequence token when the tokenizer has
none) and truncated from the left to leave room for the answer in the model's context;
prompts go through the tokenizer's chat template when it has one. No hub access: files are
read with ``local_files_only`` and ``HF_HUB_OFFLINE=1``.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from canarytrace import attributes as A
from canarytrace.analysis.datasets import Example, prompt_text

DEFAULT_MAX_NEW_TOKENS = 128
HF_PREFIX = "hf:"


class ReplayError(ValueError):
    """A replay that cannot run as asked: bad model path, argument or generation failure."""


@dataclass(frozen=True)
class ModelSpec:
    """One arm: ``variant`` (base/candidate), the checkpoint directory and the model name."""

    variant: str
    path: Path
    label: str

    @classmethod
    def parse(cls, variant: str, spec: str, label: str | None = None) -> ModelSpec:
        """``hf:PATH`` (a directory written by ``save_pretrained``); the name defaults to its
        directory name."""
        if not spec.startswith(HF_PREFIX):
            raise ReplayError(f"--{variant} must be hf:PATH (a local directory saved with "
                              f"save_pretrained), got {spec!r}")
        path = Path(spec[len(HF_PREFIX):]).expanduser().resolve()
        if not (path / "config.json").is_file():
            raise ReplayError(f"--{variant} {spec}: no config.json in {path} "
                              "(expected a directory saved with save_pretrained)")
        return cls(variant, path, label or path.name)

    def fingerprint(self) -> str:
        """A digest of the checkpoint's file names, sizes and modification times."""
        digest = hashlib.sha256()
        for file in sorted(p for p in self.path.rglob("*") if p.is_file()):
            stat = file.stat()
            digest.update(f"{file.relative_to(self.path)}|{stat.st_size}|{stat.st_mtime_ns}\n"
                          .encode())
        return digest.hexdigest()


@dataclass(frozen=True)
class Generation:
    text: str
    input_tokens: int
    output_tokens: int
    finish_reason: str


class LocalModel:
    """A causal LM and its tokenizer from a local directory, set up for batched generation."""

    def __init__(self, spec: ModelSpec, device: str = "cpu") -> None:
        os.environ["HF_HUB_OFFLINE"] = "1"
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()

        self.spec, self.device = spec, device
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(spec.path, local_files_only=True)
            model = AutoModelForCausalLM.from_pretrained(spec.path, local_files_only=True)
        except (OSError, ValueError) as exc:
            raise ReplayError(f"cannot load --{spec.variant} from {spec.path}: "
                              f"{str(exc).splitlines()[0]}") from exc
        self.model = model.to(device).eval()
        self.tokenizer.padding_side = "left"
        self.tokenizer.truncation_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token

    @property
    def chat(self) -> bool:
        """Whether prompts go through the tokenizer's chat template."""
        return bool(getattr(self.tokenizer, "chat_template", None))

    @property
    def operation(self) -> str:
        return A.OPERATION_CHAT if self.chat else A.OPERATION_TEXT_COMPLETION

    def render(self, example: Example) -> str:
        if not self.chat:
            return prompt_text(example.messages)
        try:
            return self.tokenizer.apply_chat_template(
                [dict(m) for m in example.messages], add_generation_prompt=True, tokenize=False)
        except Exception as exc:  # noqa: BLE001 - a template error names the row
            raise ReplayError(f"the chat template of {self.spec.path} failed on dataset line "
                              f"{example.line}: {exc}") from exc

    def _prompt_limit(self, max_new_tokens: int) -> int | None:
        """The longest prompt that leaves room for the answer in the model's context."""
        context = getattr(self.model.config, "max_position_embeddings", None)
        if not context:
            return None
        if context <= max_new_tokens:
            raise ReplayError(f"max_new_tokens={max_new_tokens} leaves no room for a prompt in "
                              f"{self.spec.path} (context of {context} tokens)")
        return context - max_new_tokens

    def generate(self, examples: Sequence[Example], kwargs: Mapping[str, Any],
                 seed: int) -> list[Generation]:
        """Answer ``examples`` in one left-padded ``generate()`` call."""
        import torch

        limit = self._prompt_limit(int(kwargs.get("max_new_tokens", DEFAULT_MAX_NEW_TOKENS)))
        inputs = self.tokenizer([self.render(e) for e in examples], return_tensors="pt",
                                padding=True, add_special_tokens=not self.chat,
                                truncation=limit is not None, max_length=limit).to(self.device)
        torch.manual_seed(seed)
        try:
            with torch.no_grad():
                output = self.model.generate(**inputs, **kwargs,
                                             pad_token_id=self.tokenizer.pad_token_id)
        except (ValueError, TypeError) as exc:
            raise ReplayError(f"generate() failed for {self.spec.label}: "
                              f"{str(exc).splitlines()[0]}") from exc
        prompt_length = inputs["input_ids"].shape[1]
        prompt_tokens = inputs["attention_mask"].sum(dim=1).tolist()
        return [self._decode(row, int(n)) for row, n in
                zip(output[:, prompt_length:].tolist(), prompt_tokens, strict=True)]

    def _decode(self, row: list[int], input_tokens: int) -> Generation:
        eos = self.model.generation_config.eos_token_id
        stops = set(eos if isinstance(eos, list) else [] if eos is None else [eos])
        end = next((i + 1 for i, token in enumerate(row) if token in stops), None)
        tokens = row[:end] if end is not None else _strip_padding(row, self.tokenizer.pad_token_id)
        text = self.tokenizer.decode(tokens, skip_special_tokens=True)
        return Generation(text, input_tokens, len(tokens), "stop" if end is not None else "length")


def _strip_padding(row: list[int], pad_id: int | None) -> list[int]:
    end = len(row)
    while end and pad_id is not None and row[end - 1] == pad_id:
        end -= 1
    return row[:end]


