"""The first ten minutes of an SRE, on the demo's data in real headless Chromium: the overview
leads with the verdict, every chart names its unit, eval failures are never pooled across
evaluators, and a regression's reason is one click from the pairs that show it side by side.

The demo runs once (tests/analysis/conftest.py); a copy of its store is served by a real
``canarytrace serve``. Screenshots of each page go to artifacts/screenshots/.
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.support.browser import Browser, find_chromium
from tests.support.collector import CollectorProcess

pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    find_chromium() is None,
    reason="no Chromium binary: apt-get install -y chromium (the CI script installs it)")]

SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"
WIDTH, HEIGHT = 1440, 900
BASE, CANDIDATE = "shop-assistant-base", "shop-assistant-lora-r16"
SETTLED = ("!!document.querySelector('.canary[data-verdict]') && "
           "[...document.querySelectorAll('.panel')].length > 0 && "
           "[...document.querySelectorAll('.panel')].every(p => p.dataset.state !== 'loading')")
CHARTS = ("[...document.querySelectorAll('.panel canvas')].map(c => { const ch = Chart.getChart(c);"
          " return { panel: c.closest('.panel').dataset.panelId,"
          " y: ch.options.scales.y.title.display ? ch.options.scales.y.title.text : '',"
          " x: ch.config.type === 'line' ? ch.options.scales.x.title.text : 'category',"
          " series: ch.data.datasets.map(d => d.label) }; })")


@pytest.fixture(scope="module")
def served(demo_run, tmp_path_factory):
    """``canarytrace serve`` on a copy of the demo's store (the demo has stopped its own)."""
    assert demo_run.run.returncode == 0, demo_run.run.stderr
    directory = tmp_path_factory.mktemp("demo-served")
    shutil.copytree(demo_run.folder / "db", directory / "db", symlinks=True)
    collector = CollectorProcess(directory)
    collector.start()
    try:
        yield collector
    finally:
        collector.stop()


@pytest.fixture(scope="module")
def page(served):
    with Browser.launch() as browser:
        page = browser.new_page(width=WIDTH, height=HEIGHT)
        page.goto(f"{served.url}/")  # the default range: the last hour
        page.wait_for(SETTLED, timeout=90)
        yield page


def use_range(page, seconds: int) -> None:
    """Pick the page's time range and wait for the overview to reload."""
    if page.evaluate("document.querySelector('#filters [name=range]').value") == str(seconds):
        return
    page.evaluate("location.hash = '#overview'; document.querySelector('.canary')"
                  ".removeAttribute('data-verdict');"
                  "document.querySelectorAll('.panel').forEach(p => p.dataset.state = 'loading');"
                  "const r = document.querySelector('#filters [name=range]');"
                  f"r.value = '{seconds}'; r.dispatchEvent(new Event('change'))")
    page.wait_for(SETTLED, timeout=90)


WHOLE_DEMO = 10800
"""Three hours: all of the demo's back-dated hour, however long ago the demo ran."""


def get(served, path: str, **params) -> httpx.Response:
    return httpx.get(f"{served.url}{path}", params=params, timeout=60)


def test_the_overview_leads_with_the_verdict(page, served):
    """On the default range (the last hour), where the demo's traffic draws its lines."""
    verdict = page.evaluate("(() => { const v = document.querySelector('.canary .big.verdict');"
                            " const r = v.getBoundingClientRect(); return { text: v.textContent,"
                            " top: r.top, bottom: r.bottom, scrolled: window.scrollY }; })()")
    assert verdict["text"] == "ROLLBACK"
    assert verdict["scrolled"] == 0 and verdict["top"] >= 0 and verdict["bottom"] <= HEIGHT
    title = page.evaluate("document.querySelector('.canary .canary-title strong').textContent")
    assert title == f"{BASE} → {CANDIDATE}"
    reasons = page.evaluate("[...document.querySelectorAll('.canary .reasons li')]"
                            ".map(li => li.textContent)")
    assert any("json_validation regressed in route=billing" in r for r in reasons), reasons
    # the critical metrics, base against candidate in every route and cohort
    cards = page.evaluate("[...document.querySelectorAll('.metric-card')].map(c => ({"
                          "metric: c.dataset.metric, slices: [...c.querySelectorAll('tbody tr')]"
                          ".map(r => r.dataset.slice), head: [...c.querySelectorAll('th')]"
                          ".map(h => h.textContent)}))")
    report = get(served, "/api/compare", base=BASE, candidate=CANDIDATE, since="1h",
                 by="route,cohort").json()
    critical = {m["metric"] for m in report["metrics"] if m["critical"]}
    assert {c["metric"] for c in cards} == critical and "json_validation" in critical
    assert cards[0]["metric"] in {r["metric"] for r in report["reasons"]
                                  if r["kind"] == "critical_regression"}
    billing = next(c for c in cards if c["metric"] == "json_validation")
    assert {"all", "route=billing", "cohort=free", "cohort=us"} <= set(billing["slices"])
    assert "Base (%)" in billing["head"] and "Change (pts)" in billing["head"]
    page.screenshot(SCREENSHOTS / "overview-first-screen.png", full_page=False)
    page.screenshot(SCREENSHOTS / "overview.png")
    assert not page.errors, page.errors


