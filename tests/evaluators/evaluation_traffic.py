"""Send a fixed set of traced LLM calls and an agent run through the SDK's OTLP exporter.

Run as ``python -m tests.evaluators.evaluation_traffic ENDPOINT [API_KEY]`` (its own
process, so the SDK's tracer provider is its own); prints ``{name: span_id}`` as JSON.
Each call states what a correct answer looks like (``ct.expect``), and half of them miss.
"""

from __future__ import annotations

import json
import sys

import canarytrace as ct
from canarytrace import attributes as A

PERSON = {"type": "object", "required": ["name", "age"],
          "properties": {"name": {"type": "string"}, "age": {"type": "integer"}}}
LOWERCASE = ["change_case:english_lowercase"]
LOOKUP = [{"name": "lookup_invoice", "arguments": {"invoice_id": "INV-7"}}]
QUESTION = "What is the capital of Australia?"


def tool_reply(name: str) -> dict:
    return {"role": "assistant", "content": "", "tool_calls": [
        {"id": "call-1", "type": "function",
         "function": {"name": name, "arguments": json.dumps({"invoice_id": "INV-7"})}}]}


CALLS = {  # name -> (expectations, output)
    "json_ok": ({"json_schema": PERSON}, '{"name": "Ada", "age": 36}'),
    "json_bad": ({"json_schema": PERSON}, '{"name": "Ada"}'),
    "lower_ok": ({"instructions": LOWERCASE},
                 "here is a calm answer, written in lowercase letters as the customer asked."),
    "lower_bad": ({"instructions": LOWERCASE}, "HERE IS A LOUD ANSWER."),
    "tool_ok": ({"tools": LOOKUP}, tool_reply("lookup_invoice")),
    "tool_bad": ({"tools": LOOKUP}, tool_reply("issue_refund")),
}


def span_id(span) -> str:
    return format(span.get_span_context().span_id, "016x")


def send_calls() -> dict[str, str]:
    ids = {}
    for name, (expectations, output) in CALLS.items():
        with ct.llm_call(model="llama-3-8b-lora", route="billing", cohort="eu") as call:
            ct.expect(**expectations)
            call.set_input("Answer the customer.")
            call.set_output(output)
            ids[name] = span_id(call.span)
    return ids


def send_pair() -> dict[str, str]:
    """One mirrored request: the base answers wrong, the candidate right."""
    ids = {}
    for variant, role, answer in ((A.VARIANT_BASE, A.ROLE_PRIMARY, "Sydney"),
                                  (A.VARIANT_CANDIDATE, A.ROLE_SHADOW, "CORRECT: Canberra")):
        labels = {A.CANARY_VARIANT: variant, A.CANARY_ROLE: role, A.CANARY_PAIR_ID: "req-42"}
        with ct.scoped_attributes(labels), ct.llm_call(model=f"llama-{variant}",
                                                       route="geo") as call:
            call.set_input(QUESTION)
            call.set_output(answer)
            ids[f"pair_{variant}"] = span_id(call.span)
    return ids


def send_agent_run() -> dict[str, str]:
    with ct.agent("support") as run:
        ct.expect(tools=LOOKUP)
        with run.step("act"), ct.tool_call("lookup_invoice",
                                           arguments={"invoice_id": "INV-7"}) as tool:
            tool.set_result({"status": "paid"})
        with run.step("respond"):
            run.set_output("Your invoice INV-7 is paid.")
        return {"agent": span_id(run.span)}


def main() -> None:
    endpoint = sys.argv[1]
    api_key = sys.argv[2] if len(sys.argv) > 2 else None
    ct.init(service_name="shop", endpoint=endpoint, api_key=api_key)
    ids = {**send_calls(), **send_pair(), **send_agent_run()}
    if not ct.force_flush():
        raise SystemExit("spans were not exported")
    ct.shutdown()
    print(json.dumps(ids))


if __name__ == "__main__":
    main()
