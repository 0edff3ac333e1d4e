"""Benchmark: ``canarytrace compare`` over 1M spans and 1M eval results in the embedded store.

Seeds a fresh chDB store with 500,000 mirrored requests (a base and a candidate span each,
and a json_validation result on both spans), then times the comparison itself: the four
queries (``load_inputs``), the engine (``compare``) and the JSON report, without recording.
Target: under 3 s. Seeding is timed separately and is not part of the figure.

    python benchmarks/compare_1m.py [--pairs 500000] [--repeat 3] [--by cohort]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta

import numpy as np

from canarytrace import attributes as A
from canarytrace.analysis.compare import compare
from canarytrace.analysis.inputs import ComparisonQuery, load_inputs
from canarytrace.analysis.policy import default_policy
from canarytrace.analysis.report_json import report_to_dict
from canarytrace.analysis.window import parse_slicings
from canarytrace.store.client import Store

BASE, CANDIDATE = "llama-3-8b", "llama-3-8b-lora-r16"
COHORTS = ("free", "pro", "enterprise", "edu", "internal")
ROUTES = ("billing", "support", "search")
START = datetime(2025, 3, 1, tzinfo=UTC)
CHUNK = 100_000


def seed(store: Store, pairs: int) -> None:
    rng = np.random.default_rng(0)
    for first in range(0, pairs, CHUNK // 2):
        count = min(CHUNK // 2, pairs - first)
        _insert(store, "otel_traces", _span_columns(rng, first, count))
        _insert(store, "eval_results", _eval_columns(rng, first, count))


def _common(first: int, count: int) -> dict[str, list]:
    index = np.arange(first, first + count)
    ns = int(START.timestamp()) * 10**9 + index * 100_000_000  # one request per 100 ms
    arms = (0, 1)
    return {
        "ns": [int(t + arm * 1_000_000) for arm in arms for t in ns],
        "trace": [f"{i:032x}" for _ in arms for i in index],
        "pair": [f"p{i:031x}" for _ in arms for i in index],
        "span": [f"{arm + 1:x}{i:015x}" for arm in arms for i in index],
        "model": [m for m in (BASE, CANDIDATE) for _ in index],
        "cohort": [COHORTS[i % len(COHORTS)] for _ in arms for i in index],
        "route": [ROUTES[i % len(ROUTES)] for _ in arms for i in index],
    }


def _span_columns(rng: np.random.Generator, first: int, count: int) -> dict[str, list]:
    c = _common(first, count)
    n = 2 * count
    tokens = rng.poisson(200, n)
    variant = [A.VARIANT_BASE] * count + [A.VARIANT_CANDIDATE] * count
    role = [A.ROLE_PRIMARY] * count + [A.ROLE_SHADOW] * count
    attributes = [{A.GEN_AI_REQUEST_MODEL: c["model"][i], A.CANARY_VARIANT: variant[i],
                   A.CANARY_ROLE: role[i], A.CANARY_PAIR_ID: c["pair"][i],
                   A.CANARY_COHORT: c["cohort"][i], A.CANARY_ROUTE: c["route"][i],
                   A.GEN_AI_USAGE_OUTPUT_TOKENS: str(tokens[i])} for i in range(n)]
    return {"Timestamp": c["ns"], "TraceId": c["trace"], "SpanId": c["span"],
            "ParentSpanId": [""] * n, "SpanName": [f"chat {m}" for m in c["model"]],
            "SpanKind": ["Client"] * n, "ServiceName": ["chat-api"] * n,
            "ResourceAttributes": [{A.SERVICE_NAME: "chat-api"}] * n,
            "SpanAttributes": attributes,
            "Duration": rng.lognormal(np.log(8e8), 0.3, n).astype(np.uint64).tolist(),
            "StatusCode": ["Ok"] * n}


def _eval_columns(rng: np.random.Generator, first: int, count: int) -> dict[str, list]:
    c = _common(first, count)
    n = 2 * count
    passed = (rng.random(n) < 0.9).tolist()
    return {"Timestamp": [t // 1_000_000 for t in c["ns"]], "SpanTimestamp": c["ns"],
            "Project": ["default"] * n, "ServiceName": ["chat-api"] * n,
            "TraceId": c["trace"], "SpanId": c["span"], "Evaluator": ["json_validation"] * n,
            "EvaluatorVersion": ["1"] * n, "Score": [float(p) for p in passed],
            "Passed": passed, "Model": c["model"], "PairId": c["pair"], "Route": c["route"],
            "Cohort": c["cohort"]}


def _insert(store: Store, table: str, columns: dict[str, list]) -> None:
    names = list(columns)
    store.client.insert(store.table(table), [columns[n] for n in names], column_names=names,
                        column_oriented=True)


def run_once(store: Store, query: ComparisonQuery) -> dict[str, float]:
    policy = default_policy()
    started = time.perf_counter()
    inputs = load_inputs(store, query)
    loaded = time.perf_counter()
    report = compare(inputs, policy)
    compared = time.perf_counter()
    document = report_to_dict(report)
    done = time.perf_counter()
    return {"load": loaded - started, "engine": compared - loaded, "json": done - compared,
            "total": done - started, "verdict": document["verdict"],
            "rows": sum(m.time.size for m in inputs.metrics)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=500_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--by", default="cohort")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        store = Store.from_url(f"chdb://{directory}/db")
        store.migrate()
        started = time.perf_counter()
        seed(store, args.pairs)
        counts = {t: store.client.command(f"SELECT count() FROM {store.table(t)}")
                  for t in ("otel_traces", "eval_results")}
        print(f"seeded {counts['otel_traces']:,} spans and {counts['eval_results']:,} eval "
              f"results in {time.perf_counter() - started:.1f} s (not part of the figure)")
        query = ComparisonQuery(BASE, CANDIDATE, START, START + timedelta(days=7),
                                slicings=parse_slicings(args.by))
        runs = [run_once(store, query) for _ in range(args.repeat)]
        store.close()
    for i, run in enumerate(runs, 1):
        print(f"run {i}: total {run['total']:.2f} s = load (SQL -> numpy) {run['load']:.2f} s"
              f" + engine {run['engine']:.2f} s + JSON {run['json']:.2f} s; "
              f"verdict {run['verdict']}")
    median = statistics.median(run["total"] for run in runs)
    print(f"compare over {counts['otel_traces']:,} spans + {counts['eval_results']:,} eval "
          f"results, --by {args.by}: median {median:.2f} s (target < 3 s)")


if __name__ == "__main__":
    main()
