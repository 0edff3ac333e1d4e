"""``canarytrace evaluate`` end to end: SDK -> OTLP -> ``canarytrace serve`` -> evaluate -> API."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from canarytrace import cli
from tests.evaluators.judge_server import judge_server
from tests.support.collector import free_port, running_collector

CANARYTRACE = [str(Path(sys.executable).with_name("canarytrace"))]  # the installed command
REPO = Path(__file__).resolve().parents[2]
EXPECTED = {  # span name -> {evaluator: (label, passed)}
    "json_ok": {"json_validation": ("valid", True)},
    "json_bad": {"json_validation": ("schema_error", False)},
    "lower_ok": {"instruction_adherence": ("followed", True)},
    "lower_bad": {"instruction_adherence": ("not_followed", False)},
    "tool_ok": {"tool_selection": ("correct", True)},
    "tool_bad": {"tool_selection": ("wrong_func_name", False)},
    "agent": {"tool_selection": ("correct", True), "task_completion": ("completed", True)},
    "pair_candidate": {"pairwise": ("win", True)},
    "pair_base": {},
}
EVALUATORS = "json_validation,instruction_adherence,tool_selection,task_completion,pairwise"
RULE_BASED = "json_validation,instruction_adherence,tool_selection"
NO_BACKGROUND = {"CANARYTRACE_EVAL_ENABLED": "false"}
"""These tests run evaluate themselves: serve's background evaluation stays off."""


