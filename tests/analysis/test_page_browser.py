"""The built-in page of ``canarytrace serve``, loaded in real headless Chromium.

Traffic reaches the collector process the way it does in production: spans through the
OpenTelemetry OTLP/HTTP exporter, eval results and verdicts through the API, feedback
through ``ct.feedback``. Screenshots are saved under artifacts/.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from canarytrace.dashboards.panels import load_dashboard
from tests.analysis.dashboard_seed import (
    export_spans,
    make_traffic,
    post_evals_and_verdicts,
    require_dashboard,
    wait_until_stored,
)
from tests.support.browser import Browser, find_chromium
from tests.support.collector import running_collector

pytestmark = pytest.mark.skipif(
    find_chromium() is None,
    reason="no Chromium binary: apt-get install -y chromium (the CI script installs it)")

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
PANELS = "[...document.querySelectorAll('.panel')]"
SPAN_ROWS = "[...document.querySelectorAll('.span-row')]"
PANELS_SETTLED = (f"{PANELS}.length > 0 && {PANELS}.every(p => p.dataset.state !== 'loading')"
                  " && !!document.querySelector('.canary[data-verdict]')")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A collector process holding six hours of canary traffic, with feedback and verdicts."""
    import canarytrace as ct
    from canarytrace.feedback import feedback

    traffic = make_traffic(project="default", requests=200, hours=5.5)  # inside "Last 6 hours"
    with running_collector(tmp_path_factory.mktemp("page")) as collector:
        require_dashboard(collector.url)
        export_spans(traffic, collector.url)
        post_evals_and_verdicts(traffic, collector.url)
        ct.init(service_name="page-test", endpoint=collector.url)
        try:
            for vote in traffic.feedback:
                assert feedback(trace_id=vote["TraceId"], score=vote["Score"],
                                comment=vote["Comment"])
        finally:
            ct.shutdown()
        wait_until_stored(traffic, collector.url)
        yield collector, traffic


@pytest.fixture(scope="module")
def page(served):
    collector, _ = served
    with Browser.launch() as browser:
        page = browser.new_page(width=1440, height=1000)
        page.goto(f"{collector.url}/?range=21600")  # the seeded 5.5 hours
        page.wait_for(PANELS_SETTLED, timeout=60)
        yield page


def test_every_panel_has_data_and_nothing_logs_an_error(page):
    states = page.evaluate(f"{PANELS}.map(p => ({{id: p.dataset.panelId, "
                           "state: p.dataset.state, rows: +p.dataset.rows}))")
    dashboard = load_dashboard()
    assert [s["id"] for s in states] == [p.id for p in dashboard.panels]
    empty = [s["id"] for s in states if s["state"] != "ok" or s["rows"] == 0]
    assert not empty, f"panels without data: {empty}"
    charts = page.evaluate("document.querySelectorAll('.panel canvas').length")
    tables = page.evaluate("document.querySelectorAll('.panel table').length")
    kinds = [p.kind for p in dashboard.panels]
    assert (charts, tables) == (len(kinds) - kinds.count("table"), kinds.count("table"))
    verdicts = page.evaluate("[...document.querySelectorAll('.panel .verdict')]"
                             ".map(v => v.textContent)")
    assert verdicts == ["ROLLBACK", "HOLD", "HOLD"]
    page.screenshot(ARTIFACTS / "dashboard-overview.png")
    assert not page.errors, page.errors


