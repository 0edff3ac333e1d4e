"""The demo's simulated shop assistant: a base model, a tuned candidate and their traffic.

Three routes exercise three evaluators. The candidate is better at following
instructions on ``support``, as good at picking tools on ``search``, and worse at
producing valid JSON on ``billing`` — the regression the demo's verdict must catch.
"""

from __future__ import annotations

import contextlib
import json
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import canarytrace as ct

BASE_MODEL = "shop-assistant-base"
CANDIDATE_MODEL = "shop-assistant-lora-r16"
ROUTES = ("billing", "support", "search")
COHORTS = ("free", "pro", "enterprise", "eu", "us")

INVOICE_SCHEMA = {
    "type": "object",
    "required": ["invoice_id", "amount", "currency"],
    "properties": {
        "invoice_id": {"type": "string", "pattern": "^INV-[0-9]{5}$"},
        "amount": {"type": "number", "minimum": 0},
        "currency": {"enum": ["USD", "EUR"]},
    },
    "additionalProperties": False,
}
SUPPORT_INSTRUCTIONS = [
    {"id": "change_case:english_lowercase", "kwargs": {}},
    {"id": "length_constraints:number_words", "kwargs": {"num_words": 40, "relation": "less than"}},
]
SEARCH_TOOLS = [{"name": "search_catalog", "arguments": {"query": "running shoes", "limit": 5}}]


@dataclass(frozen=True)
class Quality:
    """How often a simulated model gets each route right."""

    json_valid: float
    follows_instructions: float
    right_tool: float
    latency_ms: float
    error_rate: float = 0.0


class SimulatedOutOfMemory(RuntimeError):
    """What a simulated GPU server raises now and then."""


BASE_QUALITY = Quality(json_valid=0.96, follows_instructions=0.70, right_tool=0.92, latency_ms=6)
CANDIDATE_QUALITY = Quality(json_valid=0.72, follows_instructions=0.93, right_tool=0.92,
                            latency_ms=8, error_rate=0.01)


def _billing_answer(rng: random.Random, quality: Quality) -> str:
    invoice = {"invoice_id": f"INV-{rng.randrange(10**5):05d}",
               "amount": round(rng.uniform(5, 500), 2), "currency": rng.choice(["USD", "EUR"])}
    if rng.random() < quality.json_valid:
        return "Here is the invoice:\n```json\n" + json.dumps(invoice) + "\n```"
    broken = json.dumps(invoice)[:-1] + ', "note": "paid'
    return "Here is the invoice: " + broken


def _support_answer(rng: random.Random, quality: Quality) -> str:
    answer = ("thanks for reaching out. you can reset your password from the account page, "
              "then sign in again with the new one.")
    if rng.random() < quality.follows_instructions:
        return answer
    return "Thanks for reaching out! " + answer.capitalize() + " Our Support Team is here 24/7."


def _search_answer(rng: random.Random, quality: Quality) -> dict[str, Any]:
    arguments = {"query": "running shoes", "limit": 5}
    name = "search_catalog" if rng.random() < quality.right_tool else "search_orders"
    call = {"id": f"call_{rng.randrange(10**6)}", "type": "function",
            "function": {"name": name, "arguments": json.dumps(arguments)}}
    return {"role": "assistant", "content": None, "tool_calls": [call]}


ANSWERS: dict[str, Callable[[random.Random, Quality], Any]] = {
    "billing": _billing_answer, "support": _support_answer, "search": _search_answer,
}


def _expect(route: str) -> None:
    if route == "billing":
        ct.expect(json_schema=INVOICE_SCHEMA)
    elif route == "support":
        ct.expect(instructions=SUPPORT_INSTRUCTIONS)
    else:
        ct.expect(tools=SEARCH_TOOLS)


def simulated_model(model: str, quality: Quality) -> Callable[[dict[str, Any]], Any]:
    """A traced model function: answers a request dict according to ``quality``."""

    @ct.llm(model=model, provider="simulated")
    def generate(messages: list[dict[str, str]], *, request: dict[str, Any]) -> Any:
        rng = random.Random(f"{model}:{request['id']}")
        route = request["route"]
        _expect(route)
        time.sleep(rng.uniform(0.5, 1.5) * quality.latency_ms / 1000)
        if rng.random() < quality.error_rate:
            raise SimulatedOutOfMemory("CUDA out of memory (simulated)")
        answer = ANSWERS[route](rng, quality)
        if route == "billing":
            answer = _parse_with_one_retry(answer, rng, quality)
        text = answer if isinstance(answer, str) else json.dumps(answer)
        usage = {"prompt_tokens": 12 + len(messages[-1]["content"]) // 4,
                 "completion_tokens": max(1, len(text) // 4)}
        if isinstance(answer, dict):
            return {"choices": [{"message": answer, "finish_reason": "tool_calls"}],
                    "usage": usage, "model": model}
        return {"choices": [{"message": {"role": "assistant", "content": answer},
                             "finish_reason": "stop"}], "usage": usage, "model": model}

    def call(request: dict[str, Any]) -> Any:
        return generate(request["messages"], request=request)

    return call


def _parse_with_one_retry(answer: str, rng: random.Random, quality: Quality) -> str:
    """The app's output parser: on a parse failure it asks the model once more."""
    try:
        ct.parse_json(answer)
        return answer
    except ct.JSONParseError:
        retry = _billing_answer(rng, quality)
        with contextlib.suppress(ct.JSONParseError):
            ct.parse_json(retry, retry=True)
        return retry


def requests(count: int, seed: int = 7) -> Iterator[dict[str, Any]]:
    """``count`` user requests spread over routes and cohorts."""
    rng = random.Random(seed)
    prompts = {"billing": "Show my last invoice as JSON.",
               "support": "How do I reset my password?",
               "search": "Find running shoes for me."}
    for index in range(count):
        route = ROUTES[index % len(ROUTES)]
        yield {"id": index, "user": f"user-{rng.randrange(10**6)}", "route": route,
               "cohort": rng.choice(COHORTS),
               "messages": [{"role": "user", "content": prompts[route]}]}
