"""``canarytrace score`` on IFBench's sample responses: every published verdict, both modes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

CANARYTRACE = [str(Path(sys.executable).with_name("canarytrace"))]  # the installed command
CONFORMANCE = Path(__file__).resolve().parents[2].parent / "shared" / "conformance" / "ifbench"
UNVERIFIABLE = "words:start_verb"

# The reference's published figures over all 331 instructions (its README), and ours: the same
# verdicts less the 6 of words:start_verb, which are unchecked (prompt level: the 284 prompts
# without it).
REFERENCE_SUMMARY = {
    "prompt-level strict": (77, 290), "instruction-level strict": (93, 331),
    "prompt-level loose": (87, 290), "instruction-level loose": (108, 331),
}
OURS = {
    "prompt-level strict": (74, 284), "instruction-level strict": (90, 325),
    "prompt-level loose": (84, 284), "instruction-level loose": (105, 325),
}


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


@pytest.fixture(scope="module")
def conformance() -> dict[str, list[dict]]:
    if not CONFORMANCE.is_dir():
        pytest.skip(f"IFBench conformance data not found at {CONFORMANCE}")
    return {name: _jsonl(CONFORMANCE / f"{name}.jsonl")
            for name in ("input_data", "responses", "expected")}


@pytest.mark.slow
def test_every_published_verdict_strict_and_loose(conformance, tmp_path):
    answered = {row["key"] for row in conformance["responses"]}
    dataset = tmp_path / "answered.jsonl"  # the 290 prompts that have a sample response
    dataset.write_text("".join(json.dumps(row) + "\n" for row in conformance["input_data"]
                               if row["key"] in answered), encoding="utf-8")
    run = subprocess.run(
        [*CANARYTRACE, "score", "--dataset", str(dataset),
         "--responses", str(CONFORMANCE / "responses.jsonl")],
        capture_output=True, text=True, timeout=240, check=False)
    assert run.returncode == 0, run.stderr

    ours = {row["key"]: row for row in map(json.loads, run.stdout.splitlines())}
    assert len(ours) == len(conformance["expected"]) == 290
    compared = unchecked = 0
    for want in conformance["expected"]:
        got = ours[want["key"]]
        assert got["instruction_id_list"] == want["instruction_id_list"]
        for index, instruction_id in enumerate(want["instruction_id_list"]):
            verdicts = (got["strict"][index], got["loose"][index])
            if instruction_id == UNVERIFIABLE:
                assert verdicts == (None, None)
                unchecked += 1
                continue
            assert verdicts == (want["strict"][index], want["loose"][index]), \
                (want["key"], instruction_id)
            compared += 1
    assert (compared, unchecked) == (325, 6)

    for name, (followed, total) in OURS.items():
        line = next(line for line in run.stderr.splitlines() if name in line)
        assert f"{followed / total:.4f}" in line and f"{followed}/{total}" in line
    assert f"6 instructions unchecked, not counted: {UNVERIFIABLE} x6" in run.stderr


def test_reference_summary_is_what_its_verdicts_add_up_to(conformance):
    expected = conformance["expected"]
    for mode in ("strict", "loose"):
        flags = [flag for row in expected for flag in row[mode]]
        assert REFERENCE_SUMMARY[f"instruction-level {mode}"] == (sum(flags), len(flags))
        assert REFERENCE_SUMMARY[f"prompt-level {mode}"] == (
            sum(all(row[mode]) for row in expected), len(expected))


def test_the_builtin_dataset_is_the_test_set(conformance):
    from canarytrace.analysis.datasets import load_dataset

    builtin = {example.key: example for example in load_dataset("ifbench").examples}
    assert len(builtin) == len(conformance["input_data"]) == 300
    for row in conformance["input_data"]:
        example = builtin[row["key"]]
        assert example.messages[0]["content"] == row["prompt"]
        kwargs = [{k: v for k, v in kw.items() if v is not None} for kw in row["kwargs"]]
        assert example.instructions == [{"id": i, "kwargs": k} for i, k in
                                        zip(row["instruction_id_list"], kwargs, strict=True)]