def test_every_chart_names_its_unit_and_eval_failures_are_per_evaluator(page, served):
    use_range(page, WHOLE_DEMO)
    charts = page.evaluate(CHARTS)
    assert len(charts) >= 8
    for chart in charts:
        assert chart["y"], f"panel {chart['panel']}: the y axis has no title"
        assert "(" in chart["y"] or " per " in chart["y"], f"{chart['panel']}: {chart['y']!r}"
        assert chart["x"], chart["panel"]
    evaluators = get(served, "/api/dashboard/canaries", since="3h").json()["evaluators"]
    assert set(evaluators) == {"json_validation", "instruction_adherence", "tool_selection"}
    fails = next(c for c in charts if c["panel"] == "eval_fail_rate")
    assert fails["series"], "the eval-fail panel has no series"
    for series in fails["series"]:  # "json_validation · candidate": one evaluator, one arm
        evaluator, _, variant = series.partition(" · ")
        assert evaluator in evaluators and variant in ("base", "candidate"), series
    assert {s.split(" · ")[0] for s in fails["series"]} == set(evaluators)
    assert not page.errors, page.errors


def test_a_regression_reason_is_one_click_from_its_disagreeing_pairs(page, served):
    use_range(page, WHOLE_DEMO)
    page.evaluate("[...document.querySelectorAll('.canary .reasons li')].find(li => li"
                  ".textContent.includes('json_validation regressed in route=billing'))"
                  ".querySelector('a.why').click()")
    page.wait_for("!!document.querySelector('#disagreement-table tbody tr')", timeout=60)
    form = page.evaluate("JSON.stringify(disagreementParams())")
    assert '"evaluator":"json_validation"' in form and '"slice":"route=billing"' in form
    listed = get(served, "/api/disagreements", base=BASE, candidate=CANDIDATE,
                 evaluator="json_validation", slice="route=billing", failed="candidate",
                 since="3h").json()
    assert listed["counts"]["candidate_failed"] > listed["counts"]["base_failed"]
    rows = page.evaluate("[...document.querySelectorAll('#disagreement-table tbody tr')]"
                         ".map(r => ({id: r.dataset.pairId, text: r.textContent}))")
    assert [r["id"] for r in rows] == [p["pair_id"] for p in listed["pairs"]]
    assert all("candidate failed" in r["text"] and "billing" in r["text"] for r in rows)
    shown = page.evaluate("document.getElementById('disagree-summary').textContent")
    assert f"{listed['counts']['candidate_failed']}candidate failed where the base passed" in shown
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(SCREENSHOTS / "disagreements.png", full_page=False)
    assert not page.errors, page.errors


def test_the_pair_view_shows_both_arms_side_by_side(page, served):
    pair_id = page.evaluate("document.querySelector('#disagreement-table tbody tr')"
                            ".dataset.pairId")
    page.evaluate("document.querySelector('#disagreement-table tbody tr').click()")
    page.wait_for("!!document.querySelector('#pair-diff')", timeout=60)
    assert page.evaluate("location.hash") == f"#pair/{pair_id}"
    pair = get(served, f"/api/pairs/{pair_id}").json()
    assert [a["variant"] for a in pair["arms"]] == ["base", "candidate"]
    view = page.evaluate("(() => { const arms = [...document.querySelectorAll('.arm')];"
                         " return { input: document.querySelectorAll('.pair-input .message')"
                         ".length, inputText: document.querySelector('.pair-input').textContent,"
                         " arms: arms.map(a => ({ variant: a.dataset.variant,"
                         " text: a.textContent })), inserted: document.querySelectorAll("
                         "'#pair-diff ins').length, deleted: document.querySelectorAll("
                         "'#pair-diff del').length }; })()")
    assert view["input"] == len(pair["input_messages"]) == 1  # the input, once
    assert "Show my last invoice as JSON." in view["inputText"]
    base, candidate = view["arms"]
    assert (base["variant"], candidate["variant"]) == ("base", "candidate")
    assert BASE in base["text"] and CANDIDATE in candidate["text"]
    for arm, shown in zip(pair["arms"], (base, candidate), strict=True):
        assert arm["output_text"].splitlines()[0] in shown["text"]          # the answer
        assert f"{arm['input_tokens']} in / {arm['output_tokens']} out tokens" in shown["text"]
        assert "latency " in shown["text"] and " ms" in shown["text"]
        assert "parser error" in shown["text"] and "json_validation" in shown["text"]
    assert "pass" in base["text"] and "fail" in candidate["text"]
    assert pair["arms"][1]["parser_errors"] >= 1
    assert f"{pair['arms'][1]['parser_errors']} parser error" in candidate["text"]
    assert view["inserted"] and view["deleted"]
    page.screenshot(SCREENSHOTS / "pair.png", full_page=False)
    # each arm's trace is one click away, in the trace view
    page.evaluate("document.querySelector('.arm.candidate .arm-head a').click()")
    page.wait_for("document.getElementById('trace-view-id').textContent === "
                  f"'{pair['arms'][1]['trace_id']}'", timeout=60)
    assert page.evaluate("document.querySelector('.tab.active').dataset.tab") == "traces"
    assert not page.errors, page.errors


