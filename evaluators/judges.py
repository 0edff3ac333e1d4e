"""LLM judges: a backend protocol, a local transformers backend and an OpenAI-compatible one.

A backend turns chat messages into text; evaluators write the prompts and read the
verdict back with ``parse_pass_fail`` ("VERDICT: PASS"/"VERDICT: FAIL") or
``parse_preference`` ("[[A]]"/"[[B]]"/"[[C]]"). A reply without a verdict is never
guessed: evaluators label it ``unparsed``. Configuration from the environment:
``CANARYTRACE_JUDGE_URL`` + ``CANARYTRACE_JUDGE_MODEL`` (+ ``CANARYTRACE_JUDGE_API_KEY``,
``CANARYTRACE_JUDGE_TIMEOUT_S``) for an HTTP endpoint, or ``CANARYTRACE_JUDGE_MODEL_PATH``
for a local model directory.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import httpx

ChatMessages = Sequence[Mapping[str, str]]

PASS = "pass"
FAIL = "fail"
UNPARSED = "unparsed"

_PASS_FAIL = re.compile(r"VERDICT\s*:\s*[*_`\s]*(PASS|FAIL)", re.IGNORECASE)
_PREFERENCE = re.compile(r"\[\[\s*([ABC])\s*\]\]")


class JudgeError(RuntimeError):
    """A judge backend could not produce a reply (unreachable, timed out, bad response)."""


@runtime_checkable
class JudgeBackend(Protocol):
    """Anything that completes a chat: ``complete(messages, max_tokens) -> str``."""

    def complete(self, messages: ChatMessages, max_tokens: int = 256) -> str: ...


def replies_or_errors(backend: JudgeBackend, conversations: Sequence[ChatMessages],
                      max_tokens: int = 256) -> list[tuple[str | None, str]]:
    """``(reply, "")`` per conversation, or ``(None, error)`` where the judge failed.

    Batched when the backend has ``complete_batch``; a JudgeError never escapes.
    """
    batch = getattr(backend, "complete_batch", None)
    if callable(batch):
        try:
            return [(reply, "") for reply in batch(conversations, max_tokens)]
        except JudgeError as exc:
            return [(None, str(exc))] * len(conversations)
    outcomes: list[tuple[str | None, str]] = []
    for messages in conversations:
        try:
            outcomes.append((backend.complete(messages, max_tokens), ""))
        except JudgeError as exc:
            outcomes.append((None, str(exc)))
    return outcomes


def parse_pass_fail(reply: str) -> str | None:
    """``"pass"``/``"fail"`` from the last ``VERDICT: PASS|FAIL`` in ``reply``; None if absent."""
    found = _PASS_FAIL.findall(reply)
    return found[-1].lower() if found else None


def parse_preference(reply: str) -> str | None:
    """``"A"``, ``"B"`` or ``"C"`` (tie) from the last ``[[X]]`` in ``reply``; None if absent."""
    found = _PREFERENCE.findall(reply)
    return found[-1] if found else None


class LocalTransformersJudge:
    """A local causal LM as judge: chat template when the tokenizer has one, greedy decoding.

    torch and transformers are imported when the model is first used.
    """

    def __init__(self, model_path: str | os.PathLike[str], *, device: str = "cpu",
                 batch_size: int = 8, max_input_tokens: int = 4096) -> None:
        self.model_path = str(model_path)
        self.device = device
        self.batch_size = batch_size
        self.max_input_tokens = max_input_tokens
        self._tokenizer: Any = None
        self._model: Any = None

    def _load(self) -> None:
        if self._model is not None:
            return
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(self.model_path, local_files_only=True)
        tokenizer.padding_side = "left"
        tokenizer.truncation_side = "left"
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        model = AutoModelForCausalLM.from_pretrained(self.model_path, local_files_only=True)
        self._tokenizer, self._model = tokenizer, model.to(self.device).eval()

    def prompt_for(self, messages: ChatMessages) -> str:
        """The text the model reads: its chat template, or ``role: content`` lines without one."""
        self._load()
        chat = [{"role": m["role"], "content": m["content"]} for m in messages]
        if not getattr(self._tokenizer, "chat_template", None):
            lines = [f"{m['role']}: {m['content']}" for m in chat]
            return "\n".join(lines + ["assistant:"])
        try:
            return self._render(chat)
        except Exception:  # noqa: BLE001 - templates such as Gemma's reject a system turn
            if not any(m["role"] == "system" for m in chat):
                raise
            return self._render(_without_system_turn(chat))

    def _render(self, chat: list[dict[str, str]]) -> str:
        return self._tokenizer.apply_chat_template(chat, tokenize=False,
                                                   add_generation_prompt=True)

    def complete(self, messages: ChatMessages, max_tokens: int = 256) -> str:
        return self.complete_batch([messages], max_tokens)[0]

    def complete_batch(self, conversations: Sequence[ChatMessages],
                       max_tokens: int = 256) -> list[str]:
        prompts = [self.prompt_for(messages) for messages in conversations]
        replies: list[str] = []
        for start in range(0, len(prompts), self.batch_size):
            replies += self._generate(prompts[start:start + self.batch_size], max_tokens)
        return replies

    def _input_budget(self, max_tokens: int) -> int:
        config = self._model.config
        window = getattr(config, "max_position_embeddings", None) or getattr(
            config, "n_positions", None) or self.max_input_tokens
        return max(min(self.max_input_tokens, window - max_tokens), 1)

    def _generate(self, prompts: list[str], max_tokens: int) -> list[str]:
        import torch

        inputs = self._tokenizer(
            prompts, return_tensors="pt", padding=True, truncation=True,
            max_length=self._input_budget(max_tokens), add_special_tokens=False,
        ).to(self.device)
        with torch.no_grad():
            output = self._model.generate(
                **inputs, do_sample=False, num_beams=1, max_new_tokens=max_tokens,
                pad_token_id=self._tokenizer.pad_token_id,
            )
        new_tokens = output[:, inputs["input_ids"].shape[1]:]
        return self._tokenizer.batch_decode(new_tokens, skip_special_tokens=True)


def _without_system_turn(chat: list[dict[str, str]]) -> list[dict[str, str]]:
    """The system text moved to the front of the first user turn."""
    system = "\n\n".join(m["content"] for m in chat if m["role"] == "system")
    rest = [dict(m) for m in chat if m["role"] != "system"]
    first_user = next((m for m in rest if m["role"] == "user"), None)
    if first_user is None:
        return [{"role": "user", "content": system}, *rest]
    first_user["content"] = f"{system}\n\n{first_user['content']}"
    return rest


class OpenAICompatibleJudge:
    """Any OpenAI-compatible chat endpoint (vLLM, TGI, Ollama, OpenAI): POST
    ``{base_url}/chat/completions`` with temperature 0."""

    def __init__(self, base_url: str, model: str, *, api_key: str | None = None,
                 timeout_s: float = 60.0, temperature: float = 0.0) -> None:
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        self.temperature = temperature
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(headers=headers, timeout=timeout_s)
        self.timeout_s = timeout_s

    def complete(self, messages: ChatMessages, max_tokens: int = 256) -> str:
        body = {"model": self.model, "messages": [dict(m) for m in messages],
                "max_tokens": max_tokens, "temperature": self.temperature}
        try:
            response = self._client.post(self.url, json=body)
        except httpx.TimeoutException as exc:
            raise JudgeError(f"judge {self.url} timed out after {self.timeout_s:g}s") from exc
        except httpx.HTTPError as exc:
            raise JudgeError(f"judge {self.url} is unreachable: {exc}") from exc
        if response.status_code >= 400:
            raise JudgeError(f"judge {self.url} answered HTTP {response.status_code}: "
                             f"{_error_message(response)}")
        return _reply_text(self.url, response)

    def close(self) -> None:
        self._client.close()


def _error_message(response: httpx.Response) -> str:
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        error = None
    message = error.get("message") if isinstance(error, Mapping) else error
    return str(message or response.text[:200] or response.reason_phrase)


def _reply_text(url: str, response: httpx.Response) -> str:
    """``choices[0].message.content`` of a chat completion, or one clear JudgeError."""
    try:
        content = response.json()["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise JudgeError(f"judge {url} sent a response without choices[0].message.content: "
                         f"{response.text[:200]!r}") from exc
    if not isinstance(content, str):
        raise JudgeError(f"judge {url} sent no text content (got {content!r})")
    return content


@dataclass(frozen=True)
class JudgeSettings:
    """Which judge to use, read from ``CANARYTRACE_JUDGE_*`` environment variables."""

    url: str = ""
    model: str = ""
    api_key: str | None = None
    timeout_s: float = 60.0
    model_path: str = ""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> JudgeSettings:
        return cls(
            url=environ.get("CANARYTRACE_JUDGE_URL", ""),
            model=environ.get("CANARYTRACE_JUDGE_MODEL", ""),
            api_key=environ.get("CANARYTRACE_JUDGE_API_KEY") or None,
            timeout_s=float(environ.get("CANARYTRACE_JUDGE_TIMEOUT_S", "60")),
            model_path=environ.get("CANARYTRACE_JUDGE_MODEL_PATH", ""),
        )

    def backend(self) -> JudgeBackend | None:
        """The configured judge, or None when none is configured."""
        if self.url:
            if not self.model:
                raise ValueError("CANARYTRACE_JUDGE_URL needs CANARYTRACE_JUDGE_MODEL too")
            return OpenAICompatibleJudge(self.url, self.model, api_key=self.api_key,
                                         timeout_s=self.timeout_s)
        if self.model_path:
            return LocalTransformersJudge(self.model_path)
        return None


def judge_from_env(environ: Mapping[str, str] = os.environ) -> JudgeBackend | None:
    """The judge the environment configures, or None."""
    return JudgeSettings.from_env(environ).backend()


INSTRUCTION_PROMPT = (
    "You check whether a response follows one instruction. Consider only that instruction. "
    "Explain in one sentence, then end with one line: VERDICT: PASS or VERDICT: FAIL."
)


class InstructionJudge:
    """A backend as ``instruction_adherence``'s ``judge(instruction, response) -> bool``.

    Raises JudgeError when the reply has no verdict (the instruction stays unchecked).
    """

    def __init__(self, backend: JudgeBackend, *, max_tokens: int = 256) -> None:
        self.backend, self.max_tokens = backend, max_tokens

    def __call__(self, instruction: str, response: str) -> bool:
        messages = [{"role": "system", "content": INSTRUCTION_PROMPT},
                    {"role": "user", "content": f"Instruction:\n{instruction}\n\n"
                                                f"Response:\n{response}"}]
        reply = self.backend.complete(messages, self.max_tokens)
        verdict = parse_pass_fail(reply)
        if verdict is None:
            raise JudgeError(f"the judge's reply has no VERDICT line: {reply[-200:]!r}")
        return verdict == PASS
