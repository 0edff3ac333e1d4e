"""A user's OpenAI-client app: ``ct.init``, ``ct.expect`` and one stock instrumentor, nothing else.

    python -m tests.instrumentation.app INSTRUMENTATION OPENAI_BASE_URL COLLECTOR_URL [SERVICE]

INSTRUMENTATION is one of ``INSTRUMENTORS``. The app makes the calls in ``CALLS`` against the
(fake) OpenAI-compatible server, each inside ``ct.request(route=..., cohort=...)`` and the
call's ``ct.expect(...)``, then prints one JSON line: what each call answered.
"""

from __future__ import annotations

import importlib
import json
import sys
from typing import Any

INSTRUMENTORS = {
    "openllmetry": "opentelemetry.instrumentation.openai",
    "openai-v2": "opentelemetry.instrumentation.openai_v2",
    "openinference": "openinference.instrumentation.openai",
    "traceai": "traceai_openai",
}
MODEL = "gpt-4o-mini"
WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                   "required": ["city"]}}}
ANSWER_SCHEMA = {"type": "object", "properties": {"answer": {"type": "integer"}},
                 "required": ["answer"]}
CALLS: dict[str, dict[str, Any]] = {
    "json": {"prompt": 'say: {"answer": 42}', "route": "billing", "cohort": "pro",
             "expect": {"json_schema": ANSWER_SCHEMA,
                        "instructions": ["detectable_format:json_format"]}},
    "not_json": {"prompt": "say: forty two", "route": "billing", "cohort": "free",
                 "expect": {"json_schema": ANSWER_SCHEMA}},
    "stream": {"prompt": "say: hello there world", "route": "greeting", "cohort": "pro",
               "stream": True,
               "expect": {"instructions": [("keywords:existence", {"keywords": ["hello"]})]}},
    "tool": {"prompt": 'call:get_weather {"city": "Paris"}', "route": "weather",
             "cohort": "pro", "tools": [WEATHER_TOOL],
             "expect": {"tools": [{"name": "get_weather", "arguments": {"city": "Paris"}}]}},
}


def call(client: Any, spec: dict[str, Any]) -> dict[str, Any]:
    """Make one chat call; returns its answer text, tool calls and finish reason."""
    kwargs: dict[str, Any] = {"model": MODEL, "temperature": 0.2,
                              "messages": [{"role": "system", "content": "Be brief."},
                                           {"role": "user", "content": spec["prompt"]}]}
    if spec.get("tools"):
        kwargs["tools"] = spec["tools"]
    if not spec.get("stream"):
        choice = client.chat.completions.create(**kwargs).choices[0]
        calls = [c.function.name for c in choice.message.tool_calls or []]
        return {"text": choice.message.content, "tools": calls,
                "finish": choice.finish_reason}
    text, finish = [], None
    stream = client.chat.completions.create(**kwargs, stream=True,
                                            stream_options={"include_usage": True})
    for chunk in stream:
        for choice in chunk.choices:
            text.append(choice.delta.content or "")
            finish = choice.finish_reason or finish
    return {"text": "".join(text), "tools": [], "finish": finish}


def main(instrumentation: str, openai_url: str, collector_url: str,
         service: str | None = None) -> None:
    import openai

    import canarytrace as ct

    importlib.import_module(INSTRUMENTORS[instrumentation]).OpenAIInstrumentor().instrument()
    ct.init(service_name=service or f"app-{instrumentation}", endpoint=collector_url)
    client = openai.OpenAI(base_url=openai_url, api_key="sk-test", max_retries=0)
    answers = {}
    for name, spec in CALLS.items():
        with ct.request(f"req-{name}", route=spec["route"], cohort=spec["cohort"]), \
                ct.expect(**spec["expect"]):
            answers[name] = call(client, spec)
    ct.force_flush()
    ct.shutdown()
    print(json.dumps(answers))


if __name__ == "__main__":
    main(*sys.argv[1:5])
