"""What an evaluation run asks of the store, on a real embedded store and a live collector:
a few queries per page whatever the number of spans or pairs, pages that read about the
same whatever their place in the window, copies of retried inserts read once, and the
collector's bulk routes giving the same results as the store."""

from __future__ import annotations

import json
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from canarytrace import attributes as A
from canarytrace.evaluators.judges import OpenAICompatibleJudge
from canarytrace.evaluators.pairwise import PairwiseJudge
from canarytrace.evaluators.registry import default_registry
from canarytrace.evaluators.sources import SPAN_COLUMNS, CollectorSource, StoreSource, Window
from canarytrace.evaluators.worker import EvaluationRun
from canarytrace.store import scan
from canarytrace.store.client import Store
from canarytrace.store.schema import quote
from canarytrace.store.timestamps import format_ns
from tests.evaluators.judge_server import judge_server
from tests.support.collector import running_collector

PERSON = {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}}


def mirrored_rows(requests: int, start_ns: int | None = None) -> list[dict]:
    """Both arms of mirrored requests, as the SDK names them (``chat <model>``): the base
    and candidate spans sit in different parts of the table's key."""
    start = start_ns or time.time_ns() - 600 * 10**9
    rows = []
    for r in range(requests):
        for arm, (variant, answer) in enumerate(((A.VARIANT_BASE, "Sydney"),
                                                 (A.VARIANT_CANDIDATE, "CORRECT: Canberra"))):
            model = f"llama-{variant}"
            output = json.dumps({"name": answer}) if r % 2 else answer
            attributes = {A.GEN_AI_OPERATION_NAME: A.OPERATION_CHAT,
                          A.GEN_AI_REQUEST_MODEL: model, A.CANARY_VARIANT: variant,
                          A.CANARY_PAIR_ID: f"req-{r}",
                          A.CANARY_EXPECT_JSON_SCHEMA: json.dumps(PERSON),
                          A.GEN_AI_INPUT_MESSAGES: json.dumps(
                              [{"role": "user", "parts": [{"type": "text",
                                                           "content": "Capital?"}]}]),
                          A.GEN_AI_OUTPUT_MESSAGES: json.dumps(
                              [{"role": "assistant", "parts": [{"type": "text",
                                                                "content": output}]}])}
            rows.append({"Timestamp": format_ns(start + r * 10**7 + arm * 10**6),
                         "TraceId": f"{r + 1:032x}", "SpanId": f"{2 * r + arm + 1:016x}",
                         "ParentSpanId": "", "TraceState": "", "SpanName": f"chat {model}",
                         "SpanKind": "Client", "ServiceName": "geo", "ResourceAttributes": {},
                         "ScopeName": "canarytrace", "ScopeVersion": "0.1.0",
                         "SpanAttributes": attributes, "Duration": 1000, "StatusCode": "Unset",
                         "StatusMessage": ""})
    return rows


class CountingClient:
    """Counts every call a Store makes on its (real) clickhouse-connect client."""

    METHODS = ("query", "raw_query", "raw_insert", "insert", "command")

    def __init__(self, store: Store) -> None:
        self.calls: Counter[str] = Counter()
        for method in self.METHODS:
            setattr(store.client, method, self._counted(method, getattr(store.client, method)))

    def _counted(self, method, original):
        def call(*args, **kwargs):
            self.calls[method] += 1
            return original(*args, **kwargs)
        return call

    @property
    def total(self) -> int:
        return sum(self.calls.values())


@pytest.fixture
def store(tmp_path):
    store = Store.from_url(f"chdb://{tmp_path / 'db'}")
    store.migrate()
    yield store
    store.close()


def window() -> Window:
    return Window(datetime.now(UTC) - timedelta(hours=1))


def evaluators(server) -> list:
    return [default_registry().create("json_validation"),
            PairwiseJudge(OpenAICompatibleJudge(server.base_url, "grader"))]


def results(store: Store) -> dict[tuple[str, str], str]:
    rows = store.query(f"SELECT SpanId, Evaluator, Label FROM {store.table('eval_results')} "
                       "FINAL")
    return {(row["SpanId"], row["Evaluator"]): row["Label"] for row in rows}


# --- queries per page, not per span --------------------------------------------------------------

@pytest.mark.parametrize("requests", [60, 240])
def test_a_run_issues_a_few_queries_per_page_whatever_the_spans_and_pairs(store, requests):
    store.insert_spans(mirrored_rows(requests))
    counting = CountingClient(store)
    with judge_server() as server:
        # 40 spans a page: every candidate's base arm is on another page (key order).
        summary = EvaluationRun(StoreSource(store, "default"), evaluators(server),
                                page_size=40).run(window())
    pages = 2 * requests // 40
    assert summary.spans_read == 2 * requests
    # Per page: the page, one partner lookup, one already-scored lookup, one insert.
    assert counting.total <= 4 * pages + 1
    labels = results(store)
    assert sum(evaluator == "pairwise" for _, evaluator in labels) == requests
    assert {label for (_, evaluator), label in labels.items() if evaluator == "pairwise"} == {
        "win"}


