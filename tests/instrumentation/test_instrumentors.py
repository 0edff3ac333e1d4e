"""Real GenAI instrumentors, as a user runs them, scored by canarytrace with no extra code.

Each app (``tests/instrumentation/app.py``) calls only ``ct.init``, ``ct.request``,
``ct.expect`` and one stock instrumentor (OpenLLMetry, the OTel OpenAI instrumentation in
its logs-content and span-content modes, OpenInference, traceAI) around an OpenAI client
talking to a fake OpenAI-compatible server, and exports to a real ``canarytrace serve``.
The tests read what the API returns and what ``canarytrace evaluate`` scores.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from canarytrace import attributes as A
from canarytrace import messages
from tests.collector.conftest import spans_of, wait_for
from tests.instrumentation import fake_openai
from tests.instrumentation.app import CALLS, MODEL
from tests.support.collector import running_collector

ROOT = Path(__file__).resolve().parents[2]
CONTENT_MODE = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
APPS = {  # service -> (instrumentation, extra environment)
    "app-openllmetry": ("openllmetry", {}),
    "app-openai-v2-logs": ("openai-v2", {CONTENT_MODE: "EVENT_ONLY"}),
    "app-openai-v2-spans": ("openai-v2", {CONTENT_MODE: "SPAN_ONLY"}),
    "app-openinference": ("openinference", {}),
    "app-traceai": ("traceai", {}),
}
SNAPSHOT = MODEL + fake_openai.SNAPSHOT_SUFFIX
TOOL_FINISH = {"app-openllmetry": "tool_call"}  # OpenLLMetry writes the GenAI value
NO_FINISH_REASONS = {"app-traceai"}  # traceAI 0.1.10 records none


def request_of(name: str) -> dict:
    """The chat-completions request the app sends for call ``name``."""
    spec = CALLS[name]
    return {"model": MODEL, "messages": [{"role": "system", "content": "Be brief."},
                                         {"role": "user", "content": spec["prompt"]}],
            **({"tools": spec["tools"]} if spec.get("tools") else {})}


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """Every app run once against one collector; yields (collector, answers by service)."""
    with running_collector(tmp_path_factory.mktemp("instrumented")) as collector, \
            fake_openai.FakeOpenAI() as openai_server:
        apps = {service: subprocess.Popen(  # all at once: each mostly waits on imports
            [sys.executable, "-m", "tests.instrumentation.app", instrumentation,
             openai_server.url, collector.url, service], env={**os.environ, **env}, cwd=ROOT,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for service, (instrumentation, env) in APPS.items()}
        answers = {}
        for service, app in apps.items():
            stdout, stderr = app.communicate(timeout=180)
            assert app.returncode == 0, stderr[-3000:]
            answers[service] = json.loads(stdout.strip().splitlines()[-1])
        for service in APPS:  # spans stored, and content events joined to them
            wait_for(lambda s=service: _complete(collector.url, s), 30,
                     f"{service}'s spans with their messages")
        yield collector, answers


def _complete(url: str, service: str) -> list[dict] | None:
    spans = spans_of(url, service=service, llm_only="true")
    done = len(spans) == len(CALLS) and all(
        s["SpanAttributes"].get(A.GEN_AI_OUTPUT_MESSAGES) for s in spans)
    return spans if done else None


def llm_spans(served, service: str) -> dict[str, dict]:
    """The service's LLM spans by the app's call name (its request id)."""
    collector, _ = served
    spans = spans_of(collector.url, service=service, llm_only="true")
    return {s["PairId"].removeprefix("req-"): s for s in spans}


@pytest.fixture(scope="module")
def scores(served):
    """``canarytrace evaluate`` through the running collector, then its eval_results."""
    collector, _ = served
    out = subprocess.run(
        [sys.executable, "-m", "canarytrace.cli", "evaluate", "--since", "1h",
         "--collector", collector.url,
         "--evaluators", "json_validation,instruction_adherence,tool_selection"],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    rows = httpx.get(f"{collector.url}/api/eval_results", params={"limit": 1000},
                     timeout=30).json()["eval_results"]
    return {(r["ServiceName"], r["PairId"].removeprefix("req-"), r["Evaluator"]): r
            for r in rows}


@pytest.mark.parametrize("service", list(APPS))
def test_the_app_works_unchanged(served, service):
    _, answers = served
    assert answers[service]["json"]["text"] == '{"answer": 42}'
    assert answers[service]["stream"]["text"] == "hello there world"
    assert answers[service]["tool"]["tools"] == ["get_weather"]


@pytest.mark.parametrize("service", list(APPS))
def test_request_model_operation_and_tokens(served, service):
    spans = llm_spans(served, service)
    assert set(spans) == set(CALLS)
    for name, span in spans.items():
        assert span["Model"] == MODEL, name  # the request model, never the dated snapshot
        assert span["SpanAttributes"][A.GEN_AI_OPERATION_NAME] == A.OPERATION_CHAT
        assert span["SpanAttributes"][A.GEN_AI_PROVIDER_NAME] == "openai"
        request = request_of(name)
        usage = fake_openai.usage(request, fake_openai.answer(request))
        assert (span["InputTokens"], span["OutputTokens"]) == (
            usage["prompt_tokens"], usage["completion_tokens"]), name
    assert spans["json"]["SpanAttributes"][A.GEN_AI_RESPONSE_MODEL] == SNAPSHOT


@pytest.mark.parametrize("service", list(APPS))
def test_input_and_output_messages(served, service):
    spans = llm_spans(served, service)
    for name in ("json", "not_json", "stream"):
        attributes = spans[name]["SpanAttributes"]
        inputs = messages.loads(attributes[A.GEN_AI_INPUT_MESSAGES])
        assert messages.text_of(inputs, role="user") == CALLS[name]["prompt"], name
        assert messages.text_of(inputs, role="system") == "Be brief."
        outputs = messages.loads(attributes[A.GEN_AI_OUTPUT_MESSAGES])
        assert messages.text_of(outputs) == CALLS[name]["prompt"].removeprefix("say: "), name


@pytest.mark.parametrize("service", list(APPS))
def test_tool_calls(served, service):
    attributes = llm_spans(served, service)["tool"]["SpanAttributes"]
    outputs = messages.loads(attributes[A.GEN_AI_OUTPUT_MESSAGES])
    assert messages.tool_calls_of(outputs) == [{"name": "get_weather",
                                                "arguments": {"city": "Paris"}}]


@pytest.mark.parametrize("service", list(APPS))
def test_finish_reasons(served, service):
    spans = llm_spans(served, service)
    reasons = {name: json.loads(s["SpanAttributes"].get(A.GEN_AI_RESPONSE_FINISH_REASONS)
                                or "null") for name, s in spans.items()}
    if service in NO_FINISH_REASONS:
        assert set(reasons.values()) == {None}
        return
    assert reasons == {"json": ["stop"], "not_json": ["stop"], "stream": ["stop"],
                       "tool": [TOOL_FINISH.get(service, "tool_calls")]}


@pytest.mark.parametrize("service", list(APPS))
def test_scope_is_stamped_on_the_instrumentors_spans(served, service):
    for name, span in llm_spans(served, service).items():
        assert (span["Route"], span["Cohort"]) == (CALLS[name]["route"], CALLS[name]["cohort"])
        stamped = {k for k in span["SpanAttributes"] if k.startswith("canary.expect.")}
        expected = {"json_schema": A.CANARY_EXPECT_JSON_SCHEMA,
                    "instructions": A.CANARY_EXPECT_INSTRUCTIONS, "tools": A.CANARY_EXPECT_TOOLS}
        assert stamped == {expected[k] for k in CALLS[name]["expect"]}, name


@pytest.mark.parametrize("service", list(APPS))
def test_evaluate_scores_the_instrumentors_spans(served, scores, service):
    verdicts = {(call, evaluator): row["Passed"]
                for (svc, call, evaluator), row in scores.items() if svc == service}
    assert verdicts == {
        ("json", "json_validation"): True, ("json", "instruction_adherence"): True,
        ("not_json", "json_validation"): False, ("stream", "instruction_adherence"): True,
        ("tool", "tool_selection"): True}
    assert {scores[(service, "json", "json_validation")]["Model"]} == {MODEL}
    assert scores[(service, "tool", "tool_selection")]["Route"] == "weather"


def test_metrics_and_log_events_reach_their_tables(served):
    """The OTel instrumentation's GenAI metrics and content events are stored, not dropped."""
    collector, _ = served
    collector.stop()
    store = collector.open_store()
    try:
        metrics = store.query(
            "SELECT ServiceName, MetricName, Attributes, Count, Sum "
            f"FROM {store.table('otel_metrics_histogram')} "
            "WHERE MetricName = {m:String}", {"m": A.METRIC_TOKEN_USAGE})
        events = store.query(
            f"SELECT ServiceName, EventName, SpanId FROM {store.table('otel_logs')}")
    finally:
        store.close()
        collector.start()
    used: dict[tuple[str, str], float] = {}
    for r in metrics:  # cumulative histograms: the latest point has the largest sum
        key = (r["ServiceName"], r["Attributes"].get(A.GEN_AI_TOKEN_TYPE, ""))
        used[key] = max(used.get(key, 0.0), r["Sum"])
    usages = {n: fake_openai.usage(request_of(n), fake_openai.answer(request_of(n)))
              for n in CALLS}
    unstreamed = [u for n, u in usages.items() if not CALLS[n].get("stream")]
    for service in ("app-openai-v2-logs", "app-openllmetry"):  # no usage metric on streams
        assert used[(service, A.TOKEN_TYPE_INPUT)] == sum(u["prompt_tokens"] for u in unstreamed)
        assert used[(service, A.TOKEN_TYPE_OUTPUT)] == sum(
            u["completion_tokens"] for u in unstreamed)
    logged = {(r["ServiceName"], r["EventName"]) for r in events}
    assert ("app-openai-v2-logs", A.EVENT_INFERENCE_DETAILS) in logged
    assert all(r["SpanId"] for r in events if r["EventName"] == A.EVENT_INFERENCE_DETAILS)
