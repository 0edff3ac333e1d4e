"""``canarytrace replay`` end to end on tiny GPT-2 checkpoints built here (no download).

The command starts ``canarytrace serve`` on a chDB store, exports spans through the real
OTLP exporter, evaluates, compares and reports; the tests then read the store themselves.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from canarytrace import attributes as A
from canarytrace.analysis.datasets import load_dataset
from canarytrace.analysis.replay import (
    Configuration,
    ReplayPlan,
    configurations,
    parse_assignment,
    parse_sweep,
)
from canarytrace.analysis.replay_models import LocalModel, ModelSpec, ReplayError
from canarytrace.cli import main as cli_main
from tests.support.collector import running_collector
from tests.support.tiny_models import build_causal_lm, build_sequence_classifier

pytestmark = pytest.mark.slow

SEED = A.GEN_AI_REQUEST_SEED


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    import torch

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("checkpoints")
    return {"base": build_causal_lm(root / "base", seed=0),
            "candidate": build_causal_lm(root / "tuned", seed=1),
            "reward": build_sequence_classifier(root / "reward")}


def _replay(checkpoints: dict[str, Path], *extra: str) -> int:
    return cli_main(["replay", "--base", f"hf:{checkpoints['base']}",
                     "--candidate", f"hf:{checkpoints['candidate']}", *extra])


# --- argument parsing -------------------------------------------------------------------------

def test_sweeps_multiply_into_named_configurations() -> None:
    sweeps = [parse_sweep("temperature=0.2,0.8"), parse_sweep("max_new_tokens=64,128")]
    found = configurations(sweeps)
    assert [c.name for c in found] == [
        "temperature=0.2,max_new_tokens=64", "temperature=0.2,max_new_tokens=128",
        "temperature=0.8,max_new_tokens=64", "temperature=0.8,max_new_tokens=128"]
    assert found[1].params == {"temperature": 0.2, "max_new_tokens": 128}
    assert configurations([]) == [Configuration("default", {})]
    assert parse_assignment("do_sample=false") == ("do_sample", False)
    for bad in ("temperature", "temperature=", "temperature=0.2,,0.8", "=1"):
        with pytest.raises(ReplayError):
            parse_sweep(bad)


def test_sampling_is_on_with_several_trials_unless_turned_off(checkpoints) -> None:
    dataset = load_dataset("ifeval", limit=1)
    base = ModelSpec.parse("base", f"hf:{checkpoints['base']}")
    candidate = ModelSpec.parse("candidate", f"hf:{checkpoints['candidate']}")
    default = Configuration("default", {})

    def kwargs(trials: int, **fixed) -> dict:
        return ReplayPlan(dataset, base, candidate, (default,), trials,
                          fixed=fixed).generation_kwargs(default)

    assert kwargs(1)["do_sample"] is False
    assert kwargs(2)["do_sample"] is True
    assert kwargs(2, do_sample=False)["do_sample"] is False
    assert kwargs(1, temperature=0.7)["do_sample"] is True
    with pytest.raises(ReplayError, match="no config.json"):
        ModelSpec.parse("base", f"hf:{checkpoints['base'].parent / 'missing'}")
    with pytest.raises(ReplayError, match="hf:PATH"):
        ModelSpec.parse("base", str(checkpoints["base"]))


def test_batched_answers_equal_one_at_a_time_answers(checkpoints) -> None:
    """Left padding and the attention mask: a prompt's greedy answer does not depend on the
    longer prompts batched with it; the chat template renders the prompt."""
    model = LocalModel(ModelSpec.parse("base", f"hf:{checkpoints['base']}"))
    examples = load_dataset("ifeval", limit=3).examples
    assert model.chat and "<|assistant|>" in model.render(examples[0])
    greedy = {"max_new_tokens": 6, "do_sample": False}
    batched = model.generate(examples, greedy, seed=0)
    alone = [model.generate([example], greedy, seed=0)[0] for example in examples]
    assert [g.text for g in batched] == [g.text for g in alone]
    assert [g.input_tokens for g in batched] == [g.input_tokens for g in alone]
    assert all(0 < g.output_tokens <= 6 for g in batched)


# --- end to end ---------------------------------------------------------------------------------

def _stored_scores(store_dir: Path) -> list[dict]:
    """Every replay eval result with its span's configuration, arm and seed."""
    from canarytrace.store.client import Store

    store = Store.from_url(f"chdb://{store_dir}")
    try:
        return store.query(
            "SELECT e.Cohort AS cohort, e.Variant AS variant, e.Evaluator AS evaluator, "
            "e.Passed AS passed, e.Score AS score, e.Details AS details, "
            f"t.SpanAttributes['{SEED}'] AS seed "
            "FROM canarytrace.eval_results AS e FINAL "
            "INNER JOIN canarytrace.otel_traces AS t ON e.SpanId = t.SpanId "
            "WHERE e.Route = 'ifeval'")
    finally:
        store.close()