def test_pages_read_about_as_much_wherever_they_are_in_the_window(store):
    """Pages follow the table's key: each reads a few granules, not the whole window."""
    spans = 100_000
    store.client.command(
        f"INSERT INTO {store.table('otel_traces')} (Timestamp, TraceId, SpanId, SpanName, "
        "ServiceName, SpanAttributes) "
        f"SELECT fromUnixTimestamp64Nano(toInt64({time.time_ns() - 600 * 10**9} + "
        "number * 1000000)), leftPad(lower(hex(number + 1)), 32, '0'), "
        "leftPad(lower(hex(number + 1)), 16, '0'), if(number % 2 = 0, 'chat a', 'chat b'), "
        f"concat('svc-', toString(number % 7)), map({quote(A.GEN_AI_OPERATION_NAME)}, "
        f"{quote(A.OPERATION_CHAT)}, {quote(A.CANARY_PAIR_ID)}, toString(intDiv(number, 2))) "
        f"FROM numbers({spans})")
    reads, cursor, seen = [], None, 0
    reader = scan.SpanScan(store, "default")
    while True:
        before = selected_rows(store)
        page = reader.page(None, None, cursor, 2000)
        reads.append(selected_rows(store) - before)
        seen += len(page.lines)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == spans
    # Re-sorting the window would read all 100,000 rows for every page.
    assert max(reads) < spans / 2
    assert sum(reads) < 15 * spans


def selected_rows(store: Store) -> int:
    rows = store.client.query("SELECT value FROM system.events WHERE event = 'SelectedRows'")
    return int(rows.result_rows[0][0]) if rows.result_rows else 0


def test_copies_left_by_a_retried_insert_are_scored_once(store):
    rows = mirrored_rows(30)
    store.insert_spans(rows)
    store.insert_spans(rows[:25])  # a retry that ClickHouse has not merged away yet
    summary = EvaluationRun(StoreSource(store, "default"),
                            [default_registry().create("json_validation")],
                            page_size=7).run(window())
    assert summary.spans_read == 60 and summary.rows_written == 60


def test_agent_traces_are_read_once_per_page(store):
    rows = []
    for i in range(30):
        trace = f"{i + 1:032x}"
        rows.append({"Timestamp": format_ns(time.time_ns() - 300 * 10**9 + i * 10**6),
                     "TraceId": trace, "SpanId": f"{2 * i + 1:016x}", "SpanName": "invoke_agent",
                     "ServiceName": "bot", "SpanAttributes": {
                         A.GEN_AI_OPERATION_NAME: A.OPERATION_INVOKE_AGENT,
                         A.CANARY_EXPECT_TOOLS: json.dumps([{"name": "lookup"}])}})
        rows.append({"Timestamp": format_ns(time.time_ns() - 300 * 10**9 + i * 10**6 + 1000),
                     "TraceId": trace, "SpanId": f"{2 * i + 2:016x}",
                     "ParentSpanId": f"{2 * i + 1:016x}", "SpanName": "execute_tool lookup",
                     "ServiceName": "bot", "SpanAttributes": {
                         A.GEN_AI_OPERATION_NAME: A.OPERATION_EXECUTE_TOOL,
                         A.GEN_AI_TOOL_NAME: "lookup" if i % 3 else "refund"}})
    store.insert_spans(rows)
    counting = CountingClient(store)
    EvaluationRun(StoreSource(store, "default"), [default_registry().create("tool_selection")],
                  page_size=10).run(window())
    assert counting.calls["raw_query"] <= 3 * 2 + 1  # per page: the page and its traces
    labels = results(store)
    assert sorted(labels.values()).count("correct") == 20


# --- through a live collector --------------------------------------------------------------------

def test_evaluate_through_the_collector_reads_compact_pages_and_writes_the_same(tmp_path):
    rows = mirrored_rows(60)
    store = Store.from_url(f"chdb://{tmp_path / 'db'}")
    store.migrate()
    store.insert_spans(rows)
    EvaluationRun(StoreSource(store, "default"),
                  [default_registry().create("json_validation")]).run(window())
    direct = results(store)
    store.client.command(f"TRUNCATE TABLE {store.table('eval_results')}")
    store.close()

    with running_collector(tmp_path) as collector:
        source = CollectorSource(collector.url)
        requests: Counter[str] = Counter()
        source.client.event_hooks["request"] = [lambda r: requests.update([r.url.path])]
        with judge_server() as server:
            summary = EvaluationRun(source, evaluators(server), page_size=40).run(window())
        assert summary.spans_read == 120
        assert requests == {"/api/evaluation/spans": 4, "/api/evaluation/context": 3,
                            "/api/evaluation/results": 3}

        page = httpx.get(f"{collector.url}/api/evaluation/spans", params={"limit": 5}).json()
        assert tuple(page["columns"]) == SPAN_COLUMNS == scan.COLUMN_NAMES
        assert len(page["spans"]) == 5 and page["next_cursor"]
        refused = [
            httpx.get(f"{collector.url}/api/evaluation/spans", params={"cursor": "bogus"}),
            httpx.post(f"{collector.url}/api/evaluation/results",
                       json={"columns": ["SpanId", "Evaluator"], "rows": [["xyz", "e"]]}),
            httpx.post(f"{collector.url}/api/evaluation/results",
                       json={"columns": ["SpanId", "Nope"], "rows": [["ab" * 8, "e"]]}),
            httpx.post(f"{collector.url}/api/evaluation/context",
                       json={"since_ns": 5, "until_ns": 1}),
        ]
        assert [r.status_code for r in refused] == [400, 422, 422, 400]
    store = Store.from_url(f"chdb://{tmp_path / 'db'}")
    through = results(store)
    store.close()
    assert {k: v for k, v in through.items() if k[1] == "json_validation"} == direct
    assert sum(evaluator == "pairwise" for _, evaluator in through) == 60
