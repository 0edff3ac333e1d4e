"""LLM judges: a backend protocol, a local transformers backend and an OpenAI-compatible one.

A backend turns chat messages into text; evaluators write the prompts and read the
verdict back with ``parse_pass_fail`` ("VERDICT: PASS"/"VERDICT: FAIL") or
``parse_preference`` ("[[A]]"/"[[B]]"/"[[C]]"). A reply without a verdict is never
guessed: evaluators label it ``unparsed``. Evaluators hand a backend all the chats of a
batch at once: the local model generates them in batches, the HTTP judge sends them
concurrently (at most ``concurrency`` in flight), retrying 429/502/503/504 answers after
their Retry-After or a jittered exponential backoff, and keeping to a per-minute request
or token budget when one is set.

Configuration from the environment (``JudgeSettings``): ``CANARYTRACE_JUDGE_URL`` +
``CANARYTRACE_JUDGE_MODEL`` (+ ``CANARYTRACE_JUDGE_API_KEY``, ``_TIMEOUT_S``,
``_CONCURRENCY``, ``_MAX_RETRIES``, ``_REQUESTS_PER_MINUTE``, ``_TOKENS_PER_MINUTE``) for
an HTTP endpoint, or ``CANARYTRACE_JUDGE_MODEL_PATH`` for a local model directory.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from typing import Any, Protocol, runtime_checkable

import httpx

from canarytrace.evaluators.judge_limits import (
    RETRYABLE_STATUSES,
    Breaker,
    Pacer,
    Pause,
    backoff_s,
    retry_after_s,
)

ChatMessages = Sequence[Mapping[str, str]]

PASS = "pass"
FAIL = "fail"
UNPARSED = "unparsed"

DEFAULT_CONCURRENCY = 32
"""Judge calls in flight at once: enough to keep a local vLLM's continuous batching busy
(its scheduler runs up to 256 sequences) without a crowd of client threads."""
CHARS_PER_TOKEN = 4
"""For the token budget: a request is charged len(text) / 4 + max_tokens until the reply's
``usage`` says what it really cost."""

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

    Concurrent when the backend has ``complete_each`` (one failure costs one reply),
    batched when it has ``complete_batch``; a JudgeError never escapes.
    """
    each = getattr(backend, "complete_each", None)
    if callable(each):
        return [(reply, "") if isinstance(reply, str) else (None, str(reply))
                for reply in each(conversations, max_tokens)]
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