def _stored_spans(store_dir: Path) -> list[dict]:
    from canarytrace.store.client import Store

    store = Store.from_url(f"chdb://{store_dir}")
    try:
        return store.query(
            "SELECT SpanId, SpanName, Model, Variant, PairId, Cohort, "
            f"SpanAttributes['{SEED}'] AS seed, "
            f"SpanAttributes['{A.CANARY_EXPECT_INSTRUCTIONS}'] AS instructions, "
            f"SpanAttributes['{A.GEN_AI_INPUT_MESSAGES}'] AS input "
            "FROM canarytrace.otel_traces FINAL")
    finally:
        store.close()


def _recomputed(scores: list[dict], variant: str) -> dict[str, list[float]]:
    """Per-trial prompt-level and instruction-level strict accuracy and mean reward."""
    by_seed: dict[str, dict[str, list[float]]] = {}
    for row in scores:
        if row["variant"] != variant:
            continue
        trial = by_seed.setdefault(row["seed"], {"prompt": [], "instruction": [], "reward": []})
        if row["evaluator"] == "instruction_adherence":
            trial["prompt"].append(float(row["passed"]))
            trial["instruction"] += [float(item["strict"]) for item in
                                     json.loads(row["details"])["instructions"]]
        elif row["evaluator"] == "reward_score":
            trial["reward"].append(row["score"])
    return {name: [statistics.fmean(by_seed[seed][name]) for seed in sorted(by_seed)]
            for name in ("prompt", "instruction", "reward")}