def test_the_compare_view_slices_like_the_overview_and_shows_units(page, served):
    page.evaluate("document.querySelector('[data-tab=compare]').click()")
    page.wait_for("(() => { const v = document.querySelector('#verdict .big');"
                  " return !!v && v.textContent === 'ROLLBACK'; })()", timeout=60)
    slices = page.evaluate("[...new Set([...document.querySelectorAll('#compare-result tbody tr')]"
                           ".map(r => r.dataset.slice))]")
    assert {"route=billing", "cohort=pro"} <= set(slices)
    latency = page.evaluate("[...document.querySelectorAll('#compare-result tbody tr')].find(r =>"
                            " r.dataset.metric === 'latency_p50').textContent")
    assert " ms" in latency
    page.screenshot(SCREENSHOTS / "compare.png", full_page=False)
    assert not page.errors, page.errors


def test_an_active_rollout_leads_the_overview(page, served):
    started = (datetime.now(UTC) - timedelta(hours=2)).isoformat()
    created = httpx.post(f"{served.url}/api/rollouts", timeout=30, json={
        "base_model": BASE, "candidate_model": CANDIDATE, "by": "route,cohort",
        "name": "shop-assistant-r16", "started_at": started})
    assert created.status_code == 201, created.text
    page.evaluate("location.hash = '#overview'; refresh()")
    page.wait_for("(() => { const c = document.querySelector('.canary[data-verdict]');"
                  " return !!c && c.textContent.includes('rollout shop-assistant-r16'); })()",
                  timeout=90)
    shown = page.evaluate("document.querySelector('.canary .big.verdict').textContent")
    status = get(served, f"/api/rollouts/{created.json()['id']}", report="false").json()
    assert shown == status["verdict"]
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(SCREENSHOTS / "overview-rollout.png", full_page=False)
    assert not page.errors, page.errors


# --- the API takes the CLI's time forms, and bounded times only -------------------------

def test_the_api_takes_the_clis_time_forms(served):
    assert get(served, "/api/spans", since="3h", limit=1).json()["spans"]
    assert get(served, "/api/eval_results", since="90m", until="now", limit=1).json()[
        "eval_results"]
    assert get(served, "/api/dashboard/panels/latency_by_model", since="3h").json()["rows"]
    iso = (datetime.now(UTC) - timedelta(hours=3)).isoformat()
    assert get(served, "/api/dashboard/traces", since=iso, limit=1).json()["traces"]


@pytest.mark.parametrize(("path", "params"), [
    ("/api/spans", {"since": "9999-01-01T00:00:00Z"}),
    ("/api/spans", {"until": "1200-01-01"}),
    ("/api/spans", {"since": "100000000d"}),
    ("/api/eval_results", {"since": "9999-01-01"}),
    ("/api/dashboard/panels/latency_by_model", {"since": "9999-01-01"}),
    ("/api/compare", {"base": BASE, "candidate": CANDIDATE, "since": "9999-01-01"}),
    ("/api/disagreements", {"base": BASE, "candidate": CANDIDATE, "evaluator": "json_validation",
                            "until": "9999-01-01"}),
])
def test_an_out_of_range_time_is_a_4xx_naming_the_range(served, path, params):
    response = get(served, path, **params)
    assert 400 <= response.status_code < 500, response.text
    assert "out of range" in response.text and "2262-04-11" in response.text


def test_bad_pair_and_disagreement_requests_are_clear_4xx(served):
    assert get(served, "/api/pairs/no-such-pair").status_code == 404
    bad_slice = get(served, "/api/disagreements", base=BASE, candidate=CANDIDATE,
                    evaluator="json_validation", slice="planet=mars")
    assert bad_slice.status_code == 400 and "cannot read slice" in bad_slice.json()["detail"]
    same = get(served, "/api/disagreements", base=BASE, candidate=BASE, evaluator="x")
    assert same.status_code == 400
