"""``canarytrace compare`` as users run it: a subprocess on a store, and through a collector.

The store is seeded once (a 10-point json_validation drop in cohort "pro"), then closed so
that the processes started here can open it (chDB: one process per directory).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from canarytrace import cli
from canarytrace.analysis.report_json import validate_report
from canarytrace.store.client import Store
from tests.analysis import simulate as sim
from tests.support.collector import cli_env, running_collector

WINDOW = ["--since", "2025-03-01T00:00:00Z", "--until", "2025-03-02T00:00:00Z"]
MODELS = ["--base", sim.BASE_MODEL, "--candidate", sim.CANDIDATE_MODEL]


@pytest.fixture(scope="module")
def directory(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("compare-process")
    store = Store.from_url(f"chdb://{directory / 'db'}")
    store.migrate()
    requests = sim.simulate("default", sim.Scenario(candidate_pass={"pro": 0.8}), seed=5)
    sim.insert(store, "eval_results", sim.eval_columns(requests))
    sim.insert(store, "otel_traces", sim.span_columns(requests, seed=6))
    store.close()
    return directory


def test_the_command_in_a_subprocess_exits_11_with_a_valid_json_report(directory):
    out = subprocess.run(
        [sys.executable, "-m", "canarytrace.cli", "compare", *MODELS, *WINDOW,
         "--store", f"chdb://{directory / 'db'}", "--format", "json", "--no-record"],
        capture_output=True, text=True, env=cli_env(), timeout=120)
    assert out.returncode == 11, out.stderr
    report = json.loads(out.stdout)
    validate_report(report)
    assert report["verdict"] == "ROLLBACK"
    assert any(r["metric"] == "json_validation" and r["slice"] == "cohort=pro"
               for r in report["reasons"])


@pytest.mark.parametrize(("args", "message"), [
    ([*MODELS[:2], "--candidate", sim.BASE_MODEL], "name the same model"),
    ([*MODELS, "--since", "yesterday"], "cannot read time 'yesterday'"),
    ([*MODELS, "--since", "1h", "--until", "2h"], "the window is empty"),
    ([*MODELS, "--by", "cohort,model"], "cannot slice by 'model'"),
    ([*MODELS, "--format", "html"], "--format html needs -o FILE"),
    ([*MODELS, "--format", "pdf"], "argument --format: invalid choice: 'pdf'"),
    ([*MODELS, "--policy", "/nonexistent/policy.yaml"], "cannot read policy file"),
    (["--base", "a"], "the following arguments are required: --candidate"),
    ([*MODELS, "--store", "chdb:///x", "--collector", "http://x"], "either --store or"),
])
def test_usage_errors_are_one_line_and_exit_2(args, message, capsys):
    assert cli.main(["compare", *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and "Traceback" not in err


def test_a_bad_policy_file_names_the_field(tmp_path, capsys):
    policy = tmp_path / "policy.yaml"
    policy.write_text("metrics:\n  latency_p50: {tolerance: -1}\n")
    assert cli.main(["compare", *MODELS, "--policy", str(policy)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "metrics.latency_p50.tolerance: -1 is less than the minimum of 0" in err


def test_a_missing_or_empty_store_is_one_clear_error(tmp_path, capsys):
    assert cli.main(["compare", *MODELS, "--store", f"chdb://{tmp_path / 'nothing'}"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no store at" in err
    assert not (tmp_path / "nothing").exists()
    (tmp_path / "empty").mkdir()
    assert cli.main(["compare", *MODELS, "--store", f"chdb://{tmp_path / 'empty'}"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "has no canarytrace tables" in err


# --- through a collector -------------------------------------------------------------------------

@contextmanager
def _collector(directory: Path):
    """``canarytrace serve`` on the store in ``directory``; its URL."""
    with running_collector(directory) as collector:
        yield collector.url


def _create_key(directory: Path, project: str) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "canarytrace.cli", "keys", "--store",
         f"chdb://{directory / 'db'}", "create", "--project", project],
        env=cli_env(), capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_compare_through_a_collector_matches_and_records_the_verdict(directory, tmp_path,
                                                                     capsys):
    output = tmp_path / "report.json"
    with _collector(directory) as url:
        code = cli.main(["compare", *MODELS, *WINDOW, "--collector", url, "--format", "json",
                         "-o", str(output)])
        assert code == 11, capsys.readouterr().err
        report = json.loads(output.read_text())
        validate_report(report)
        assert report["verdict"] == "ROLLBACK" and report["project"] == "default"
        history = httpx.get(f"{url}/api/verdicts").json()["verdicts"]
        assert [v["Verdict"] for v in history] == ["ROLLBACK"]
        assert json.loads(history[0]["Report"])["verdict"] == "ROLLBACK"

        bad = httpx.get(f"{url}/api/compare", params={"base": "a", "candidate": "b",
                                                      "by": "model"})
        assert bad.status_code == 400 and "cannot slice by 'model'" in bad.json()["detail"]
        bad = httpx.get(f"{url}/api/compare", params={"base": "a", "candidate": "b",
                                                      "policy": "alpha: 7"})
        assert bad.status_code == 400 and "alpha: 7 is greater than" in bad.json()["detail"]

        key = _create_key(directory, "default")
        assert cli.main(["compare", *MODELS, *WINDOW, "--collector", url, "--no-record"]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "answered 401" in err
        assert cli.main(["compare", *MODELS, *WINDOW, "--collector", url, "--api-key", key,
                         "--no-record", "--format", "json"]) == 11
        assert json.loads(capsys.readouterr().out)["verdict"] == "ROLLBACK"


# --- the whole loop: SDK -> OTLP -> collector -> eval results -> compare -------------------------

def _all_spans(url: str, model: str) -> list[dict]:
    spans, cursor = [], None
    while True:
        params = {"model": model, "limit": 1000, **({"cursor": cursor} if cursor else {})}
        page = httpx.get(f"{url}/api/spans", params=params).json()
        spans += page["spans"]
        cursor = page["next_cursor"]
        if cursor is None:
            return spans


def _wait_for_spans(url: str, model: str, count: int, timeout: float = 30.0) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        spans = _all_spans(url, model)
        if len(spans) >= count or time.monotonic() > deadline:
            return spans
        time.sleep(0.2)


def test_sdk_canary_traffic_is_paired_and_judged_through_a_collector(tmp_path, capsys):
    import canarytrace as ct

    cohorts = ("edu", "enterprise", "free", "internal", "pro")

    def flaky(request: int) -> str:
        if request % 10 == 0:
            raise RuntimeError("candidate crashed")
        return f"tuned answer {request}"

    with _collector(tmp_path / "loop") as url:
        ct.init(service_name="shop", endpoint=url)
        try:
            mirrored = ct.Canary(base=lambda r: f"answer {r}", candidate=lambda r: f"tuned {r}",
                                 base_model=sim.BASE_MODEL, candidate_model=sim.CANDIDATE_MODEL,
                                 mirror_rate=1.0, cohort=lambda r: cohorts[r % 5],
                                 shadow_queue_size=1000)
            for request in range(500):
                mirrored(request)
            mirrored.close(30)
            split = ct.Canary(base=lambda r: f"answer {r}", candidate=flaky,
                              base_model=sim.BASE_MODEL, candidate_model=sim.CANDIDATE_MODEL,
                              canary_rate=1.0, cohort=lambda r: cohorts[r % 5])
            for request in range(300):
                assert split(request)  # a failed candidate is answered by the base
            split.close(30)
        finally:
            ct.shutdown()
        candidate_spans = _wait_for_spans(url, sim.CANDIDATE_MODEL, 800)
        base_spans = _wait_for_spans(url, sim.BASE_MODEL, 530)
        assert (len(candidate_spans), len(base_spans)) == (800, 530)
        # json_validation on the mirrored calls: the candidate fails every "pro" request
        results = [{"span_id": s["SpanId"], "evaluator": "json_validation",
                    "passed": s["Model"] == sim.BASE_MODEL or s["Cohort"] != "pro"}
                   for s in candidate_spans + base_spans if s["PairId"]]
        assert len(results) == 1000
        assert httpx.post(f"{url}/api/eval_results", json=results).json() == {"inserted": 1000}
        output = tmp_path / "loop.json"
        code = cli.main(["compare", *MODELS, "--since", "1h", "--collector", url, "--format",
                         "json", "-o", str(output)])
        assert code == 11, capsys.readouterr().err
    report = json.loads(output.read_text())
    rows = {(m["metric"], m["slice"]): m for m in report["metrics"]}
    json_all = rows[("json_validation", "all")]
    assert json_all["mode"] == "paired" and json_all["n"] == 500
    assert json_all["difference"] == pytest.approx(-0.2)
    pro = rows[("json_validation", "cohort=pro")]
    assert (pro["n"], pro["base"]["value"], pro["candidate"]["value"]) == (100, 1.0, 0.0)
    fallback = rows[("fallback_rate", "all")]
    assert fallback["candidate"]["n"] == 300 and fallback["candidate"]["value"] == 0.1
    assert fallback["classification"] == "regression"
    assert {(r["metric"], r["slice"]) for r in report["reasons"]} >= {
        ("json_validation", "cohort=pro"), ("fallback_rate", "all")}