def test_replay_end_to_end_reports_what_the_store_holds(checkpoints, tmp_path: Path) -> None:
    store_dir = tmp_path / "db"
    common = ["--dataset", "ifeval", "--trials", "2", "--gen", "max_new_tokens=8",
              "--reward", f"hf:{checkpoints['reward']}", "--store", f"chdb://{store_dir}"]

    # a first run on 10 prompts, then the 20-prompt run only answers the 10 new ones
    assert _replay(checkpoints, *common, "--limit", "10", "--json",
                   str(tmp_path / "first.json")) in (0, 10, 11)
    assert json.loads((tmp_path / "first.json").read_text())["generated"] == 40
    report_path = tmp_path / "report.html"
    code = _replay(checkpoints, *common, "--limit", "20", "-o", str(report_path),
                   "--json", str(tmp_path / "report.json"))
    report = json.loads((tmp_path / "report.json").read_text())
    assert (report["generated"], report["resumed"]) == (40, 40)

    # spans: one per prompt x trial x arm, paired across arms, seeds 0 and 1, expectations set
    spans = _stored_spans(store_dir)
    answers = [s for s in spans if s["PairId"]]
    assert len(answers) == 20 * 2 * 2
    pairs: dict[str, set[str]] = {}
    for span in answers:
        pairs.setdefault(span["PairId"], set()).add(span["Variant"])
    assert len(pairs) == 40 and all(v == {"base", "candidate"} for v in pairs.values())
    assert {s["seed"] for s in answers} == {"0", "1"}
    assert {s["Model"] for s in answers} == {"base", "tuned"}
    dataset = {json.dumps(e.instructions) for e in load_dataset("ifeval", limit=20).examples}
    assert {s["instructions"] for s in answers} == dataset
    generate_spans = [s for s in spans if s["SpanName"].startswith("text_completion ")]
    assert generate_spans and all(s["Model"].endswith(("base", "tuned")) for s in generate_spans)

    # the report's numbers are the stored eval results, per trial, mean and sample std
    scores = _stored_scores(store_dir)
    for arm in report["arms"]:
        expected = _recomputed(scores, arm["variant"])
        for metric, name in (("prompt_strict", "prompt"), ("instruction_strict", "instruction"),
                             ("reward", "reward")):
            got = arm["metrics"][metric]
            assert got["trials"] == pytest.approx(expected[name]), (arm["variant"], metric)
            assert got["mean"] == pytest.approx(statistics.fmean(expected[name]))
            assert got["std"] == pytest.approx(statistics.stdev(expected[name]))
        assert arm["answers"] == 40

    # the verdict comes from the compare engine, sliced by configuration, and sets the exit code
    verdict = report["verdict"]
    assert code == {"PROMOTE": 0, "HOLD": 10, "ROLLBACK": 11}[verdict["verdict"]]
    assert {m["slice"] for m in verdict["metrics"]} >= {"all", "cohort=default"}
    assert verdict["policy"]["source"] == "replay default"  # batch latency is not judged
    assert not any(m["metric"].startswith("latency") for m in verdict["metrics"])
    adherence = next(m for m in verdict["metrics"]
                     if m["metric"] == "instruction_adherence" and m["slice"] == "all")
    assert adherence["mode"] == "paired" and adherence["n"] == 40

    # the HTML is self-contained: both plots inline, the table's numbers in it
    page = report_path.read_text()
    assert page.count("data:image/png;base64,") == 2
    assert (tmp_path / "report-tradeoff.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "report-heatmap.png").read_bytes()[:4] == b"\x89PNG"
    prompt = report["arms"][0]["metrics"]["prompt_strict"]
    assert f"{prompt['mean']:.3f} ± {prompt['std']:.3f}" in page
    assert f"Verdict: {verdict['verdict']}" in page

    # re-running the same command answers nothing again and starts no generation
    again = tmp_path / "again.json"
    assert _replay(checkpoints, *common, "--limit", "20", "--json", str(again)) == code
    rerun = json.loads(again.read_text())
    assert (rerun["generated"], rerun["resumed"]) == (0, 80)
    assert len(_stored_spans(store_dir)) == len(spans)
    assert rerun["arms"] == report["arms"]


GENERIC_ROWS = [
    {"id": "order", "prompt": "Return the order as JSON.",
     "json_schema": {"type": "object", "required": ["id"]}},
    {"id": "weather", "messages": [{"role": "system", "content": "You call tools."},
                                   {"role": "user", "content": "Weather in Paris?"}],
     "tools": [{"name": "get_weather", "arguments": {"city": "Paris"}}]},
    {"id": "capital", "prompt": "What is the capital of France?", "reference": "Paris",
     "task": "Name the capital of France.",
     "instructions": [{"id": "punctuation:no_comma", "kwargs": {}}]},
]


def test_replay_of_a_generic_dataset_through_a_running_collector(checkpoints,
                                                                  tmp_path: Path) -> None:
    dataset = tmp_path / "generic.jsonl"
    dataset.write_text("".join(json.dumps(row) + "\n" for row in GENERIC_ROWS))
    with running_collector(tmp_path / "collector") as collector:
        code = _replay(checkpoints, "--dataset", str(dataset), "--sweep", "max_new_tokens=4,6",
                       "--collector", collector.url, "--state-dir", str(tmp_path / "state"),
                       "--json", str(tmp_path / "report.json"))
        report = json.loads((tmp_path / "report.json").read_text())
    assert report["configurations"] == ["max_new_tokens=4", "max_new_tokens=6"]
    # without -o the HTML report is written anyway, next to the run's manifest
    pages = sorted((tmp_path / "state" / "replay").glob("*.html"))
    assert len(pages) == 1 and pages[0].with_suffix(".jsonl").is_file()
    assert "Verdict:" in pages[0].read_text()
    assert [(a["configuration"], a["variant"], a["answers"]) for a in report["arms"]] == [
        ("max_new_tokens=4", "base", 3), ("max_new_tokens=4", "candidate", 3),
        ("max_new_tokens=6", "base", 3), ("max_new_tokens=6", "candidate", 3)]
    for arm in report["arms"]:  # one trial each; every expectation found its evaluator
        assert {"prompt_strict", "json_validation", "tool_selection",
                "task_completion"} <= set(arm["metrics"])
        assert all(len(m["trials"]) == 1 for m in arm["metrics"].values())

    store = collector.open_store()
    try:
        spans = store.query(
            f"SELECT Cohort, SpanAttributes['{A.GEN_AI_REQUEST_MAX_TOKENS}'] AS max_tokens, "
            f"SpanAttributes['{A.CANARY_EXPECT_JSON_SCHEMA}'] AS schema, "
            f"SpanAttributes['{A.CANARY_EXPECT_TOOLS}'] AS tools, "
            f"SpanAttributes['{A.CANARY_EXPECT_REFERENCE}'] AS reference, "
            f"SpanAttributes['{A.GEN_AI_INPUT_MESSAGES}'] AS input "
            "FROM canarytrace.otel_traces WHERE PairId != '' ORDER BY Cohort")
    finally:
        store.close()
    assert [(s["Cohort"], s["max_tokens"]) for s in spans] == (
        [("max_new_tokens=4", "4")] * 6 + [("max_new_tokens=6", "6")] * 6)
    assert sum(json.loads(s["schema"] or "null") == GENERIC_ROWS[0]["json_schema"]
               for s in spans) == 4
    assert sum(json.loads(s["tools"] or "null") == GENERIC_ROWS[1]["tools"] for s in spans) == 4
    assert sum(s["reference"] == "Paris" for s in spans) == 4
    system = [json.loads(s["input"]) for s in spans if s["tools"]]
    assert all(m[0]["role"] == "system" and len(m) == 2 for m in system)

    assert report["verdict"] is not None, report
    assert code == {"PROMOTE": 0, "HOLD": 10, "ROLLBACK": 11}[report["verdict"]["verdict"]]
    assert {m["slice"] for m in report["verdict"]["metrics"]} >= {
        "cohort=max_new_tokens=4", "cohort=max_new_tokens=6"}


def test_a_bad_dataset_row_is_one_line_naming_it(checkpoints, tmp_path: Path) -> None:
    dataset = tmp_path / "rows.jsonl"
    dataset.write_text('{"prompt": "Say hi.", "json_schema": {"type": "object"}}\n'
                       '{"prompt": "Say bye.", "instruction_id_list": ["punctuation:no_comma"],'
                       ' "kwargs": [{"num_words": 3}]}\n')
    done = subprocess.run(
        [sys.executable, "-m", "canarytrace.cli", "replay", "--dataset", str(dataset),
         "--base", f"hf:{checkpoints['base']}", "--candidate", f"hf:{checkpoints['candidate']}",
         "--store", f"chdb://{tmp_path / 'db'}"],
        capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert f"{dataset}:2:" in lines[0] and "num_words" in lines[0]
    assert not (tmp_path / "db").exists() and not (tmp_path / "replay").exists()
