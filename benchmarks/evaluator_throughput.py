"""Evaluator throughput on one CPU thread: spans scored per second, printed for the README.

    python benchmarks/evaluator_throughput.py [--spans 5000] [--embedded 256]

Rule-based evaluators (json_validation, tool_selection) run on ``--spans`` synthetic
spans; task_completion runs MiniLM reference similarity on ``--embedded`` spans whose
answers and references are all distinct (the worst case: no text is embedded twice).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Sequence

from canarytrace import attributes as A
from canarytrace.evaluators.base import EvalResult, SpanRecord
from canarytrace.evaluators.json_validation import JsonValidation
from canarytrace.evaluators.similarity import SentenceEmbedding, bundled_minilm_path
from canarytrace.evaluators.task_completion import TaskCompletion
from canarytrace.evaluators.tool_selection import ToolSelection

SCHEMA = {"type": "object", "required": ["id", "tags"],
          "properties": {"id": {"type": "integer"},
                         "tags": {"type": "array", "items": {"type": "string"}}}}
TOOLS = [{"name": "get_weather", "arguments": {"city": "Paris", "days": 3}},
         {"name": "get_time", "arguments": {"timezone": "UTC"}}]


def span(output: str, tool_calls: Sequence[dict] = (), **attributes: str) -> SpanRecord:
    message = {"role": "assistant", "content": output,
               "tool_calls": [{"function": {"name": c["name"],
                                            "arguments": json.dumps(c["arguments"])}}
                              for c in tool_calls]}
    return SpanRecord(trace_id="1" * 32, span_id="2" * 16, attributes={
        A.GEN_AI_INPUT_MESSAGES: json.dumps([{"role": "user", "content": "Help me."}]),
        A.GEN_AI_OUTPUT_MESSAGES: json.dumps([message]), **attributes})


def rate(score: Callable[[Sequence[SpanRecord]], list[EvalResult]],
         spans: Sequence[SpanRecord]) -> float:
    started = time.perf_counter()
    score(spans)
    return len(spans) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=5000)
    parser.add_argument("--embedded", type=int, default=256)
    args = parser.parse_args()

    import torch

    torch.set_num_threads(1)
    fenced = [span(f'Here it is:\n```json\n{{"id": {i}, "tags": ["a", "b"]}}\n```',
                   **{A.CANARY_EXPECT_JSON_SCHEMA: json.dumps(SCHEMA)}) for i in range(args.spans)]
    print(f"json_validation  {rate(JsonValidation().evaluate_batch, fenced):>9,.0f} spans/s")
    calls = [{"name": "get_time", "arguments": {"timezone": "utc"}},
             {"name": "get_weather", "arguments": {"city": "paris", "days": 3}}]
    called = [span("", calls, **{A.CANARY_EXPECT_TOOLS: json.dumps(TOOLS)})
              for _ in range(args.spans)]
    print(f"tool_selection   {rate(ToolSelection().evaluate_batch, called):>9,.0f} spans/s")
    evaluator = TaskCompletion(similarity=SentenceEmbedding(bundled_minilm_path()))
    answered = [span(f"Open Settings, then Account {i}, and click Reset password.",
                     **{A.CANARY_EXPECT_REFERENCE: f"Reset it in Settings > Account ({i})."})
                for i in range(args.embedded)]
    evaluator.evaluate_batch(answered[:8])  # warm-up
    print(f"task_completion  {rate(evaluator.evaluate_batch, answered):>9,.0f} spans/s "
          "(MiniLM embeddings, batch 32, 1 thread)")


if __name__ == "__main__":
    main()