def judge_batch_size(backend: JudgeBackend | None, calls_per_span: int = 1) -> int | None:
    """Spans per batch that keep a concurrent judge busy (eight waves of its concurrency,
    so the last, partly empty wave costs little); None for other backends."""
    concurrency = getattr(backend, "concurrency", None)
    if not isinstance(concurrency, int):
        return None
    return max(1, 8 * concurrency // calls_per_span)


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
    ``{base_url}/chat/completions`` with temperature 0, up to ``concurrency`` at once.

    429/502/503/504 answers are retried after the server's ``Retry-After`` (a 429 pauses
    every call of this client until then) or a jittered exponential backoff: a 429 until
    ``retry_deadline_s`` has passed since the call was first sent, the others at most
    ``max_retries`` times. ``requests_per_minute``/``tokens_per_minute`` pace calls to the
    provider's budget. Timeouts, unreachable servers and other errors are not retried: they
    raise JudgeError (the result stays provisional and the next run scores it), and after
    ``breaker_after`` failures in a row (default: the concurrency, at least 10) calls fail
    fast for 30 s.
    """

    def __init__(self, base_url: str, model: str, *, api_key: str | None = None,
                 timeout_s: float = 60.0, temperature: float = 0.0,
                 concurrency: int = DEFAULT_CONCURRENCY, max_retries: int = 5,
                 retry_deadline_s: float = 300.0, requests_per_minute: float | None = None,
                 tokens_per_minute: float | None = None,
                 breaker_after: int | None = None) -> None:
        if concurrency < 1:
            raise ValueError(f"judge concurrency must be at least 1, got {concurrency}")
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model, self.temperature, self.timeout_s = model, temperature, timeout_s
        self.concurrency, self.max_retries = concurrency, max_retries
        self.retry_deadline_s = retry_deadline_s
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(
            headers=headers, timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 10.0)),
            limits=httpx.Limits(max_connections=concurrency,
                                max_keepalive_connections=concurrency))
        self._in_flight = threading.BoundedSemaphore(concurrency)
        self._requests = Pacer(requests_per_minute) if requests_per_minute else None
        self._tokens = Pacer(tokens_per_minute) if tokens_per_minute else None
        self._pause = Pause()
        self._breaker = Breaker(threshold=breaker_after or max(concurrency, 10))
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self.retries = 0
        """Retried answers so far (429s and 5xx "come back later")."""

    def complete(self, messages: ChatMessages, max_tokens: int = 256) -> str:
        return self._call(self._body(messages, max_tokens))

    def complete_each(self, conversations: Sequence[ChatMessages],
                      max_tokens: int = 256) -> list[str | JudgeError]:
        """Every conversation's reply, or its JudgeError, sent concurrently, in order."""
        bodies = [self._body(messages, max_tokens) for messages in conversations]
        if len(bodies) <= 1:
            return [self._outcome(body) for body in bodies]
        return list(self._executor().map(self._outcome, bodies))

    def complete_batch(self, conversations: Sequence[ChatMessages],
                       max_tokens: int = 256) -> list[str]:
        """Every reply, sent concurrently; raises the first JudgeError."""
        replies = self.complete_each(conversations, max_tokens)
        for reply in replies:
            if isinstance(reply, JudgeError):
                raise reply
        return replies  # type: ignore[return-value]

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False)
        self._client.close()

    def _executor(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.concurrency,
                                                thread_name_prefix="canarytrace-judge")
            return self._pool

    def _body(self, messages: ChatMessages, max_tokens: int) -> dict[str, Any]:
        return {"model": self.model, "messages": [dict(m) for m in messages],
                "max_tokens": max_tokens, "temperature": self.temperature}

    def _outcome(self, body: dict[str, Any]) -> str | JudgeError:
        try:
            return self._call(body)
        except JudgeError as exc:
            return exc

    def _call(self, body: dict[str, Any]) -> str:
        """One chat completion, retried while the server says to come back later."""
        started, estimate, attempt = time.monotonic(), self._estimate(body), 0
        while True:
            self._wait_for_turn(estimate)
            response = self._post(body)
            if response.status_code not in RETRYABLE_STATUSES:
                break
            wait = self._retry_wait(response, attempt, time.monotonic() - started)
            if wait is None:
                self._failed(f"judge {self.url} answered HTTP {response.status_code} "
                             f"{attempt + 1} times: {_error_message(response)}")
            with self._lock:
                self.retries += 1
            if self._tokens is not None:
                self._tokens.refund(estimate)  # the rejected request cost no tokens
            time.sleep(wait)
            attempt += 1
        if response.status_code >= 400:
            self._failed(f"judge {self.url} answered HTTP {response.status_code}: "
                         f"{_error_message(response)}")
        try:
            text = _reply_text(self.url, response)
        except JudgeError as exc:
            self._failed(str(exc))
        self._breaker.succeeded()
        self._charge_usage(response, estimate)
        return text

    def _wait_for_turn(self, estimate: float) -> None:
        """Fail fast while the breaker is open; else wait out a pause and the budgets."""
        if (closed_for := self._breaker.open_for()) > 0:
            raise JudgeError(f"judge {self.url} failed {self._breaker.threshold} times in a "
                             f"row, not called for another {closed_for:.0f}s; last: "
                             f"{self._breaker.last_error}")
        self._pause.wait()
        if self._requests is not None:
            self._requests.take(1)
        if self._tokens is not None:
            self._tokens.take(estimate)

    def _post(self, body: dict[str, Any]) -> httpx.Response:
        try:
            with self._in_flight:
                return self._client.post(self.url, json=body)
        except httpx.TimeoutException:
            self._failed(f"judge {self.url} timed out after {self.timeout_s:g}s")
        except httpx.HTTPError as exc:
            self._failed(f"judge {self.url} is unreachable: {exc}")

    def _retry_wait(self, response: httpx.Response, attempt: int,
                    elapsed_s: float) -> float | None:
        """Seconds to wait before trying again, or None to give up."""
        told = retry_after_s(response.headers)
        wait = told if told is not None else backoff_s(attempt)
        rate_limited = response.status_code == 429
        if elapsed_s + wait > self.retry_deadline_s or (
                not rate_limited and attempt >= self.max_retries):
            return None
        if told is not None and rate_limited:
            self._pause.hold(told)  # the limit is the server's, for every call of ours
        return wait

    def _failed(self, message: str) -> None:
        self._breaker.failed(message)
        raise JudgeError(message)

    def _estimate(self, body: dict[str, Any]) -> float:
        text = sum(len(m.get("content") or "") for m in body["messages"])
        return text / CHARS_PER_TOKEN + body["max_tokens"]

    def _charge_usage(self, response: httpx.Response, estimate: float) -> None:
        """Settle the token budget with what the reply says it cost."""
        if self._tokens is None:
            return
        try:
            used = float(response.json()["usage"]["total_tokens"])
        except (ValueError, KeyError, TypeError):
            return
        self._tokens.refund(estimate - used)


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
    """Which judge to use and how hard to call it, from ``CANARYTRACE_JUDGE_*`` variables."""

    url: str = ""
    model: str = ""
    api_key: str | None = None
    timeout_s: float = 60.0
    model_path: str = ""
    concurrency: int = DEFAULT_CONCURRENCY
    max_retries: int = 5
    requests_per_minute: float | None = None
    tokens_per_minute: float | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> JudgeSettings:
        """Raises ValueError naming the variable when a number is not one."""
        return cls(
            url=environ.get("CANARYTRACE_JUDGE_URL", ""),
            model=environ.get("CANARYTRACE_JUDGE_MODEL", ""),
            api_key=environ.get("CANARYTRACE_JUDGE_API_KEY") or None,
            timeout_s=_number(environ, "TIMEOUT_S", float, 60.0),
            model_path=environ.get("CANARYTRACE_JUDGE_MODEL_PATH", ""),
            concurrency=_number(environ, "CONCURRENCY", int, DEFAULT_CONCURRENCY, minimum=1),
            max_retries=_number(environ, "MAX_RETRIES", int, 5, minimum=0),
            requests_per_minute=_number(environ, "REQUESTS_PER_MINUTE", float, None),
            tokens_per_minute=_number(environ, "TOKENS_PER_MINUTE", float, None),
        )

    def backend(self) -> JudgeBackend | None:
        """The configured judge, or None when none is configured."""
        if self.url:
            if not self.model:
                raise ValueError("CANARYTRACE_JUDGE_URL needs CANARYTRACE_JUDGE_MODEL too")
            return OpenAICompatibleJudge(
                self.url, self.model, api_key=self.api_key, timeout_s=self.timeout_s,
                concurrency=self.concurrency, max_retries=self.max_retries,
                requests_per_minute=self.requests_per_minute,
                tokens_per_minute=self.tokens_per_minute)
        if self.model_path:
            return LocalTransformersJudge(self.model_path)
        return None


def _number(environ: Mapping[str, str], suffix: str, kind: type, default: Any,
            minimum: float | None = None) -> Any:
    """``CANARYTRACE_JUDGE_<suffix>`` as ``kind``: at least ``minimum``, or above 0 when no
    minimum is given; ``default`` when unset."""
    name = f"CANARYTRACE_JUDGE_{suffix}"
    text = environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = kind(text)
    except ValueError:
        value = None
    if value is None or not (value > 0 if minimum is None else value >= minimum):
        what = "a whole number" if kind is int else "a number"
        bound = "above 0" if minimum is None else f"at least {minimum:g}"
        raise ValueError(f"{name} must be {what} {bound}, got {text!r}")
    return value


@cache
def _shared_backend(settings: JudgeSettings) -> JudgeBackend | None:
    return settings.backend()


def judge_from_env(environ: Mapping[str, str] = os.environ) -> JudgeBackend | None:
    """The judge the environment configures, or None. Evaluators configured alike share
    one backend, so its concurrency and budgets hold for all of them together."""
    return _shared_backend(JudgeSettings.from_env(environ))


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