def test_trace_view_opens_with_agent_steps_tool_calls_messages_and_evals(page, served):
    _, traffic = served
    page.evaluate("document.querySelector('[data-tab=traces]').click()")
    page.wait_for("document.querySelectorAll('#trace-table tbody tr').length > 0")
    agent_trace = traffic.agent_trace_ids[-1]
    page.evaluate(f"document.querySelector('#trace-table tr[data-trace-id=\"{agent_trace}\"]')"
                  ".click()")
    page.wait_for("!document.getElementById('trace-view').classList.contains('hidden') && "
                  "document.querySelectorAll('.span-row').length > 0")
    kinds = page.evaluate(f"{SPAN_ROWS}.map(r => r.dataset.kind)")
    assert kinds[0] == "agent" and kinds.count("step") == 3 and "tool" in kinds and "llm" in kinds
    detail = page.evaluate("document.getElementById('span-detail').textContent")
    assert "Evaluations" in detail and "json_validation" in detail
    assert "Input" in detail and "Output" in detail and "support assistant" in detail
    page.evaluate(f"{SPAN_ROWS}.find(r => r.dataset.kind === 'tool').click()")
    tool = page.evaluate("document.getElementById('span-detail').textContent")
    assert "Tool call: lookup_invoice" in tool and "INV-1042" in tool and "paid" in tool
    page.evaluate(f"{SPAN_ROWS}.find(r => r.dataset.kind === 'llm').click(); window.scrollTo(0, 0)")
    page.screenshot(ARTIFACTS / "dashboard-trace.png")
    assert not page.errors, page.errors


def test_trace_list_filters_by_outcome(page, served):
    _, traffic = served
    page.evaluate("document.querySelector('[data-tab=traces]').click()")
    page.evaluate("const s = document.querySelector('#trace-filters [name=outcome]');"
                  "s.value = 'thumbs_down'; s.dispatchEvent(new Event('change'))")
    down = {v["TraceId"] for v in traffic.feedback if v["Score"] < 0}
    shown = page.wait_for(
        "(() => { const ids = [...document.querySelectorAll('#trace-table tbody tr')]"
        ".map(r => r.dataset.traceId); return ids.length && ids.every(i => "
        f"{json.dumps(sorted(down))}.includes(i)) ? ids : null; }})()")
    assert set(shown) == down
    assert not page.errors, page.errors


def test_compare_view_shows_the_verdict(page, served):
    collector, traffic = served
    probe = httpx.get(f"{collector.url}/api/compare",  # sliced as the page slices
                      params={"base": traffic.base_model, "candidate": traffic.candidate_model,
                              "by": "route,cohort"})
    if probe.status_code == 404 and "Not Found" in probe.text:
        pytest.fail("GET /api/compare is not served: collector/app.py must include "
                    "canarytrace.collector.compare_route.router")
    page.evaluate("document.querySelector('[data-tab=compare]').click()")
    verdict = page.wait_for("(() => { const v = document.querySelector('#verdict .big');"
                            " return v && v.textContent; })()", timeout=60)
    report = probe.json()  # the seeded traffic lies inside both this window and the page's
    assert verdict == report["verdict"]
    shown = page.evaluate("document.querySelectorAll('#compare-result tbody tr').length")
    assert shown == len(report["metrics"]) > 0
    assert page.evaluate("document.querySelector('#compare-form [name=base]').value") == \
        traffic.base_model
    page.screenshot(ARTIFACTS / "dashboard-compare.png")
    assert not page.errors, page.errors


def test_with_api_keys_the_page_asks_for_one_and_shows_only_its_project(tmp_path):
    from tests.support.collector import CollectorProcess

    collector = CollectorProcess(tmp_path)
    key = collector.create_key("acme")
    collector.create_key("umbrella")
    collector.start()
    try:
        require_dashboard(collector.url, key)
        traffic = make_traffic(project="acme", requests=30, hours=2)
        export_spans(traffic, collector.url, key)
        with Browser.launch() as browser:
            page = browser.new_page(width=1440, height=900)
            page.goto(f"{collector.url}/")
            page.wait_for("document.querySelector('#banner input') !== null")
            page.evaluate(f"document.querySelector('#banner input').value = {json.dumps(key)};"
                          "document.querySelector('#banner button').click()")
            page.wait_for(f"{PANELS}.some(p => p.dataset.state === 'ok')", timeout=60)
            models = page.wait_for("(() => { const o = [...document.querySelectorAll("
                                   "'#filters [name=model] option')].map(o => o.value)"
                                   ".filter(Boolean); return o.length ? o : null; })()")
            assert set(models) == {traffic.base_model, traffic.candidate_model}
            refused = [e for e in page.errors if "401" not in e.text]
            assert not refused, refused
    finally:
        collector.stop()
