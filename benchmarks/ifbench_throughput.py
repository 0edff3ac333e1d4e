"""IFBench checker throughput on one thread: responses scored per second, for the README.

    python benchmarks/ifbench_throughput.py [--rounds 5]

Scores IFBench's 290 sample responses (``../shared/conformance/ifbench``) strict and loose
(up to eight readings each) in two ways: each response against its own prompt's
instructions, as ``canarytrace score`` does, and each response against all 57 checkers
(every distinct (id, kwargs) of the test set, one checker each). Prints the median of
``--rounds`` timed passes after one warm-up pass.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import time
from collections.abc import Sequence
from pathlib import Path

from canarytrace.evaluators import ifbench_utils
from canarytrace.evaluators.instructions import (
    Instruction,
    UnknownInstruction,
    build_instruction,
    follows_loose,
    follows_strict,
)

CONFORMANCE = Path(__file__).resolve().parents[1].parent / "shared" / "conformance" / "ifbench"


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def _checkers(row: dict) -> list[Instruction]:
    built = []
    for instruction_id, kwargs in zip(row["instruction_id_list"], row["kwargs"], strict=True):
        with contextlib.suppress(UnknownInstruction):  # words:start_verb is unchecked
            built.append(build_instruction(instruction_id, kwargs))
    return built


def _score(pairs: Sequence[tuple[str, Sequence[Instruction]]]) -> float:
    # Start cold: the text caches may only help within a pass, as within one span.
    ifbench_utils.word_tokens.cache_clear()
    ifbench_utils.split_sentences.cache_clear()
    started = time.perf_counter()
    for response, checkers in pairs:
        for checker in checkers:
            follows_strict(checker, response)
            follows_loose(checker, response)
    return len(pairs) / (time.perf_counter() - started)


def _median_rate(pairs: Sequence[tuple[str, Sequence[Instruction]]], rounds: int) -> float:
    _score(pairs)  # warm-up: tokenizers, model tables, stopwords
    return statistics.median(_score(pairs) for _ in range(rounds))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    if not CONFORMANCE.is_dir():
        raise SystemExit(f"IFBench conformance data not found at {CONFORMANCE}")
    rows = {row["key"]: row for row in _jsonl(CONFORMANCE / "input_data.jsonl")}
    responses = _jsonl(CONFORMANCE / "responses.jsonl")

    own = [(r["response"], _checkers(rows[r["key"]])) for r in responses]
    checks = sum(len(checkers) for _, checkers in own)
    rate = _median_rate(own, args.rounds)
    print(f"own instructions  {rate:>8,.0f} responses/s  "
          f"({len(own)} responses, {checks} checks, strict + loose)")

    distinct: dict[str, Instruction] = {}
    for row in rows.values():
        for checker in _checkers(row):
            distinct.setdefault(checker.id, checker)
    every = [(r["response"], list(distinct.values())) for r in responses]
    rate = _median_rate(every, args.rounds)
    print(f"all {len(distinct)} checkers   {rate:>8,.0f} responses/s  "
          f"({rate * len(distinct):,.0f} checks/s, strict + loose)")


if __name__ == "__main__":
    main()
