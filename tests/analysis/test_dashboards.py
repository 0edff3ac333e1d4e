"""Dashboards: the Grafana dashboard and the built-in page run one set of panel SQL, and
every panel answers with the right rows on realistic canary traffic in a real store."""

from __future__ import annotations

import importlib.util
import json
import re
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from statistics import mean

import pytest

from canarytrace import attributes as A
from canarytrace.dashboards import panels
from canarytrace.store import panel_sql
from canarytrace.store.client import Store
from tests.analysis.dashboard_seed import make_traffic, seed_store

ROOT = Path(__file__).resolve().parents[2]
GRAFANA_JSON = ROOT / "dashboards" / "grafana" / "canarytrace.json"
PLUGIN_MACROS = {"timeFilter", "timeFilter_ms", "dateFilter", "dateTimeFilter", "dt", "fromTime",
                 "toTime", "fromTime_ms", "toTime_ms", "timeInterval", "timeInterval_ms",
                 "interval_s", "conditionalAll"}
NOW = datetime.now(UTC).replace(microsecond=0)
START, END = NOW - timedelta(hours=7), NOW + timedelta(minutes=1)
GRAFANA_INTERVAL_S = 300  # what Grafana picks for a 7 h range on a half-width panel


def load_builder():
    spec = importlib.util.spec_from_file_location("build_grafana",
                                                  ROOT / "dashboards" / "build_grafana.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


GRAFANA = json.loads(GRAFANA_JSON.read_text())
GRAFANA_PANELS = {p["title"]: p for p in GRAFANA["panels"]}
TEMPLATE_VARIABLES = {v["name"] for v in GRAFANA["templating"]["list"]}


def grafana_context(interval_s: int = GRAFANA_INTERVAL_S, **selected) -> panel_sql.QueryContext:
    """What the plugin substitutes: every variable on All unless ``selected`` says otherwise."""
    variables = {name: None for name in ("project", "service", "route", "cohort", "model")}
    variables.update(selected)
    return panel_sql.QueryContext(START, END, interval_s, variables)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    store = Store.from_url(f"chdb://{tmp_path_factory.mktemp('dash')}/db")
    store.migrate()
    yield store
    store.close()


@pytest.fixture(scope="module")
def traffic(store):
    return seed_store(store, make_traffic(project="default", now=NOW))


@pytest.fixture(scope="module")
def intruder(store):
    """Another project's traffic, with names that must never show up in 'default' panels."""
    return seed_store(store, make_traffic(
        project="intruder", requests=40, seed=99, now=NOW, base_model="intruder-base",
        candidate_model="intruder-candidate", routes=("intruder-route",),
        cohorts=("intruder-cohort",), services=("intruder-svc", "intruder-api"),
        evaluators=("intruder_eval",)))


def run_grafana_panel(store: Store, title: str, ctx: panel_sql.QueryContext) -> list[dict]:
    return store.query(panel_sql.expand(GRAFANA_PANELS[title]["targets"][0]["rawSql"], ctx))


# --- one source of SQL -----------------------------------------------------------------

def test_grafana_dashboard_file_is_built_from_the_panel_source():
    built = load_builder().build()
    assert built == GRAFANA, "dashboards/grafana/canarytrace.json is stale: " \
                             "run python dashboards/build_grafana.py"


def test_page_and_grafana_run_the_same_sql():
    dashboard = panels.load_dashboard()
    assert [p.title for p in dashboard.panels] == list(GRAFANA_PANELS)
    for panel in dashboard.panels:
        target = GRAFANA_PANELS[panel.title]["targets"][0]
        assert target["rawSql"] == panel.sql
        assert target["datasource"]["type"] == "grafana-clickhouse-datasource"


@pytest.mark.parametrize("title", list(GRAFANA_PANELS))
def test_grafana_sql_uses_only_plugin_macros_and_dashboard_variables(title):
    sql = GRAFANA_PANELS[title]["targets"][0]["rawSql"]
    assert set(re.findall(r"\$__(\w+)", sql)) <= PLUGIN_MACROS
    used = set(re.findall(r"\$\{(\w+)(?::\w+)?\}|\$(?!__)(\w+)", sql))
    assert {a or b for a, b in used} <= TEMPLATE_VARIABLES
    assert "{{" not in sql, "a build-time placeholder was left in the Grafana SQL"


def test_every_chart_names_its_unit_on_its_axis():
    """The page and Grafana title each chart's y axis with what it counts, in what unit."""
    for panel in panels.load_dashboard().panels:
        if panel.kind == "table":
            continue
        assert panel.axis, f"panel {panel.id} has no axis title"
        assert "(" in panel.axis or " per " in panel.axis, f"{panel.id}: {panel.axis!r}"
        grafana = GRAFANA_PANELS[panel.title]["fieldConfig"]["defaults"]["custom"]
        assert grafana["axisLabel"] == panel.axis


def test_eval_results_are_never_pooled_across_evaluators():
    """Every panel reading eval_results groups by evaluator: a pooled rate can improve while
    a critical evaluator regresses."""
    for panel in panels.load_dashboard().panels:
        if "eval_results" in panel.sql:
            assert re.search(r"GROUP BY[^\n]*\bEvaluator\b", panel.sql), panel.id


def test_grafana_provides_the_filters_service_route_cohort_model():
    for name in ("service", "route", "cohort", "model"):
        variable = next(v for v in GRAFANA["templating"]["list"] if v["name"] == name)
        assert variable["multi"] and variable["includeAll"]
        assert variable["query"]["rawSql"] == variable["definition"]


# --- every panel on realistic traffic ------------------------------------------------------

@pytest.mark.parametrize("title", list(GRAFANA_PANELS))
def test_grafana_panel_returns_rows(store, traffic, intruder, title):
    rows = run_grafana_panel(store, title, grafana_context())
    assert rows, f"panel {title!r} returned no rows"
    narrowed = run_grafana_panel(store, title, grafana_context(
        project=["default"], route=list(traffic.routes[:2]),
        model=[traffic.base_model, traffic.candidate_model]))
    assert narrowed, f"panel {title!r} returned no rows with filters selected"
    if GRAFANA_PANELS[title]["type"] == "timeseries":
        assert list(rows[0])[0] == "time" and isinstance(rows[0]["time"], datetime)


def test_panels_never_show_another_projects_data(store, traffic, intruder):
    for title in GRAFANA_PANELS:
        rows = run_grafana_panel(store, title, grafana_context(project=["default"]))
        assert "intruder" not in json.dumps(rows, default=str), title
        assert not run_grafana_panel(store, title, grafana_context(project=["nobody"])), title


def test_variable_queries_list_what_was_seen(store, traffic, intruder):
    ctx = grafana_context(project=["default"])
    values = {v.name: {next(iter(r.values())) for r in store.query(panel_sql.expand(v.sql, ctx))}
              for v in panels.load_dashboard().variables}
    assert values["service"] == set(traffic.services)
    assert values["route"] == set(traffic.routes)
    assert values["cohort"] == set(traffic.cohorts)
    assert values["model"] == {traffic.base_model, traffic.candidate_model}
    assert values["project"] == {"default", "intruder"}


def test_route_filter_narrows_the_fallback_panel(store, traffic):
    rows = run_grafana_panel(store, "Fallback rate by route", grafana_context(route=["billing"]))
    assert {r["route"] for r in rows} == {"billing"}


# --- the numbers are right -------------------------------------------------------------------

def bucket(ts: float, interval_s: int = GRAFANA_INTERVAL_S) -> int:
    return int(ts // interval_s * interval_s)


def span_time(span: dict) -> float:
    return float(span["Timestamp"])


def epoch(moment: datetime) -> int:
    """Seconds since the epoch; the client returns naive datetimes for a UTC server."""
    return int((moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp())


def by_bucket(rows: list[dict], key: str, value: str) -> dict[tuple[int, str], float]:
    return {(epoch(r["time"]), r[key]): r[value] for r in rows}


def test_pass_rate_per_evaluator_matches_the_eval_results(store, traffic):
    rows = run_grafana_panel(store, "Pass rate per evaluator", grafana_context(project=["default"]))
    got = {r["Evaluator"]: (r["base"], r["candidate"]) for r in rows}
    assert set(got) == set(traffic.evaluators)
    for evaluator in traffic.evaluators:
        for i, variant in enumerate((A.VARIANT_BASE, A.VARIANT_CANDIDATE)):
            scored = [e["Passed"] for e in traffic.evals
                      if e["Evaluator"] == evaluator and e["Variant"] == variant]
            assert got[evaluator][i] == pytest.approx(sum(scored) / len(scored))


def test_mirror_drop_rate_matches_the_spans(store, traffic):
    rows = run_grafana_panel(store, "Mirror drop rate", grafana_context(project=["default"]))
    outcomes = defaultdict(list)
    for span in traffic.spans:
        mirror = span["SpanAttributes"].get(A.CANARY_MIRROR)
        if mirror in (A.MIRROR_SENT, A.MIRROR_DROPPED):
            key = (bucket(span_time(span)), span["SpanAttributes"][A.GEN_AI_REQUEST_MODEL])
            outcomes[key].append(mirror == A.MIRROR_DROPPED)
    expected = {key: mean(dropped) for key, dropped in outcomes.items()}
    assert by_bucket(rows, "Model", "drop_rate") == pytest.approx(expected)
    assert any(rate > 0 for rate in expected.values())


def test_cost_per_trace_prices_tokens_from_the_price_table(store, traffic):
    prices = panels.load_prices()
    rows = run_grafana_panel(store, "Token cost per trace by model",
                             grafana_context(project=["default"]))
    per_trace = defaultdict(lambda: [float("inf"), 0.0])
    for span in traffic.spans:
        attrs = span["SpanAttributes"]
        model = attrs.get(A.GEN_AI_REQUEST_MODEL)
        if not model:
            continue
        price_in, price_out = prices.models.get(model, prices.default)
        entry = per_trace[(span["TraceId"], model)]
        entry[0] = min(entry[0], span_time(span))
        entry[1] += (int(attrs[A.GEN_AI_USAGE_INPUT_TOKENS]) * price_in
                     + int(attrs[A.GEN_AI_USAGE_OUTPUT_TOKENS]) * price_out) / 1e6
    costs = defaultdict(list)
    for (_, model), (started, cost) in per_trace.items():
        costs[(bucket(started), model)].append(cost)
    expected = {key: mean(values) for key, values in costs.items()}
    assert by_bucket(rows, "Model", "cost_usd") == pytest.approx(expected)
    assert all(cost > 0 for cost in expected.values())


def test_thumbs_down_rate_is_per_served_model(store, traffic):
    rows = run_grafana_panel(store, "Thumbs-down rate by served model",
                             grafana_context(project=["default"]))
    served = {}  # the first LLM call that answered: with a fallback, the base
    for span in sorted(traffic.spans, key=lambda s: (s["StatusCode"] == "Error", span_time(s))):
        attrs = span["SpanAttributes"]
        if attrs.get(A.CANARY_ROLE) == A.ROLE_PRIMARY:
            served.setdefault(span["TraceId"], attrs[A.GEN_AI_REQUEST_MODEL])
    votes = defaultdict(list)
    for vote in traffic.feedback:
        votes[(bucket(vote["Timestamp"].timestamp()), served[vote["TraceId"]])].append(
            vote["Score"] < 0)
    expected = {key: mean(down) for key, down in votes.items()}
    assert by_bucket(rows, "Model", "thumbs_down_rate") == pytest.approx(expected)


def test_fallback_rate_is_fallbacks_per_canary_served_request(store, traffic):
    rows = run_grafana_panel(store, "Fallback rate by route", grafana_context(project=["default"]))
    picked, fell_back = defaultdict(int), defaultdict(int)
    for span in traffic.spans:
        attrs = span["SpanAttributes"]
        if attrs.get(A.CANARY_ROLE) != A.ROLE_PRIMARY:
            continue
        key = (bucket(span_time(span)), attrs[A.CANARY_ROUTE])
        picked[key] += attrs[A.CANARY_VARIANT] == A.VARIANT_CANDIDATE
        fell_back[key] += attrs.get(A.CANARY_FALLBACK) == "true"
    expected = {key: fell_back[key] / n for key, n in picked.items() if n}
    assert by_bucket(rows, "route", "fallback_rate") == pytest.approx(expected)
    assert any(rate > 0 for rate in expected.values())


def test_verdict_history_is_newest_first(store, traffic):
    rows = run_grafana_panel(store, "Verdict history", grafana_context(project=["default"]))
    assert [r["Verdict"] for r in rows] == [v["Verdict"] for v in reversed(traffic.verdicts)]
    assert json.loads(rows[0]["Reasons"]) == traffic.verdicts[-1]["Reasons"]


# --- macro expansion, as the ClickHouse plugin does it -----------------------------------------

FROM, TO = datetime.fromtimestamp(1415792726, UTC), datetime.fromtimestamp(1447328726, UTC)


def expand(sql: str, interval_s: int = 20, **variables) -> str:
    return panel_sql.expand(sql, panel_sql.QueryContext(FROM, TO, interval_s, variables))


@pytest.mark.parametrize(("macro", "expected"), [
    ("$__timeFilter(time)", "time >= toDateTime(1415792726) AND time <= toDateTime(1447328726)"),
    ("$__timeFilter_ms(time)", "time >= fromUnixTimestamp64Milli(1415792726000) "
                               "AND time <= fromUnixTimestamp64Milli(1447328726000)"),
    ("$__dateFilter(date)", "date >= toDate('2014-11-12') AND date <= toDate('2015-11-12')"),
    ("$__fromTime", "toDateTime(1415792726)"),
    ("$__toTime", "toDateTime(1447328726)"),
    ("$__fromTime_ms", "fromUnixTimestamp64Milli(1415792726000)"),
    ("$__toTime_ms", "fromUnixTimestamp64Milli(1447328726000)"),
    ("$__interval_s", "20"),
    ("$__timeInterval(column)", "toStartOfInterval(toDateTime(column), INTERVAL 20 second)"),
    ("$__timeInterval_ms(column)",
     "toStartOfInterval(toDateTime64(column, 3), INTERVAL 20000 millisecond)"),
])
def test_macros_expand_like_the_grafana_plugin(macro, expected):
    assert expand(macro) == expected


def test_conditional_all_keeps_the_condition_only_for_a_selection():
    sql = "WHERE $__conditionalAll(Route IN (${route:singlequote}), $route)"
    assert expand(sql, route=None) == "WHERE 1=1"
    assert expand(sql, route=["billing", "it's"]) == "WHERE Route IN ('billing','it\\'s')"


def test_selected_values_are_data_never_macros_or_sql():
    sql = "WHERE $__conditionalAll(Route IN (${route:singlequote}), $route) AND Model != ''"
    values = ["$__timeFilter(a", "$__interval_s", "$__nope"]
    assert expand(sql, route=values) == (
        "WHERE Route IN ('$__timeFilter(a','$__interval_s','$__nope') AND Model != ''")


def test_database_variable_and_unknown_names_are_checked():
    assert expand("FROM ${database}.otel_traces") == "FROM canarytrace.otel_traces"
    with pytest.raises(panel_sql.PanelQueryError, match=r"\$nope"):
        expand("WHERE $__conditionalAll(x IN (${nope:singlequote}), $nope)")
    with pytest.raises(panel_sql.PanelQueryError, match="unknown macro"):
        expand("$__timeGroup(time, 1m)")
    with pytest.raises(panel_sql.PanelQueryError, match="singlequote"):
        expand("WHERE Route = $route", route=["billing"])


def test_price_placeholder_renders_a_transform_over_the_price_table(tmp_path):
    prices = tmp_path / "prices.yaml"
    prices.write_text("default: {input: 1.0, output: 2.0}\n"
                      "models:\n  tuned: {input: 0.5, output: 1.5}\n")
    sql = panels.token_cost_sql(panels.load_prices(prices))
    assert sql == ("(InputTokens * transform(Model, ['tuned'], [0.5], 1.0) "
                   "+ OutputTokens * transform(Model, ['tuned'], [1.5], 2.0)) / 1000000")


# --- the built-in page's API and ct.feedback, on a running collector ---------------------------

@pytest.fixture(scope="module")
def collector(tmp_path_factory):
    """``canarytrace serve`` with two projects' keys, each project's traffic sent over OTLP."""
    from tests.analysis.dashboard_seed import (
        export_spans,
        post_evals_and_verdicts,
        require_dashboard,
        wait_until_stored,
    )
    from tests.support.collector import CollectorProcess

    process = CollectorProcess(tmp_path_factory.mktemp("served"))
    keys = {name: process.create_key(name) for name in ("acme", "umbrella", "live")}
    process.start()
    try:
        require_dashboard(process.url, keys["acme"])
        acme = make_traffic(project="acme", requests=80, now=NOW)
        umbrella = make_traffic(project="umbrella", requests=20, seed=3, now=NOW,
                                base_model="umbrella-base", candidate_model="umbrella-tuned")
        for traffic, key in ((acme, keys["acme"]), (umbrella, keys["umbrella"])):
            export_spans(traffic, process.url, key)
            post_evals_and_verdicts(traffic, process.url, key)
            wait_until_stored(traffic, process.url, key)
        yield process, keys, acme
    finally:
        process.stop()


def get(collector, path: str, key: str | None, **params):
    import httpx

    process, _, _ = collector
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.get(f"{process.url}{path}", params=params, headers=headers, timeout=30)


def wait_for_feedback(collector, key: str, trace_id: str, count: int) -> list[dict]:
    import time

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        rows = get(collector, "/api/feedback", key, trace_id=trace_id).json()["feedback"]
        if len(rows) >= count:
            return rows
        time.sleep(0.1)
    raise AssertionError(f"feedback on {trace_id} not stored")


def test_page_api_serves_every_panel_for_the_callers_project(collector):
    process, keys, acme = collector
    config = get(collector, "/api/dashboard/config", keys["acme"]).json()
    assert [p["id"] for p in config["panels"]] == [p.id for p in panels.load_dashboard().panels]
    since = (NOW - timedelta(hours=7)).isoformat()
    for panel in config["panels"]:
        if panel["id"] == "thumbs_down_rate":
            continue  # no feedback yet; see the ct.feedback test
        body = get(collector, f"/api/dashboard/panels/{panel['id']}", keys["acme"],
                   since=since).json()
        assert body["rows"], panel["id"]
        assert "umbrella" not in json.dumps(body), panel["id"]
    other = get(collector, "/api/dashboard/panels/latency_by_model", keys["umbrella"],
                since=since).json()
    assert {row[1] for row in other["rows"]} == {"umbrella-base", "umbrella-tuned"}


def test_page_api_trace_list_and_trace_view(collector):
    process, keys, acme = collector
    since = (NOW - timedelta(hours=7)).isoformat()
    traces = get(collector, "/api/dashboard/traces", keys["acme"], since=since,
                 limit=1000).json()["traces"]
    assert {t["trace_id"] for t in traces} == set(acme.trace_ids)
    failed = get(collector, "/api/dashboard/traces", keys["acme"], since=since, limit=1000,
                 outcome="eval_failed").json()["traces"]
    assert failed and all(t["evals_failed"] > 0 for t in failed)
    agent_trace = acme.agent_trace_ids[0]
    view = get(collector, f"/api/dashboard/traces/{agent_trace}", keys["acme"]).json()
    kinds = [s["kind"] for s in view["spans"]]
    assert kinds[0] == "agent" and {"step", "tool", "llm"} <= set(kinds)
    steps = [s["step"] for s in view["spans"] if s["kind"] == "step"]
    assert steps == sorted(steps) == list(range(len(steps)))
    tool = next(s for s in view["spans"] if s["kind"] == "tool")["tool"]
    assert tool["name"] == "lookup_invoice" and tool["result"]["status"] == "paid"
    llm = next(s for s in view["spans"] if s["kind"] == "llm")
    assert {e["evaluator"] for e in llm["evals"]} >= set(acme.evaluators)
    assert llm["input_messages"][-1]["role"] == "user" and llm["output_messages"]
    other_project = get(collector, f"/api/dashboard/traces/{agent_trace}", keys["umbrella"])
    assert other_project.status_code == 404


def test_page_api_refuses_bad_requests_clearly(collector):
    _, keys, _ = collector
    assert get(collector, "/api/dashboard/panels/latency_by_model", None).status_code == 401
    bad_range = get(collector, "/api/dashboard/panels/latency_by_model", keys["acme"],
                    since="2030-01-02T00:00:00Z", until="2030-01-01T00:00:00Z")
    assert bad_range.status_code == 400 and "must be before" in bad_range.json()["detail"]
    assert get(collector, "/api/dashboard/panels/nope", keys["acme"]).status_code == 404
    assert get(collector, "/api/dashboard/traces/xyz", keys["acme"]).status_code == 400
    assert get(collector, "/api/dashboard/traces", keys["acme"], outcome="bogus").status_code == 422


def test_page_api_filter_values_only_ever_match_names(collector):
    """A filter value that looks like a macro or SQL selects nothing; it never errors or leaks."""
    _, keys, _ = collector
    since = (NOW - timedelta(hours=7)).isoformat()
    for route in ("$__timeFilter(Route", "$__nope", "billing') OR (1=1", "$__interval_s"):
        for panel in ("latency_by_model", "thumbs_down_rate"):
            response = get(collector, f"/api/dashboard/panels/{panel}", keys["acme"],
                           since=since, route=route)
            assert response.status_code == 200, (route, response.text)
            assert response.json()["rows"] == [], route


def test_feedback_from_the_sdk_reaches_the_thumbs_down_panel(collector):
    import canarytrace as ct
    from canarytrace.feedback import feedback

    process, keys, acme = collector
    ct.init(service_name="feedback-test", endpoint=process.url, api_key=keys["acme"])
    try:
        for vote in acme.feedback:
            assert feedback(trace_id=vote["TraceId"], score=vote["Score"],
                            comment=vote["Comment"]) is True
        served_trace = acme.feedback[0]["TraceId"]
        with ct.llm_call(model=acme.candidate_model, route="billing") as call:
            call.set_output("Your invoice is paid.")
            current = format(call.span.get_span_context().trace_id, "032x")
            assert feedback(score=False, comment="thumbs down on the live request") is True
    finally:
        ct.shutdown()
    stored = wait_for_feedback(collector, keys["acme"], current, 1)
    assert stored[0]["Score"] == -1.0 and stored[0]["Comment"].startswith("thumbs down")
    wait_for_feedback(collector, keys["acme"], served_trace, 1)
    body = get(collector, "/api/dashboard/panels/thumbs_down_rate", keys["acme"],
               since=(NOW - timedelta(hours=7)).isoformat()).json()
    rates = [row[2] for row in body["rows"]]
    assert rates and all(0 <= r <= 1 for r in rates) and any(r > 0 for r in rates)
    assert {row[1] for row in body["rows"]} <= {acme.base_model, acme.candidate_model}


def test_feedback_never_raises_and_says_false_when_not_stored(collector, caplog):
    import canarytrace as ct
    from canarytrace.feedback import feedback

    process, _, acme = collector
    trace_id = acme.trace_ids[0]
    ct.init(service_name="feedback-test", endpoint=process.url, api_key="ct_wrong_key")
    try:
        assert feedback(trace_id=trace_id, score=-1) is False          # 401
        assert feedback(trace_id="not-a-trace", score=1) is False       # bad id
        assert feedback(trace_id=trace_id, score=float("nan")) is False
        assert feedback(score=1) is False                               # no current span
    finally:
        ct.shutdown()
    ct.init(service_name="feedback-test", endpoint="http://127.0.0.1:9", api_key=None)
    try:
        assert feedback(trace_id=trace_id, score=1, timeout_s=1) is False  # nobody listening
    finally:
        ct.shutdown()


def test_a_real_canary_feeds_the_mirror_drop_and_fallback_panels(collector):
    """ct.Canary's own spans, exported by the SDK, are what these two panels read."""
    import threading
    import time

    import canarytrace as ct
    from canarytrace.canary import Canary

    process, keys, _ = collector
    busy = threading.Event()

    def base(request: str) -> str:
        return f"base answer to {request}"

    def candidate(request: str) -> str:
        busy.wait(0.05)  # slow enough that one shadow worker falls behind and drops
        if request.endswith("7"):
            raise TimeoutError("candidate timed out")
        return f"candidate answer to {request}"

    ct.init(service_name="live-canary", endpoint=process.url, api_key=keys["live"])
    try:
        canary = Canary(base, candidate, base_model="live-base", candidate_model="live-tuned",
                        mirror_rate=1.0, canary_rate=0.3, route="billing", shadow_workers=1,
                        shadow_queue_size=1, key=lambda request: request)
        with canary:
            for i in range(60):
                canary(f"request {i}")
        stats = canary.stats
    finally:
        ct.shutdown()
    assert stats.dropped > 0 and stats.fallbacks > 0
    deadline = time.monotonic() + 10
    while True:  # spans land in batches: wait for the ones that carry a drop and a fallback
        drops = get(collector, "/api/dashboard/panels/mirror_drop_rate", keys["live"]).json()
        fallbacks = get(collector, "/api/dashboard/panels/fallback_rate", keys["live"]).json()
        shown = [any(row[2] > 0 for row in panel["rows"]) for panel in (drops, fallbacks)]
        if all(shown) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert any(row[2] > 0 for row in drops["rows"]), drops
    assert {row[1] for row in drops["rows"]} == {"live-base"}
    assert any(row[2] > 0 for row in fallbacks["rows"]), fallbacks
    assert {row[1] for row in fallbacks["rows"]} == {"billing"}