def send_traffic(url: str, api_key: str | None = None) -> dict[str, str]:
    """Run the SDK in its own process against the collector; span ids by name."""
    args = [sys.executable, "-m", "tests.evaluators.evaluation_traffic", url]
    done = subprocess.run(args + ([api_key] if api_key else []), cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def wait_until_stored(url: str, headers: dict, count: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        spans = httpx.get(f"{url}/api/spans", params={"limit": 1000}, headers=headers).json()
        if len(spans["spans"]) >= count:
            return
        time.sleep(0.2)
    raise AssertionError(f"fewer than {count} spans stored after {timeout}s")


def evaluate(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*CANARYTRACE, "evaluate", *args], capture_output=True, text=True,
                          timeout=180, env=env, cwd=REPO)


def eval_results(url: str, headers: dict) -> list[dict]:
    body = httpx.get(f"{url}/api/eval_results", params={"limit": 1000}, headers=headers).json()
    return body["eval_results"]


def verdicts(rows: list[dict], ids: dict[str, str]) -> dict[str, dict]:
    names = {span_id: name for name, span_id in ids.items()}
    found: dict[str, dict] = {name: {} for name in ids}
    for row in rows:
        found[names[row["SpanId"]]][row["Evaluator"]] = (row["Label"], row["Passed"])
    return found


@pytest.fixture
def judge_env():
    """The environment for an evaluate run whose judge is a local OpenAI-compatible server."""
    with judge_server() as server:
        yield {**os.environ, "CANARYTRACE_JUDGE_URL": server.base_url,
               "CANARYTRACE_JUDGE_MODEL": "grader"}


@pytest.mark.slow
def test_evaluate_scores_spans_in_a_running_collector_once(tmp_path, judge_env):
    with running_collector(tmp_path / "collector", env=NO_BACKGROUND) as collector:
        key = collector.create_key("shop")
        headers = {"Authorization": f"Bearer {key}"}
        ids = send_traffic(collector.url, key)
        # 6 calls, 2 pair arms, the agent run with 2 steps and 1 tool call
        wait_until_stored(collector.url, headers, count=len(ids) + 3)

        first = evaluate("--collector", collector.url, "--api-key", key, "--since", "10m",
                         "--evaluators", EVALUATORS, env=judge_env)
        assert first.returncode == 0, first.stderr
        assert "json_validation" in first.stdout and "9 results written" in first.stdout
        rows = eval_results(collector.url, headers)
        assert verdicts(rows, ids) == EXPECTED
        candidate = next(r for r in rows if r["Evaluator"] == "pairwise")
        assert (candidate["Model"], candidate["Variant"], candidate["PairId"]) == (
            "llama-candidate", "candidate", "req-42")

        again = evaluate("--collector", collector.url, "--api-key", key, "--since", "10m",
                         "--evaluators", EVALUATORS, env=judge_env)
        assert again.returncode == 0, again.stderr
        assert "0 results written" in again.stdout
        rescored = evaluate("--collector", collector.url, "--api-key", key, "--since", "10m",
                            "--evaluators", "json_validation", "--rescore", env=judge_env)
        assert rescored.returncode == 0 and "2 results written" in rescored.stdout
        after = eval_results(collector.url, headers)
        assert len(after) == len(rows) == 9
        assert verdicts(after, ids) == EXPECTED

        no_key = evaluate("--collector", collector.url, "--since", "10m",
                          "--evaluators", "json_validation")
        assert no_key.returncode != 0
        assert no_key.stderr.strip().count("\n") == 0 and "401" in no_key.stderr


@pytest.mark.slow
def test_evaluate_with_store_reads_a_store_no_process_holds(tmp_path):
    with running_collector(tmp_path / "collector", env=NO_BACKGROUND) as collector:
        ids = send_traffic(collector.url)
        wait_until_stored(collector.url, {}, count=len(ids) + 3)
        held = evaluate("--store", f"chdb://{collector.store_dir}", "--since", "10m")
        assert held.returncode != 0
        assert held.stderr.strip().count("\n") == 0 and "--collector" in held.stderr
    # the collector has stopped: the store directory is free
    run = evaluate("--store", f"chdb://{collector.store_dir}", "--since", "10m",
                   "--evaluators", RULE_BASED)
    assert run.returncode == 0, run.stderr
    assert "9 spans read" in run.stdout and "7 results written" in run.stdout
    store = collector.open_store()
    try:
        rows = store.query(f"SELECT SpanId, Evaluator, Label, Passed, Project "
                           f"FROM {store.table('eval_results')} FINAL")
    finally:
        store.close()
    expected = {name: {e: v for e, v in found.items() if e != "task_completion"}
                for name, found in EXPECTED.items() if name != "pair_candidate"}
    expected["pair_candidate"] = {}
    assert verdicts(rows, ids) == expected
    assert {row["Project"] for row in rows} == {"default"}


@pytest.mark.slow
def test_serve_scores_new_spans_in_the_background(tmp_path):
    env = {"CANARYTRACE_EVAL_ENABLED": "true", "CANARYTRACE_EVAL_INTERVAL_S": "0.5",
           "CANARYTRACE_EVAL_SETTLE_S": "0",
           "CANARYTRACE_EVAL_EVALUATORS": RULE_BASED}
    with running_collector(tmp_path / "collector", env=env) as collector:
        ids = send_traffic(collector.url)
        deadline = time.monotonic() + 60
        while len(rows := eval_results(collector.url, {})) < 7 and time.monotonic() < deadline:
            time.sleep(0.3)
    expected = {name: {e: v for e, v in found.items() if e in RULE_BASED.split(",")}
                for name, found in EXPECTED.items()}
    assert verdicts(rows, ids) == expected


# --- bad input: one line on stderr, non-zero exit ------------------------------------------

@pytest.mark.parametrize("args, message", [
    (["--since", "yesterday"], "--since 'yesterday'"),
    (["--since", "1h", "--until", "2h"], "must be after --since"),
    (["--since", "1h", "--sample-rate", "2"], "between 0 and 1"),
    (["--since", "1h", "--sample", "route=billing"], "bad sampling override"),
    (["--since", "1h", "--evaluators", "json_validation,nope"], "unknown evaluator 'nope'"),
    (["--since", "1h", "--evaluators", "pairwise"], "needs a judge"),
    (["--since", "1h", "--evaluators", ","], "at least one evaluator"),
    (["--since", "1h", "--store", "chdb:///nonexistent/canarytrace/db"], "no store at"),
    (["--since", "1h", "--collector", "http://127.0.0.1:{port}"], "cannot reach the collector"),
    (["--since", "1h", "--collector", "http://x", "--project", "p"], "--store only"),
    (["--since", "1h", "--batch-size", "0"], "at least 1"),
    ([], "--since"),
])
def test_bad_input_is_one_line_on_stderr(args, message, capsys, monkeypatch):
    for name in ("CANARYTRACE_JUDGE_URL", "CANARYTRACE_JUDGE_MODEL_PATH",
                 "CANARYTRACE_COLLECTOR", "CANARYTRACE_STORE"):
        monkeypatch.delenv(name, raising=False)
    args = [a.replace("{port}", str(free_port())) for a in args]
    code = cli.main(["evaluate", *args])
    err = capsys.readouterr().err
    assert code != 0
    assert message in err
    assert err.strip().count("\n") == 0, err


def test_help_lists_the_options(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["evaluate", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for option in ("--since", "--until", "--evaluators", "--sample-rate", "--sample",
                   "--collector", "--store", "--api-key", "--rescore"):
        assert option in out
