"""The evaluation worker on a real embedded store: sampling, scoring, idempotence, the loop."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from canarytrace import attributes as A
from canarytrace.collector.evaluation_loop import EvaluationLoop, loop_from_settings
from canarytrace.evaluators.base import JUDGE_ERROR, EvalResult, Evaluator, SpanRecord
from canarytrace.evaluators.judges import OpenAICompatibleJudge
from canarytrace.evaluators.pairwise import PairwiseJudge
from canarytrace.evaluators.registry import default_registry
from canarytrace.evaluators.sampling import SamplingRule
from canarytrace.evaluators.sources import StoreSource, Window
from canarytrace.evaluators.worker import EvaluationRun, create_evaluators
from canarytrace.store.client import Store
from canarytrace.store.timestamps import format_ns
from tests.evaluators.judge_server import judge_server

PERSON = {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
          "required": ["name", "age"]}
LOWERCASE_SHORT = [{"id": "change_case:english_lowercase", "kwargs": {}},
                   {"id": "length_constraints:number_words",
                    "kwargs": {"relation": "less than", "num_words": 20}}]
LOOKUP = [{"name": "lookup_invoice", "arguments": {"invoice_id": "INV-7"}}]
RULE_BASED = ("json_validation", "instruction_adherence", "tool_selection")


# --- building stored spans -------------------------------------------------------------------

class Spans:
    """Rows for ``Store.insert_spans``, shaped as the collector writes them."""

    def __init__(self, start_ns: int | None = None) -> None:
        self.clock = start_ns or time.time_ns() - 600 * 10**9
        self.counter = 0

    def next_ids(self) -> tuple[str, str]:
        self.counter += 1
        return f"{self.counter:032x}", f"{self.counter:016x}"

    def row(self, attributes: dict[str, str], *, trace_id: str | None = None,
            parent: str = "", project: str = "default", name: str = "chat") -> dict:
        new_trace, span_id = self.next_ids()
        self.clock += 1_000_000
        return {"Timestamp": format_ns(self.clock), "TraceId": trace_id or new_trace,
                "SpanId": span_id, "ParentSpanId": parent, "TraceState": "",
                "SpanName": name, "SpanKind": "Client", "ServiceName": "shop",
                "ResourceAttributes": {A.SERVICE_NAME: "shop", A.CANARY_PROJECT: project},
                "ScopeName": "canarytrace", "ScopeVersion": "0.1.0",
                "SpanAttributes": attributes, "Duration": 1000, "StatusCode": "Unset",
                "StatusMessage": ""}

    def llm(self, output: str | None = None, *, tool: tuple[str, dict] | None = None,
            expect: dict | None = None, labels: dict | None = None, **kwargs) -> dict:
        parts = [{"type": "text", "content": output}] if output is not None else []
        if tool:
            parts.append({"type": "tool_call", "name": tool[0], "arguments": tool[1]})
        attributes = {A.GEN_AI_OPERATION_NAME: A.OPERATION_CHAT,
                      A.GEN_AI_REQUEST_MODEL: "llama-base", A.CANARY_ROUTE: "billing",
                      A.GEN_AI_INPUT_MESSAGES: json.dumps(
                          [{"role": "user", "parts": [{"type": "text", "content": "Q?"}]}]),
                      A.GEN_AI_OUTPUT_MESSAGES: json.dumps([{"role": "assistant",
                                                             "parts": parts}])}
        attributes.update({k: json.dumps(v) for k, v in (expect or {}).items()})
        attributes.update(labels or {})
        return self.row(attributes, **kwargs)


@pytest.fixture
def store(tmp_path):
    store = Store.from_url(f"chdb://{tmp_path / 'db'}")
    store.migrate()
    yield store
    store.close()


def rule_based():
    return [default_registry().create(name) for name in RULE_BASED]


def last_hour() -> Window:
    return Window(datetime.now(UTC) - timedelta(hours=1))


def results(store: Store, final: bool = True) -> list[dict]:
    table = store.table("eval_results") + (" FINAL" if final else "")
    return store.query(f"SELECT * FROM {table} ORDER BY SpanId, Evaluator")


def by_span(store: Store) -> dict[tuple[str, str], dict]:
    return {(row["SpanId"], row["Evaluator"]): row for row in results(store)}


# --- sampling ------------------------------------------------------------------------------

def arm(pair: int, variant: str, route: str = "billing", cohort: str = "") -> SpanRecord:
    # Both arms in different traces: only the pair id can keep them together.
    return SpanRecord(trace_id=f"{pair * 2 + (variant == 'base'):032x}", span_id="1" * 16,
                      attributes={}, pair_id=f"pair-{pair}", variant=variant, route=route,
                      cohort=cohort)


def test_sampling_takes_a_mirrored_pair_whole_or_not_at_all():
    rule = SamplingRule(rate=0.3)
    decisions = [(rule.selects(arm(i, "base")), rule.selects(arm(i, "candidate")))
                 for i in range(4000)]
    assert all(base == candidate for base, candidate in decisions)


def test_sampling_rate_is_honoured_per_route_and_cohort():
    rule = SamplingRule.parse(0.1, ["route=billing:0.5", "cohort=eu:0.9"])
    def share(**labels):
        return sum(rule.selects(arm(i, "base", **labels)) for i in range(6000)) / 6000
    # 6000 draws: one standard deviation is at most 0.0065, so 0.03 is over 4.5 sigma.
    assert share(route="search") == pytest.approx(0.1, abs=0.03)
    assert share(route="billing") == pytest.approx(0.5, abs=0.03)
    assert share(route="billing", cohort="eu") == pytest.approx(0.9, abs=0.03)


def test_sampling_is_deterministic_across_runs():
    first = [SamplingRule(rate=0.25).selects(arm(i, "base")) for i in range(2000)]
    second = [SamplingRule(rate=0.25).selects(arm(i, "base")) for i in range(2000)]
    assert first == second
    assert 0 < sum(first) < 2000


@pytest.mark.parametrize("override", ["route=billing", "team=x:0.5", "route=billing:lots",
                                      "cohort=eu:1.5", "route=:0.5"])
def test_bad_sampling_override_is_refused_with_its_text(override):
    with pytest.raises(ValueError, match="bad sampling override"):
        SamplingRule.parse(1.0, [override])


# --- scoring stored spans ---------------------------------------------------------------------

def test_rule_based_evaluators_score_stored_spans_with_their_slicing_columns(store):
    spans = Spans()
    labels = {A.CANARY_VARIANT: A.VARIANT_CANDIDATE, A.CANARY_COHORT: "eu",
              A.CANARY_PAIR_ID: "p-1"}
    rows = [
        spans.llm('{"name": "Ada", "age": 36}', expect={A.CANARY_EXPECT_JSON_SCHEMA: PERSON},
                  labels=labels),
        spans.llm('{"name": "Ada"}', expect={A.CANARY_EXPECT_JSON_SCHEMA: PERSON}),
        spans.llm("sure, here is a short lowercase reply",
                  expect={A.CANARY_EXPECT_INSTRUCTIONS: LOWERCASE_SHORT}),
        spans.llm("I SHOUT", expect={A.CANARY_EXPECT_INSTRUCTIONS: LOWERCASE_SHORT}),
        spans.llm(tool=("lookup_invoice", {"invoice_id": "INV-7"}),
                  expect={A.CANARY_EXPECT_TOOLS: LOOKUP}),
        spans.llm(tool=("refund", {"invoice_id": "INV-7"}), expect={A.CANARY_EXPECT_TOOLS: LOOKUP}),
        spans.llm("no expectations here"),
    ]
    store.insert_spans(rows)
    summary = EvaluationRun(StoreSource(store, "default"), rule_based()).run(last_hour())

    got = by_span(store)
    ids = [row["SpanId"] for row in rows]
    assert {key: row["Passed"] for key, row in got.items()} == {
        (ids[0], "json_validation"): True, (ids[1], "json_validation"): False,
        (ids[2], "instruction_adherence"): True, (ids[3], "instruction_adherence"): False,
        (ids[4], "tool_selection"): True, (ids[5], "tool_selection"): False,
    }
    assert got[(ids[1], "json_validation")]["Label"] == "schema_error"
    assert got[(ids[5], "tool_selection")]["Label"] == "wrong_func_name"
    first = got[(ids[0], "json_validation")]
    assert (first["Model"], first["Variant"], first["Route"], first["Cohort"], first["PairId"],
            first["ServiceName"], first["TraceId"], first["EvaluatorVersion"]) == (
        "llama-base", "candidate", "billing", "eu", "p-1", "shop", rows[0]["TraceId"], "1")
    assert json.loads(got[(ids[3], "instruction_adherence")]["Details"])["instructions"]
    assert summary.spans_read == summary.spans_sampled == 7
    assert (summary.tallies["json_validation"].passed,
            summary.tallies["json_validation"].failed) == (1, 1)


def test_rerun_skips_scored_spans_and_rescore_replaces_without_duplicates(store):
    spans = Spans()
    store.insert_spans([spans.llm(json.dumps({"name": "A", "age": i}),
                                  expect={A.CANARY_EXPECT_JSON_SCHEMA: PERSON})
                        for i in range(30)])
    source = StoreSource(store, "default")
    first = EvaluationRun(source, rule_based()).run(last_hour())
    again = EvaluationRun(source, rule_based()).run(last_hour())
    assert (first.rows_written, again.rows_written) == (30, 0)
    assert again.tallies["json_validation"].skipped == 30
    assert len(results(store, final=False)) == 30

    before = {row["SpanId"]: row["Timestamp"] for row in results(store)}
    rescored = EvaluationRun(source, rule_based(), rescore=True).run(last_hour())
    assert rescored.rows_written == 30
    after = results(store)
    assert len(after) == 30  # one row per (span, evaluator, version) when read FINAL
    assert all(row["Timestamp"] > before[row["SpanId"]] for row in after)


def test_a_stopped_run_keeps_what_it_scored_and_the_next_run_finishes(store):
    spans = Spans()
    store.insert_spans([spans.llm(json.dumps({"name": "A", "age": i}),
                                  expect={A.CANARY_EXPECT_JSON_SCHEMA: PERSON})
                        for i in range(10)])
    checks = iter([False, False, True])  # page start, first batch, second batch: stop
    stopped = EvaluationRun(StoreSource(store, "default"), rule_based(), batch_size=4,
                            should_stop=lambda: next(checks, True)).run(last_hour())
    assert not stopped.complete and stopped.rows_written == 4 == len(results(store))
    finished = EvaluationRun(StoreSource(store, "default"), rule_based()).run(last_hour())
    assert finished.complete and finished.rows_written == 6 == len(results(store)) - 4


def test_new_evaluator_version_scores_spans_again(store):
    spans = Spans()
    store.insert_spans([spans.llm('{"name": "A", "age": 1}',
                                  expect={A.CANARY_EXPECT_JSON_SCHEMA: PERSON})])
    source = StoreSource(store, "default")
    EvaluationRun(source, rule_based()).run(last_hour())

    class JsonValidationV2(type(rule_based()[0])):
        version = "2"

    summary = EvaluationRun(source, [JsonValidationV2()]).run(last_hour())
    assert summary.rows_written == 1
    assert sorted(row["EvaluatorVersion"] for row in results(store)) == ["1", "2"]


def test_sampled_run_scores_both_arms_of_a_pair_or_neither(store):
    spans = Spans()
    rows = []
    for pair in range(200):
        for variant in (A.VARIANT_BASE, A.VARIANT_CANDIDATE):
            rows.append(spans.llm('{"name": "A", "age": 1}',
                                  expect={A.CANARY_EXPECT_JSON_SCHEMA: PERSON},
                                  labels={A.CANARY_PAIR_ID: f"pair-{pair}",
                                          A.CANARY_VARIANT: variant}))
    store.insert_spans(rows)
    summary = EvaluationRun(StoreSource(store, "default"), rule_based(),
                            SamplingRule(rate=0.4), page_size=37).run(last_hour())

    scored = {}
    for row in results(store):
        scored.setdefault(row["PairId"], set()).add(row["Variant"])
    assert all(variants == {"base", "candidate"} for variants in scored.values())
    assert 200 * 0.4 - 25 < len(scored) < 200 * 0.4 + 25
    assert summary.spans_sampled == 2 * len(scored)
    rerun = EvaluationRun(StoreSource(store, "default"), rule_based(),
                          SamplingRule(rate=0.4), page_size=37).run(last_hour())
    assert rerun.spans_sampled == summary.spans_sampled and rerun.rows_written == 0


def test_agent_run_is_scored_with_its_trace(store):
    spans = Spans()
    agent = spans.row({A.GEN_AI_OPERATION_NAME: A.OPERATION_INVOKE_AGENT,
                       A.GEN_AI_AGENT_NAME: "support",
                       A.CANARY_EXPECT_TOOLS: json.dumps(LOOKUP)}, name="invoke_agent support")
    trace = agent["TraceId"]
    step = spans.row({A.AGENT_TRAJECTORY_STEP: "0", A.AGENT_TRAJECTORY_STEP_KIND: "act"},
                     trace_id=trace, parent=agent["SpanId"], name="step act")
    tool = spans.row({A.GEN_AI_OPERATION_NAME: A.OPERATION_EXECUTE_TOOL,
                      A.GEN_AI_TOOL_NAME: "lookup_invoice",
                      A.GEN_AI_TOOL_CALL_ARGUMENTS: json.dumps({"invoice_id": "INV-7"})},
                     trace_id=trace, parent=step["SpanId"], name="execute_tool lookup_invoice")
    store.insert_spans([agent, step, tool])
    EvaluationRun(StoreSource(store, "default"), rule_based()).run(last_hour())

    row = by_span(store)[(agent["SpanId"], "tool_selection")]
    # Only the trace holds the tool call: without it the verdict would be "missing_call".
    assert (row["Label"], row["Passed"]) == ("correct", True)
    assert json.loads(row["Details"])["called"] == ["lookup_invoice"]


def test_pairwise_result_lands_on_the_candidate_span_even_across_pages(store):
    spans = Spans()
    rows = []
    for pair, (base, candidate) in enumerate([("Sydney", "CORRECT: Canberra"),
                                              ("CORRECT: Canberra", "Sydney"),
                                              ("CORRECT: Canberra", "CORRECT: Canberra")]):
        for variant, answer in ((A.VARIANT_BASE, base), (A.VARIANT_CANDIDATE, candidate)):
            rows.append(spans.llm(answer, labels={A.CANARY_PAIR_ID: f"pair-{pair}",
                                                  A.CANARY_VARIANT: variant}))
    store.insert_spans(rows)
    with judge_server() as server:
        pairwise = PairwiseJudge(OpenAICompatibleJudge(server.base_url, "grader"))
        # Page size 1: every base arm is on another page than its candidate.
        EvaluationRun(StoreSource(store, "default"), [pairwise], page_size=1).run(last_hour())

    got = results(store)
    assert {row["Variant"] for row in got} == {"candidate"}
    assert {row["PairId"]: row["Label"] for row in got} == {
        "pair-0": "win", "pair-1": "loss", "pair-2": "tie"}


class FailsOnShouting(Evaluator):
    """A plug-in evaluator with a bug: it raises on upper-case output."""

    name = "fails_on_shouting"

    def evaluate(self, span: SpanRecord) -> EvalResult:
        if span.output_text.isupper():
            raise RuntimeError("cannot handle shouting")
        return EvalResult(1.0, True, "ok")


class FlakyJudge(Evaluator):
    """A judge that is down for its first run and answers after that."""

    name = "flaky_judge"

    def __init__(self, down: bool) -> None:
        self.down = down

    def evaluate(self, span: SpanRecord) -> EvalResult:
        if self.down:
            return EvalResult(None, None, JUDGE_ERROR, "the judge failed: timed out")
        return EvalResult(1.0, True, "completed")


def test_spans_the_judge_could_not_score_are_scored_again_on_the_next_run(store):
    spans = Spans()
    store.insert_spans([spans.llm("an answer") for _ in range(3)])
    source = StoreSource(store, "default")
    outage = EvaluationRun(source, [FlakyJudge(down=True)]).run(last_hour())
    assert outage.rows_written == 3
    assert {row["Label"] for row in results(store)} == {JUDGE_ERROR}

    recovered = EvaluationRun(source, [FlakyJudge(down=False)]).run(last_hour())
    assert recovered.rows_written == 3
    assert [row["Label"] for row in results(store)] == ["completed"] * 3
    assert EvaluationRun(source, [FlakyJudge(down=False)]).run(last_hour()).rows_written == 0


def test_an_evaluator_that_raises_costs_only_the_spans_it_failed_on(store):
    spans = Spans()
    rows = [spans.llm(text) for text in ("calm", "LOUD", "quiet", "still calm")]
    store.insert_spans(rows)
    summary = EvaluationRun(StoreSource(store, "default"), [FailsOnShouting()]).run(last_hour())

    assert summary.tallies["fails_on_shouting"].errors == 1
    assert "cannot handle shouting" in summary.errors[0]
    assert sorted(r["SpanId"] for r in results(store)) == sorted(
        r["SpanId"] for r in rows if r is not rows[1])


def test_projects_are_evaluated_separately(store):
    spans = Spans()
    store.insert_spans([spans.llm('{"name": "A"}', expect={A.CANARY_EXPECT_JSON_SCHEMA: PERSON},
                                  project=project) for project in ("shop", "bank", "bank")])
    assert StoreSource.projects(store) == ["bank", "shop"]
    EvaluationRun(StoreSource(store, "bank"), rule_based()).run(last_hour())
    assert {row["Project"] for row in results(store)} == {"bank"}
    assert len(results(store)) == 2


def test_default_evaluator_set_skips_unconfigured_ones_and_says_why(monkeypatch):
    for name in ("CANARYTRACE_JUDGE_URL", "CANARYTRACE_JUDGE_MODEL_PATH",
                 "CANARYTRACE_REWARD_MODEL"):
        monkeypatch.delenv(name, raising=False)
    evaluators, left_out = create_evaluators()
    assert set(RULE_BASED) <= {e.name for e in evaluators}
    assert "judge" in left_out["pairwise"]
    assert "CANARYTRACE_REWARD_MODEL" in left_out["reward_score"]


# --- the background loop of `canarytrace serve` -----------------------------------------------

def wait_for(condition, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("timed out waiting")


def test_background_loop_scores_new_spans_and_survives_a_failing_pass(store):
    spans = Spans(start_ns=time.time_ns() - 30 * 10**9)
    store.insert_spans([spans.llm('{"name": "A", "age": 1}',
                                  expect={A.CANARY_EXPECT_JSON_SCHEMA: PERSON})])
    loop = EvaluationLoop(store, interval_s=0.2, grace_s=60, settle_s=0,
                          evaluators=list(RULE_BASED))
    loop.start()
    try:
        wait_for(lambda: len(results(store)) == 1)

        table = store.table("eval_results")
        store.client.command(f"RENAME TABLE {table} TO {table}_away")
        passes = loop.passes
        wait_for(lambda: loop.last_error is not None)
        assert "eval_results" in loop.last_error
        spans.clock = time.time_ns()
        store.insert_spans([spans.llm('{"name": "B"}',
                                      expect={A.CANARY_EXPECT_JSON_SCHEMA: PERSON})])
        store.client.command(f"RENAME TABLE {table}_away TO {table}")

        rows = wait_for(lambda: len(results(store)) == 2 and results(store))
        assert [row["Passed"] for row in rows] == [True, False]
        wait_for(lambda: loop.passes > passes and loop.last_error is None)  # that pass ends
    finally:
        loop.stop()
    assert not loop.alive


def test_serve_settings_configure_the_loop(store):
    settings = SimpleNamespace(
        eval_enabled=True, eval_interval_s=5.0, eval_grace_s=60.0, eval_settle_s=1.0,
        eval_lookback_s=120.0, eval_evaluators="json_validation, tool_selection",
        eval_sample_rate=0.2, eval_sample="route=billing:0.5, cohort=eu:1")
    loop = loop_from_settings(store, settings)
    assert [e.name for e in loop.evaluators] == ["json_validation", "tool_selection"]
    assert loop.rule == SamplingRule(0.2, {"billing": 0.5}, {"eu": 1.0})
    assert time.time_ns() - loop.watermark_ns == pytest.approx(120e9, rel=0.05)
    assert loop_from_settings(store, SimpleNamespace(eval_enabled=False)) is None
    with pytest.raises(ValueError, match="bad sampling override"):
        loop_from_settings(store, SimpleNamespace(**{**vars(settings), "eval_sample": "eu:1"}))
    with pytest.raises(ValueError, match="unknown evaluator 'nope'"):
        loop_from_settings(store, SimpleNamespace(**{**vars(settings), "eval_evaluators": "nope"}))
