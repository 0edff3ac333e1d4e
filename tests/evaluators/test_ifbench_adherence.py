"""IFBench instructions on live traffic: ct.expect -> OTLP -> ``canarytrace serve`` -> scored."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from canarytrace import attributes as A
from canarytrace.evaluators.base import SpanRecord
from canarytrace.evaluators.instruction_adherence import InstructionAdherence
from tests.support.collector import running_collector

REPO = Path(__file__).resolve().parents[2]


def _span(output: str, instructions: list[dict]) -> SpanRecord:
    attributes = {
        A.GEN_AI_OUTPUT_MESSAGES: json.dumps(
            [{"role": "assistant", "parts": [{"type": "text", "content": output}]}]),
        A.CANARY_EXPECT_INSTRUCTIONS: json.dumps(instructions),
    }
    return SpanRecord(trace_id="ab" * 16, span_id="cd" * 8, attributes=attributes)


def test_ifbench_and_ifeval_instructions_are_scored_together():
    instructions = [{"id": "words:palindrome", "kwargs": {}},
                    {"id": "punctuation:no_comma", "kwargs": {}},
                    {"id": "sentence:keyword", "kwargs": {"word": "kayak", "N": 2.0}}]
    output = "Sure!\nlevel racecar kayak madam refer. civic radar rotor stats tenet kayak."
    result = InstructionAdherence().evaluate(_span(output, instructions))
    assert (result.score, result.passed, result.label) == (1.0, True, "followed")
    broken = InstructionAdherence().evaluate(_span("level, racecar.", instructions))
    assert broken.passed is False and "words:palindrome" in broken.reason


def test_start_verb_is_unchecked_with_its_reason_unless_a_judge_scores_it():
    instructions = [{"id": "words:start_verb", "kwargs": {}},
                    {"id": "format:no_whitespace", "kwargs": {}}]
    result = InstructionAdherence().evaluate(_span("Run!", instructions))
    assert (result.score, result.passed) == (1.0, True)
    verdict = result.details["instructions"][0]
    assert verdict["status"] == "unchecked" and "POS tagger" in verdict["reason"]
    asked = []
    judged = InstructionAdherence(judge=lambda wording, _: asked.append(wording) or False)
    result = judged.evaluate(_span("Run!", instructions))
    assert asked == ["The response must start with a verb."] and result.passed is False


def test_bad_ifbench_kwargs_are_reported_not_blamed_on_the_model():
    result = InstructionAdherence().evaluate(
        _span("x", [{"id": "count:numbers", "kwargs": {"N": "three"}}]))
    assert result.label == "invalid" and result.passed is None


@pytest.mark.slow
def test_serve_scores_ifbench_expectations_on_live_traffic(tmp_path):
    env = {"CANARYTRACE_EVAL_ENABLED": "true", "CANARYTRACE_EVAL_INTERVAL_S": "0.5",
           "CANARYTRACE_EVAL_SETTLE_S": "0", "CANARYTRACE_EVAL_EVALUATORS": "instruction_adherence"}
    with running_collector(tmp_path / "collector", env=env) as collector:
        sent = subprocess.run([sys.executable, "-m", "tests.evaluators.ifbench_traffic",
                               collector.url], cwd=REPO, capture_output=True, text=True,
                              timeout=120)
        assert sent.returncode == 0, sent.stderr
        ids = json.loads(sent.stdout.strip().splitlines()[-1])
        deadline = time.monotonic() + 60
        rows: list[dict] = []
        while len(rows) < 2 and time.monotonic() < deadline:
            rows = httpx.get(f"{collector.url}/api/eval_results",
                             params={"limit": 100}).json()["eval_results"]
            time.sleep(0.3)
    by_name = {name: next(r for r in rows if r["SpanId"] == span_id)
               for name, span_id in ids.items()}
    assert (by_name["ifbench_ok"]["Label"], by_name["ifbench_ok"]["Passed"]) == ("followed", True)
    assert (by_name["ifbench_bad"]["Label"], by_name["ifbench_bad"]["Passed"]) \
        == ("not_followed", False)
    details = json.loads(by_name["ifbench_bad"]["Details"])
    assert [(v["id"], v["status"], v["strict"]) for v in details["instructions"]] == [
        ("count:keywords_multiple", "checked", False), ("format:no_whitespace", "checked", False),
        ("words:start_verb", "unchecked", None)]
