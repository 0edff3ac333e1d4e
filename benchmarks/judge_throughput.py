"""Judge throughput: ``canarytrace evaluate`` with task_completion and pairwise against a
fake OpenAI-compatible judge that answers in 200 ms, with and without a rate limit.

    python benchmarks/judge_throughput.py [--spans 2000] [--latency-s 0.2] [--concurrency 32]
                                          [--rate-limit 20] [--scenarios free,limited,budget]

Seeds ``--spans`` stored LLM spans (mirrored requests: a base and a candidate arm, each
with a task for the judge) into a fresh embedded store, starts the fake judge
(``tests/evaluators/judge_server.py``) in its own process, and runs the real command,
``canarytrace evaluate --store ... --evaluators task_completion,pairwise``, in another:
one judge call per span for task_completion and two (positions swapped) per pair for
pairwise. Scenarios: ``free`` (no rate limit), ``limited`` (the judge answers 429 with
Retry-After over ``--rate-limit`` requests/s; nothing configured on our side) and
``budget`` (the same limit, and ``CANARYTRACE_JUDGE_REQUESTS_PER_MINUTE`` set to it).
Prints judged calls/s as the judge saw them (first accepted call to last answer) and over
the whole command, the ratio to the physical limit (concurrency / latency, or the rate
limit when lower), the 429s answered and the results that ended without a verdict.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from canarytrace import attributes as A
from canarytrace.store.client import Store
from canarytrace.store.timestamps import format_ns

ROOT = Path(__file__).resolve().parents[1]
NS = 1_000_000_000


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def text(role: str, content: str) -> str:
    return json.dumps([{"role": role, "parts": [{"type": "text", "content": content}]}])


def seed(directory: Path, spans: int) -> None:
    """``spans`` LLM spans: mirrored requests whose arms each carry a task."""
    store = Store.from_url(f"chdb://{directory / 'db'}")
    store.migrate()
    start, rows = time.time_ns() - 1800 * NS, []
    for i in range(spans):
        request, arm = divmod(i, 2)
        variant = A.VARIANT_CANDIDATE if arm else A.VARIANT_BASE
        answer = ("CORRECT: the ticket is done." if (request + arm) % 3 else
                  "I could not find that ticket.")
        rows.append({"Timestamp": format_ns(start + i * 10**7), "TraceId": f"{request + 1:032x}",
                     "SpanId": f"{i + 1:016x}", "SpanName": f"chat llama-{variant}",
                     "ServiceName": "support", "SpanAttributes": {
                         A.GEN_AI_OPERATION_NAME: A.OPERATION_CHAT,
                         A.GEN_AI_REQUEST_MODEL: f"llama-{variant}", A.CANARY_VARIANT: variant,
                         A.CANARY_PAIR_ID: f"req-{request}", A.CANARY_TASK: "Close ticket 7.",
                         A.GEN_AI_INPUT_MESSAGES: text("user", "Please close ticket 7."),
                         A.GEN_AI_OUTPUT_MESSAGES: text("assistant", answer)}})
    store.insert_spans(rows)
    store.close()


def labels(directory: Path) -> dict[str, int]:
    store = Store.from_url(f"chdb://{directory / 'db'}")
    rows = store.query(f"SELECT Label, count() AS n FROM {store.table('eval_results')} FINAL "
                       "GROUP BY Label ORDER BY Label")
    store.close()
    return {row["Label"]: row["n"] for row in rows}


def start_judge(port: int, latency_s: float, rate_limit: float | None) -> subprocess.Popen:
    command = [sys.executable, "-m", "tests.evaluators.judge_server", "--port", str(port),
               "--latency-s", str(latency_s)]
    if rate_limit:
        command += ["--rate-limit", str(rate_limit)]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/stats", timeout=1)
            return process
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("the fake judge did not start")


def scenario(name: str, args: argparse.Namespace) -> dict:
    rate_limit = None if name == "free" else args.rate_limit
    with tempfile.TemporaryDirectory(prefix="canarytrace-judge-bench-") as tmp:
        directory = Path(tmp)
        seed(directory, args.spans)
        port = free_port()
        judge = start_judge(port, args.latency_s, rate_limit)
        env = {**os.environ, "CANARYTRACE_JUDGE_URL": f"http://127.0.0.1:{port}/v1",
               "CANARYTRACE_JUDGE_MODEL": "grader",
               "CANARYTRACE_JUDGE_CONCURRENCY": str(args.concurrency)}
        if name == "budget":
            env["CANARYTRACE_JUDGE_REQUESTS_PER_MINUTE"] = str(args.rate_limit * 60)
        try:
            started = time.perf_counter()
            done = subprocess.run(
                [sys.executable, "-m", "canarytrace.cli", "evaluate", "--store",
                 f"chdb://{directory / 'db'}", "--since", "2h",
                 "--evaluators", "task_completion,pairwise"],
                env=env, capture_output=True, text=True, timeout=3600)
            wall = time.perf_counter() - started
            stats = httpx.get(f"http://127.0.0.1:{port}/stats").json()
        finally:
            judge.terminate()
            judge.wait(10)
        if done.returncode not in (0, 1):
            raise RuntimeError(f"evaluate failed ({done.returncode}): {done.stderr[-2000:]}")
        judged = stats["last_answered"] - stats["first_accepted"]
        limit = args.concurrency / args.latency_s
        if rate_limit:
            limit = min(limit, rate_limit)
        found = labels(directory)
        no_verdict = sum(n for label, n in found.items() if label in ("judge_error", "unparsed"))
        return {"scenario": name, "rate_limit": rate_limit, "calls": stats["accepted"],
                "calls_per_s": stats["accepted"] / judged, "command_calls_per_s":
                stats["accepted"] / wall, "limit": limit, "rejected": stats["rejected"],
                "max_in_flight": stats["max_in_flight"], "busiest_second": stats["busiest_second"],
                "results": sum(found.values()), "no_verdict": no_verdict, "wall_s": wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=2000)
    parser.add_argument("--latency-s", type=float, default=0.2)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rate-limit", type=float, default=20.0)
    parser.add_argument("--scenarios", default="free,limited,budget")
    args = parser.parse_args()
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"{args.spans} spans, task_completion + pairwise, judge latency {args.latency_s:g} s, "
          f"CANARYTRACE_JUDGE_CONCURRENCY={args.concurrency}")
    for name in args.scenarios.split(","):
        f = scenario(name, args)
        limit = f"{f['rate_limit']:g} req/s limit" if f["rate_limit"] else "no rate limit"
        print(f"{name:8} ({limit}): {f['calls']:,} judged calls, {f['calls_per_s']:.1f} calls/s "
              f"= {f['calls_per_s'] / f['limit']:.0%} of the {f['limit']:g}/s limit "
              f"({f['command_calls_per_s']:.1f}/s over the whole command, {f['wall_s']:.0f} s); "
              f"{f['rejected']:,} answered 429; at most {f['max_in_flight']} in flight, "
              f"{f['busiest_second']} accepted in the busiest second; "
              f"{f['results']:,} results, {f['no_verdict']} without a verdict", flush=True)
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
