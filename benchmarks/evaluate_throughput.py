"""Evaluation-run throughput over mirrored canary spans, directly and through a live collector.

    python benchmarks/evaluate_throughput.py [--spans 20000,100000,500000] [--page-size 2000]
                                             [--direct-only]

For each size, seeds that many LLM spans into a fresh embedded (chDB) store with one
``INSERT ... SELECT FROM numbers()``: mirrored requests of 90 canaries (a base primary
arm and a candidate shadow arm 40 ms later in one trace, sharing a ``canary.pair_id``;
span names ``chat <model>`` as the SDK writes them, so the two arms sit in different
parts of the table's key) spread over the last hour, one third each with a JSON Schema,
expected tool calls and the instructions of an IFEval prompt (with a short chat answer),
drawn by a hash of the request so that every size has the same mix.
After a warm-up (evaluators load data on first use) it times one ``EvaluationRun`` with
json_validation, instruction_adherence and tool_selection (the code behind ``canarytrace
evaluate``) twice: reading the store directly (``--store``), and, after the results are
cleared, through a ``canarytrace serve`` subprocess on the same store (``--collector``).
Each figure covers reading the spans, sampling, the per-page lookups, scoring and writing
``eval_results``; it prints spans/s side by side, the collector/direct ratio, and the
queries (direct) or HTTP requests (collector) one run issued.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from canarytrace import attributes as A
from canarytrace.evaluators.base import SpanRecord
from canarytrace.evaluators.registry import default_registry
from canarytrace.evaluators.sources import CollectorSource, StoreSource, Window
from canarytrace.evaluators.worker import EvaluationRun, RunSummary
from canarytrace.store.client import Store
from canarytrace.store.schema import quote

EVALUATORS = ("json_validation", "instruction_adherence", "tool_selection")
CANARIES = 90
NS = 1_000_000_000
SCHEMA = {"type": "object", "required": ["invoice_id", "amount", "currency"],
          "properties": {"invoice_id": {"type": "string", "pattern": "^INV-[0-9]+$"},
                         "amount": {"type": "number", "minimum": 0},
                         "currency": {"enum": ["EUR", "USD", "GBP"]}}}
TOOLS = [{"name": "lookup_invoice", "arguments": {"invoice_id": "INV-1"}},
         {"name": "send_email", "arguments": {"to": "ada@example.com"}}]
IFEVAL = Path(__file__).resolve().parents[1].parent / "shared" / "conformance" / "ifeval"
FALLBACK_INSTRUCTIONS = [  # when the conformance data is not there
    [{"id": "change_case:english_lowercase", "kwargs": {}}],
    [{"id": "length_constraints:number_words",
      "kwargs": {"relation": "less than", "num_words": 40}}],
    [{"id": "detectable_format:number_bullet_lists", "kwargs": {"num_bullets": 3}}],
    [{"id": "punctuation:no_comma", "kwargs": {}}],
]
ANSWERS = [  # @N@ becomes the span's number: every answer distinct, as real ones are
    "your invoice was paid on march 3. the second charge is a pending authorization and "
    "will disappear within three days. ref @N@.",
    "Thanks for reaching out! I checked your account: the refund of 42 EUR was issued "
    "yesterday and should arrive in 5 to 7 business days (ref @N@).",
    "Here are the steps:\n* open Settings\n* choose Billing\n* click Download invoice\n"
    "Reference @N@.",
    "SURE. YOUR PLAN RENEWS ON THE FIRST OF EACH MONTH AND YOU CAN CANCEL AT ANY TIME "
    "FROM THE BILLING PAGE. REF @N@.",
]


# --- seeding ----------------------------------------------------------------------------------

def messages(text: str | None = None, tool: dict | None = None, role: str = "assistant") -> str:
    parts = [{"type": "text", "content": text}] if text is not None else []
    if tool is not None:
        parts.append({"type": "tool_call", "name": tool["name"], "arguments": tool["arguments"]})
    return json.dumps([{"role": role, "parts": parts}])


def instruction_lists() -> list[list[dict]]:
    """The instruction lists of the 541 IFEval prompts (kwargs without the nulls)."""
    if not IFEVAL.is_dir():
        return FALLBACK_INSTRUCTIONS
    lists = []
    for line in (IFEVAL / "input_data.jsonl").open():
        prompt = json.loads(line)
        lists.append([{"id": i, "kwargs": {k: v for k, v in (kw or {}).items() if v is not None}}
                      for i, kw in zip(prompt["instruction_id_list"], prompt["kwargs"],
                                       strict=True)])
    return lists


def variants() -> list[tuple[str, str, str]]:
    """(expectation attribute, its value, output messages) for the kinds of request: one
    third each JSON Schema, tool calls and IFEval instructions with a short chat reply."""
    instructions, out = instruction_lists(), []
    for i in range(3 * len(instructions)):
        if i % 3 == 0:
            amount = '"twelve"' if i % 4 == 0 else "12.5"  # some answers break the schema
            text = f'{{"invoice_id": "INV-@N@", "amount": {amount}, "currency": "EUR"}}'
            out.append((A.CANARY_EXPECT_JSON_SCHEMA, json.dumps(SCHEMA),
                        messages(f"Here it is:\n```json\n{text}\n```")))
        elif i % 3 == 1:
            tool = TOOLS[i % 2] if i % 5 else {"name": "refund", "arguments": {}}
            out.append((A.CANARY_EXPECT_TOOLS, json.dumps(TOOLS[i % 2:i % 2 + 1]),
                        messages(tool=tool)))
        else:
            out.append((A.CANARY_EXPECT_INSTRUCTIONS, json.dumps(instructions[i // 3]),
                        messages(ANSWERS[(i // 3) % len(ANSWERS)])))
    return out


def seed_sql(table: str, spans: int, start_ns: int, kinds: int,
             seconds: float = 3000.0) -> str:
    """One INSERT ... SELECT writing ``spans`` mirrored-request spans; the request kinds
    are the parameters ``keys``, ``values`` and ``outputs`` (arrays of ``kinds`` items)."""
    step_ns = int(seconds * NS / max(spans // 2, 1))
    question = quote(messages("Help me with my invoice.", role="user"))
    return f"""
