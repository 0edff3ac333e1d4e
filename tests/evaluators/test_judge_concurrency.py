"""The HTTP judge at production rates, against a real local server with latency and a rate
limit: bounded concurrency, 429s retried (never stored as failures), budgets kept, a dead
judge leaving results the next run scores again."""

from __future__ import annotations

import json
import socket
import time
from datetime import UTC, datetime, timedelta

import pytest

from canarytrace import attributes as A
from canarytrace.evaluators.base import JUDGE_ERROR
from canarytrace.evaluators.judges import OpenAICompatibleJudge, judge_from_env
from canarytrace.evaluators.pairwise import PairwiseJudge
from canarytrace.evaluators.sources import StoreSource, Window
from canarytrace.evaluators.task_completion import TaskCompletion
from canarytrace.evaluators.worker import EvaluationRun
from canarytrace.store.client import Store
from canarytrace.store.timestamps import format_ns
from tests.evaluators.judge_server import judge_server
from tests.evaluators.span_builders import llm_span

QUESTION = "What is the capital of Australia?"


def chat(answer: str) -> list[dict]:
    return [{"role": "user", "content": f"Task:\nClose it.\n\nAnswer to grade:\n{answer}"}]


def dead_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


@pytest.fixture
def store(tmp_path):
    store = Store.from_url(f"chdb://{tmp_path / 'db'}")
    store.migrate()
    yield store
    store.close()


def task_rows(count: int) -> list[dict]:
    """Stored LLM spans with a task for the judge; half of the answers say "done"."""
    start = time.time_ns() - 600 * 10**9
    rows = []
    for i in range(count):
        answer = "I have done it." if i % 2 else "I could not find it."
        attributes = {A.GEN_AI_OPERATION_NAME: A.OPERATION_CHAT, A.CANARY_TASK: "Close it.",
                      A.GEN_AI_REQUEST_MODEL: "llama",
                      A.GEN_AI_OUTPUT_MESSAGES: json.dumps(
                          [{"role": "assistant", "parts": [{"type": "text",
                                                            "content": answer}]}])}
        rows.append({"Timestamp": format_ns(start + i * 10**6), "TraceId": f"{i + 1:032x}",
                     "SpanId": f"{i + 1:016x}", "ParentSpanId": "", "TraceState": "",
                     "SpanName": "chat llama", "SpanKind": "Client", "ServiceName": "shop",
                     "ResourceAttributes": {}, "ScopeName": "canarytrace",
                     "ScopeVersion": "0.1.0", "SpanAttributes": attributes, "Duration": 1000,
                     "StatusCode": "Unset", "StatusMessage": ""})
    return rows


def labels(store: Store) -> list[str]:
    return [row["Label"] for row in store.query(
        f"SELECT Label FROM {store.table('eval_results')} FINAL ORDER BY SpanId")]


def run(store: Store, judge) -> None:
    EvaluationRun(StoreSource(store, "default"), [TaskCompletion(judge)]).run(
        Window(datetime.now(UTC) - timedelta(hours=1)))


# --- concurrency ---------------------------------------------------------------------------

def test_calls_run_concurrently_but_never_more_than_the_limit():
    with judge_server(latency_s=0.2) as server:
        judge = OpenAICompatibleJudge(server.base_url, "grader", concurrency=4)
        replies = judge.complete_each([chat("done" if i % 2 else "no") for i in range(24)])
        assert server.max_in_flight == 4
    assert [r.endswith("PASS") for r in replies] == [i % 2 == 1 for i in range(24)]


def test_the_environment_sets_the_concurrency_every_judge_evaluator_shares(monkeypatch):
    with judge_server(latency_s=0.2) as server:
        environ = {"CANARYTRACE_JUDGE_URL": server.base_url, "CANARYTRACE_JUDGE_MODEL": "grader",
                   "CANARYTRACE_JUDGE_CONCURRENCY": "3"}
        judge = judge_from_env(environ)
        assert judge is judge_from_env(dict(environ))  # one client, one limit, one budget
        spans = [llm_span(f"done {i}", question="Close it.", expect={A.CANARY_TASK: "Close it."})
                 for i in range(12)]
        evaluator = TaskCompletion(judge)
        results = evaluator.evaluate_batch(spans)
        assert server.max_in_flight == 3
        assert {r.label for r in results} == {"completed"}
        assert evaluator.preferred_batch_size() == 24  # eight waves of three calls


def test_pairwise_sends_both_position_swapped_calls_at_once():
    base = llm_span("Sydney", question=QUESTION, pair_id="p", variant=A.VARIANT_BASE)
    candidate = llm_span("Canberra. CORRECT", question=QUESTION, pair_id="p",
                         variant=A.VARIANT_CANDIDATE, trace_spans=(base,))
    with judge_server(latency_s=0.3) as server:
        result = PairwiseJudge(OpenAICompatibleJudge(server.base_url, "grader")).evaluate(
            candidate)
        assert server.max_in_flight == 2 and len(server.requests) == 2
    assert result.label == "win"


# --- rate limits -----------------------------------------------------------------------------

def test_rate_limited_calls_are_retried_and_never_stored_as_failures(store):
    store.insert_spans(task_rows(30))
    with judge_server(rate_limit=10) as server:
        judge = OpenAICompatibleJudge(server.base_url, "grader", concurrency=8)
        run(store, judge)
        assert server.rejected > 0  # the limit was hit: 429s were answered ...
        assert len(server.accepted_at) == 30  # ... and every call got through in the end
    assert judge.retries == server.rejected
    assert sorted(labels(store)) == ["completed"] * 15 + ["not_completed"] * 15


def test_a_configured_request_budget_keeps_under_the_providers_limit(store):
    store.insert_spans(task_rows(20))
    with judge_server(rate_limit=10) as server:
        judge = OpenAICompatibleJudge(server.base_url, "grader", concurrency=8,
                                      requests_per_minute=480)  # 8/s against a 10/s limit
        run(store, judge)
        assert server.rejected == 0
        assert len(server.accepted_at) == 20
    assert JUDGE_ERROR not in labels(store)


# --- a judge that is down ----------------------------------------------------------------------

def test_a_dead_judge_leaves_judge_errors_that_the_next_run_scores(store):
    store.insert_spans(task_rows(10))
    run(store, OpenAICompatibleJudge(dead_url(), "grader"))
    assert labels(store) == [JUDGE_ERROR] * 10

    with judge_server() as server:
        run(store, OpenAICompatibleJudge(server.base_url, "grader"))
    assert sorted(labels(store)) == ["completed"] * 5 + ["not_completed"] * 5


def test_a_judge_that_keeps_answering_503_is_given_up_on_after_its_retries():
    with judge_server() as server:
        judge = OpenAICompatibleJudge(server.base_url, "unavailable", concurrency=2,
                                      max_retries=1)
        replies = judge.complete_each([chat(str(i)) for i in range(40)])
        tries = len(server.requests)
    assert all(isinstance(r, Exception) for r in replies)
    assert "HTTP 503 2 times" in str(replies[0])
    # Ten calls in a row use up their two tries and open the breaker: the rest fail fast,
    # where trying every call would have sent 80 requests.
    assert tries <= 2 * (10 + 2)
    assert "not called" in str(replies[-1])
