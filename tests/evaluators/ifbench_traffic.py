"""Send traced LLM calls that expect IFBench instructions through the SDK's OTLP exporter.

Run as ``python -m tests.evaluators.ifbench_traffic ENDPOINT`` (its own process, so the
SDK's tracer provider is its own); prints ``{name: span_id}`` as JSON.
"""

from __future__ import annotations

import json
import sys

import canarytrace as ct

KEYWORDS = {"keyword1": "sun", "keyword2": "moon", "keyword3": "star", "keyword4": "sky",
            "keyword5": "rain"}
INSTRUCTIONS = [
    {"id": "count:keywords_multiple", "kwargs": KEYWORDS},
    {"id": "format:no_whitespace", "kwargs": {}},
    {"id": "words:start_verb", "kwargs": {}},
]
FOLLOWED = "-".join(["sun"] + ["moon"] * 2 + ["star"] * 3 + ["sky"] * 5 + ["rain"] * 7)
CALLS = {"ifbench_ok": FOLLOWED, "ifbench_bad": "sun moon star sky rain"}


def main() -> None:
    ct.init(service_name="shop", endpoint=sys.argv[1])
    ids = {}
    for name, output in CALLS.items():
        with ct.llm_call(model="llama-3-8b-lora", route="games") as call:
            ct.expect(instructions=INSTRUCTIONS)
            call.set_input("Play the word game.")
            call.set_output(output)
            ids[name] = format(call.span.get_span_context().span_id, "016x")
    if not ct.force_flush():
        raise SystemExit("spans were not exported")
    ct.shutdown()
    print(json.dumps(ids))


if __name__ == "__main__":
    main()