INSERT INTO {table} (Timestamp, TraceId, SpanId, ParentSpanId, TraceState, SpanName, SpanKind,
    ServiceName, ResourceAttributes, ScopeName, ScopeVersion, SpanAttributes, Duration,
    StatusCode, StatusMessage)
SELECT fromUnixTimestamp64Nano(toInt64({start_ns} + r * {step_ns} + arm * 40000000)),
    leftPad(lower(hex(r + 1)), 32, '0'), leftPad(lower(hex(number + 1)), 16, '0'), '', '',
    concat('chat ', model), 'Client', service, map({quote(A.SERVICE_NAME)}, service),
    'canarytrace', '0.1.0',
    map({quote(A.GEN_AI_OPERATION_NAME)}, {quote(A.OPERATION_CHAT)},
        {quote(A.GEN_AI_REQUEST_MODEL)}, model,
        {quote(A.CANARY_VARIANT)}, if(arm = 0, {quote(A.VARIANT_BASE)},
                                       {quote(A.VARIANT_CANDIDATE)}),
        {quote(A.CANARY_ROLE)}, if(arm = 0, {quote(A.ROLE_PRIMARY)}, {quote(A.ROLE_SHADOW)}),
        {quote(A.CANARY_PAIR_ID)}, concat('req-', toString(r)),
        {quote(A.CANARY_ROUTE)}, 'billing', {quote(A.CANARY_COHORT)}, if(r % 4 = 0, 'eu', 'us'),
        {quote(A.GEN_AI_INPUT_MESSAGES)}, {question},
        arrayElement({{keys:Array(String)}}, kind + 1),
        arrayElement({{values:Array(String)}}, kind + 1),
        {quote(A.GEN_AI_OUTPUT_MESSAGES)},
        replaceOne(arrayElement({{outputs:Array(String)}}, kind + 1), '@N@', toString(number))),
    1000000, 'Unset', ''
FROM (SELECT number, intDiv(number, 2) AS r, number % 2 AS arm, r % {CANARIES} AS canary,
             cityHash64(r) % {kinds} AS kind,
             concat('svc-', leftPad(toString(canary), 2, '0')) AS service,
             concat('model-', toString(canary), if(arm = 0, '-base', '-lora')) AS model
      FROM numbers({spans}))"""


def seed(store: Store, spans: int, start_ns: int) -> None:
    kinds = variants()
    parameters = {name: [kind[i] for kind in kinds]
                  for i, name in enumerate(("keys", "values", "outputs"))}
    store.client.command(seed_sql(store.table("otel_traces"), spans, start_ns, len(kinds)),
                         parameters=parameters, settings={"max_insert_block_size": 1_048_576})


# --- counting what a run asks for --------------------------------------------------------------

class CountingClient:
    """Counts the queries a Store's client runs, by their first words."""

    def __init__(self, store: Store) -> None:
        self.counts: Counter[str] = Counter()
        client = store.client
        for method in ("query", "raw_query", "raw_insert", "insert", "command"):
            original = getattr(client, method)
            setattr(client, method, self._counted(method, original))

    def _counted(self, method, original):
        def call(sql, *args, **kwargs):
            words = " ".join(str(sql).split()[:2]) if "insert" not in method else method
            self.counts[words] += 1
            return original(sql, *args, **kwargs)
        return call


def evaluators() -> list:
    return [default_registry().create(name) for name in EVALUATORS]


