"""Evaluation-run throughput: stored spans read, scored by the rule-based evaluators, written.

    python benchmarks/evaluate_throughput.py [--spans 20000] [--instructions short|ifeval]
                                             [--profile]

Seeds ``--spans`` LLM spans straight into a fresh embedded (chDB) store, one third each
with a JSON Schema, expected tool calls and IFEval instructions, then times one
``EvaluationRun`` (the code behind ``canarytrace evaluate --store``) with
json_validation, instruction_adherence and tool_selection: the figure covers reading the
spans, sampling, scoring and writing ``eval_results``. Instruction spans carry the
instruction lists of the 541 IFEval prompts; their answers are short chat replies
(``short``) or GPT-4's full IFEval responses (``ifeval``, ~300 words each). ``--profile``
adds the functions instruction_adherence spends its time in.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from canarytrace import attributes as A
from canarytrace.evaluators.registry import default_registry
from canarytrace.evaluators.sources import StoreSource, Window
from canarytrace.evaluators.worker import EvaluationRun
from canarytrace.store.client import Store
from canarytrace.store.timestamps import format_ns

IFEVAL = Path(__file__).resolve().parents[1].parent / "shared" / "conformance" / "ifeval"
SCHEMA = {"type": "object", "required": ["invoice_id", "amount", "currency"],
          "properties": {"invoice_id": {"type": "string", "pattern": "^INV-[0-9]+$"},
                         "amount": {"type": "number", "minimum": 0},
                         "currency": {"enum": ["EUR", "USD", "GBP"]}}}
TOOLS = [{"name": "lookup_invoice", "arguments": {"invoice_id": "INV-1"}},
         {"name": "send_email", "arguments": {"to": "ada@example.com"}}]
SHORT_ANSWERS = [
    "your invoice was paid on march 3. the second charge is a pending authorization and "
    "will disappear within three days.",
    "Thanks for reaching out! I checked your account: the refund of 42 EUR was issued "
    "yesterday and should arrive in 5 to 7 business days.",
    "SURE. YOUR PLAN RENEWS ON THE FIRST OF EACH MONTH, AND YOU CAN CANCEL AT ANY TIME "
    "FROM THE BILLING PAGE.",
    "Here are the steps:\n* open Settings\n* choose Billing\n* click Download invoice\n"
    "Let me know if anything is unclear.",
]
NS = 1_000_000_000


# --- seeding ----------------------------------------------------------------------------------

def ifeval_rows() -> list[tuple[list[dict], str]]:
    """(instructions, GPT-4's response) for each IFEval prompt."""
    prompts = [json.loads(line) for line in (IFEVAL / "input_data.jsonl").open()]
    responses = {}
    for line in (IFEVAL / "gpt4_responses.jsonl").open():
        row = json.loads(line)
        responses[row.get("prompt", row.get("key"))] = row["response"]
    rows = []
    for prompt in prompts:
        instructions = [{"id": i, "kwargs": {k: v for k, v in (kw or {}).items() if v is not None}}
                        for i, kw in zip(prompt["instruction_id_list"], prompt["kwargs"],
                                         strict=True)]
        response = responses.get(prompt["prompt"], responses.get(prompt["key"], ""))
        rows.append((instructions, response))
    return rows


def output(text: str | None = None, tool: dict | None = None) -> str:
    parts = [{"type": "text", "content": text}] if text is not None else []
    if tool is not None:
        parts.append({"type": "tool_call", "name": tool["name"], "arguments": tool["arguments"]})
    return json.dumps([{"role": "assistant", "parts": parts}])


def expectation_and_output(i: int, ifeval: list, mode: str) -> dict[str, str]:
    kind = i % 3
    if kind == 0:
        amount = "12.5" if i % 5 else '"twelve"'
        text = f'{{"invoice_id": "INV-{i}", "amount": {amount}, "currency": "EUR"}}'
        return {A.CANARY_EXPECT_JSON_SCHEMA: json.dumps(SCHEMA),
                A.GEN_AI_OUTPUT_MESSAGES: output(f"Here it is:\n```json\n{text}\n```")}
    if kind == 1:
        tool = TOOLS[i % 2] if i % 7 else {"name": "refund", "arguments": {}}
        return {A.CANARY_EXPECT_TOOLS: json.dumps(TOOLS[i % 2:i % 2 + 1]),
                A.GEN_AI_OUTPUT_MESSAGES: output(tool=tool)}
    instructions, response = ifeval[(i // 3) % len(ifeval)]
    if mode == "short":  # every answer distinct, as real ones are
        response = SHORT_ANSWERS[(i // 3) % len(SHORT_ANSWERS)]
        response += f" {'REF' if response.isupper() else 'ref'} {i}."
    return {A.CANARY_EXPECT_INSTRUCTIONS: json.dumps(instructions),
            A.GEN_AI_OUTPUT_MESSAGES: output(response)}


def span_rows(first: int, count: int, mode: str, start_ns: int) -> list[dict]:
    """Spans number ``first`` to ``first + count - 1``; pairs of them share a trace."""
    ifeval = ifeval_rows()
    rows = []
    for i in range(first, first + count):
        attributes = {A.GEN_AI_OPERATION_NAME: A.OPERATION_CHAT,
                      A.GEN_AI_REQUEST_MODEL: "llama-3-8b-lora" if i % 2 else "llama-3-8b",
                      A.CANARY_VARIANT: "candidate" if i % 2 else "base",
                      A.CANARY_PAIR_ID: f"req-{i // 2}", A.CANARY_ROUTE: "billing",
                      A.GEN_AI_INPUT_MESSAGES: output("Help me with my invoice."),
                      **expectation_and_output(i, ifeval, mode)}
        rows.append({"Timestamp": format_ns(start_ns + i * 100_000),
                     "TraceId": f"{i // 2 + 1:032x}", "SpanId": f"{i + 1:016x}",
                     "ParentSpanId": "", "TraceState": "", "SpanName": "chat", "SpanKind": "Client",
                     "ServiceName": "billing-bot", "ScopeName": "canarytrace",
                     "ScopeVersion": "0.1.0", "ResourceAttributes": {A.SERVICE_NAME: "billing-bot"},
                     "SpanAttributes": attributes, "Duration": 1000, "StatusCode": "Unset",
                     "StatusMessage": ""})
    return rows


# --- timing -----------------------------------------------------------------------------------

class Timed:
    """Wraps an evaluator or a source and adds up the seconds spent in its methods."""

    def __init__(self, inner, methods: tuple[str, ...]) -> None:
        self.inner, self.seconds, self.calls = inner, 0.0, 0
        self.name, self.version = getattr(inner, "name", ""), getattr(inner, "version", "1")
        self.project = getattr(inner, "project", "")
        for method in methods:
            setattr(self, method, self._timed(getattr(inner, method)))

    def _timed(self, method):
        def call(*args, **kwargs):
            started = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - started
                self.calls += 1
        return call

    def __getattr__(self, name):
        return getattr(self.inner, name)


class TimedReads:
    """A source whose page reads (the generator's steps) are timed."""

    def __init__(self, source: StoreSource) -> None:
        self.source, self.project, self.seconds = source, source.project, 0.0
        self.writes = Timed(source, ("write",))
        self.write, self.trace = self.writes.write, source.trace
        self.scored_span_ids = source.scored_span_ids

    def span_pages(self, filters, page_size):
        pages = self.source.span_pages(filters, page_size)
        while True:
            started = time.perf_counter()
            page = next(pages, None)
            self.seconds += time.perf_counter() - started
            if page is None:
                return
            yield page


def profile_instructions(store: Store) -> str:
    evaluator = default_registry().create("instruction_adherence")
    spans = [s for page in StoreSource(store, "default").span_pages(
        {"has_expectation": True}, 5000) for s in page if evaluator.applies_to(s)][:600]
    profiler = cProfile.Profile()
    profiler.runcall(evaluator.evaluate_batch, spans)
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(12)
    return text.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=20_000)
    parser.add_argument("--instructions", choices=("short", "ifeval"), default="short")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="canarytrace-bench-") as directory:
        store = Store.from_url(f"chdb://{directory}/db")
        store.migrate()
        start_ns = time.time_ns() - 3600 * NS
        started = time.perf_counter()
        for first in range(0, args.spans, 10_000):
            store.insert_spans(span_rows(first, min(10_000, args.spans - first),
                                         args.instructions, start_ns))
        print(f"seeded {args.spans:,} spans ({args.instructions} instruction answers) in "
              f"{time.perf_counter() - started:.1f} s")

        registry = default_registry()
        evaluators = [Timed(registry.create(name), ("applies_to", "evaluate_batch"))
                      for name in ("json_validation", "instruction_adherence", "tool_selection")]
        source = TimedReads(StoreSource(store, "default"))
        started, cpu_started = time.perf_counter(), time.process_time()
        summary = EvaluationRun(source, evaluators).run(
            Window(datetime.now(UTC) - timedelta(hours=2)))
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started

        print(f"evaluate: {summary.spans_read:,} spans read, {summary.rows_written:,} results "
              f"written in {elapsed:.2f} s = {summary.spans_read / elapsed:,.0f} spans/s "
              "(read + evaluate + write)")
        print(f"  process CPU time {cpu:.2f} s = {summary.spans_read / cpu:,.0f} spans per CPU "
              "second (the rate without other load on the machine)")
        accounted = source.seconds + source.writes.seconds
        print(f"  read spans             {source.seconds:6.2f} s")
        print(f"  write eval_results     {source.writes.seconds:6.2f} s")
        for evaluator in evaluators:
            scored = summary.tallies[evaluator.name].scored
            accounted += evaluator.seconds
            print(f"  {evaluator.name:<22} {evaluator.seconds:6.2f} s  {scored:,} spans, "
                  f"{scored / max(evaluator.seconds, 1e-9):,.0f} spans/s")
        print(f"  worker (sampling, context, rows) {elapsed - accounted:6.2f} s")
        if args.profile:
            print("\ninstruction_adherence profile (600 spans, by own time):")
            print(profile_instructions(store))
        store.close()


if __name__ == "__main__":
    main()