def warm_up() -> None:
    """Score one span of every request kind in memory, so that the timed runs find the
    evaluators' lazy imports and data (NLTK, langdetect profiles) loaded."""
    spans = [SpanRecord(trace_id="0" * 32, span_id=f"{i + 1:016x}", attributes={
        A.GEN_AI_OPERATION_NAME: A.OPERATION_CHAT, key: value,
        A.GEN_AI_OUTPUT_MESSAGES: output.replace("@N@", str(i))})
        for i, (key, value, output) in enumerate(variants())]
    for evaluator in evaluators():
        evaluator.evaluate_batch([span for span in spans if evaluator.applies_to(span)])


def timed_run(source, window: Window) -> tuple[RunSummary, float]:
    started = time.perf_counter()
    summary = EvaluationRun(source, evaluators()).run(window)
    return summary, time.perf_counter() - started


# --- the live collector ------------------------------------------------------------------------

def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_collector(directory: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "CANARYTRACE_STORE": f"chdb://{directory / 'db'}",
           "CANARYTRACE_EVAL_ENABLED": "false"}
    log = open(directory / "collector.log", "ab")  # noqa: SIM115 - the child owns it
    process = subprocess.Popen([sys.executable, "-m", "canarytrace.cli", "serve", "--port",
                                str(port)], env=env, stdout=log, stderr=subprocess.STDOUT,
                               cwd=directory)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError((directory / "collector.log").read_text()[-2000:])
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return process, url
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    process.kill()
    raise RuntimeError("collector did not become ready")


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()


# --- one size -----------------------------------------------------------------------------------

def bench(spans: int, page_size: int, direct_only: bool) -> dict:
    with tempfile.TemporaryDirectory(prefix="canarytrace-bench-") as name:
        directory = Path(name)
        window = Window(datetime.now(UTC) - timedelta(hours=2))
        store = Store.from_url(f"chdb://{directory / 'db'}")
        store.migrate()
        started = time.perf_counter()
        seed(store, spans, time.time_ns() - 3300 * NS)
        seeded = time.perf_counter() - started

        EvaluationRun(StoreSource(store, "default"), evaluators(), page_size=300).run(
            Window(datetime.now(UTC) - timedelta(hours=1), datetime.now(UTC) - timedelta(
                minutes=58)))  # the store's first queries
        store.client.command(f"TRUNCATE TABLE {store.table('eval_results')}")
        counting = CountingClient(store)
        started_cpu = time.process_time()
        run = EvaluationRun(StoreSource(store, "default"), evaluators(), page_size=page_size)
        started = time.perf_counter()
        direct = run.run(window)
        direct_s, direct_cpu = time.perf_counter() - started, time.process_time() - started_cpu
        figures = {"spans": spans, "seed_s": seeded, "direct": direct.spans_read / direct_s,
                   "direct_cpu": direct.spans_read / direct_cpu,
                   "results": direct.rows_written, "queries": dict(counting.counts)}
        store.client.command(f"TRUNCATE TABLE {store.table('eval_results')}")
        store.close()
        if direct_only:
            return figures

        process, url = start_collector(directory)
        requests: Counter[str] = Counter()
        try:
            source = CollectorSource(url)
            source.client.event_hooks["request"] = [
                lambda request: requests.update([f"{request.method} {request.url.path}"])]
            run = EvaluationRun(source, evaluators(), page_size=page_size)
            started = time.perf_counter()
            through = run.run(window)
            collector_s = time.perf_counter() - started
            source.close()
        finally:
            stop(process)
        if through.rows_written != direct.rows_written:
            raise RuntimeError(f"the collector run wrote {through.rows_written} results, the "
                               f"direct one {direct.rows_written}")
        figures |= {"collector": through.spans_read / collector_s, "requests": dict(requests)}
        return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", default="20000,100000,500000",
                        help="comma-separated store sizes (default 20000,100000,500000)")
    parser.add_argument("--page-size", type=int, default=2000)
    parser.add_argument("--direct-only", action="store_true",
                        help="skip the run through a live collector")
    args = parser.parse_args()

    warm_up()
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"{'spans':>8} {'seed s':>7} {'direct spans/s':>15} {'collector spans/s':>18} "
          f"{'ratio':>6}  queries (direct) / requests (collector) per run")
    for size in (int(s) for s in args.spans.split(",")):
        f = bench(size, args.page_size, args.direct_only)
        collector = f.get("collector")
        ratio = f"{collector / f['direct']:6.2f}" if collector else "     -"
        through = f"{collector:18,.0f}" if collector else f"{'-':>18}"
        print(f"{size:8,} {f['seed_s']:7.1f} {f['direct']:15,.0f} {through} {ratio}  "
              f"{sum(f['queries'].values())} queries {f['queries']}; "
              f"{sum(f.get('requests', {}).values())} requests {f.get('requests', {})}",
              flush=True)
        print(f"         direct: {f['direct_cpu']:,.0f} spans per CPU second of this process, "
              f"{f['results']:,} results written", flush=True)
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
