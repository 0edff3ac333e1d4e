"""``canarytrace score``: score IFEval-format responses offline; JSONL verdicts and accuracies.

Dataset rows are ``{"key", "prompt", "instruction_id_list", "kwargs"}`` (IFEval's and
IFBench's ids alike); response rows ``{"prompt", "response"}`` are matched to the dataset
by prompt text, as IFEval does (rows that carry ``"key"`` instead of ``"prompt"`` are
matched by key). Every input is read and validated before anything is written.
An instruction no checker covers (an unknown id, or ``words:start_verb``, which cannot be
checked offline) is "unchecked": its verdicts are null, it is counted, and it is left out
of the accuracies (prompt-level ones count only prompts whose every instruction is checked).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from rich.console import Console
from rich.table import Table

from canarytrace.cli import CommandError, CommandParser
from canarytrace.evaluators.instructions import (
    Instruction,
    InstructionError,
    UnknownInstruction,
    build_instruction,
    follows_loose,
    follows_strict,
)


@dataclass(frozen=True)
class Prompt:
    """One dataset row with its instructions built (None for one that is unchecked)."""

    key: Any
    prompt: str
    instruction_ids: list[str]
    instructions: list[Instruction | None]
    line: int


@dataclass(frozen=True)
class Scored:
    key: Any
    instruction_ids: list[str]
    strict: list[bool | None]
    loose: list[bool | None]

    def to_json(self) -> str:
        return json.dumps({"key": self.key, "instruction_id_list": self.instruction_ids,
                           "strict": self.strict, "loose": self.loose})


def _parser() -> argparse.ArgumentParser:
    parser = CommandParser(prog="canarytrace score", description=(
        "Score IFEval-format responses (IFEval and IFBench instructions) offline: JSONL "
        "verdicts and the four IFEval accuracies."))
    parser.add_argument("--dataset", required=True, type=Path,
                        help="JSONL of {key, prompt, instruction_id_list, kwargs}")
    parser.add_argument("--responses", required=True, type=Path,
                        help="JSONL of {prompt, response} (or {key, response})")
    parser.add_argument("-o", "--output", type=Path,
                        help="write the JSONL verdicts here instead of stdout")
    return parser


# --- reading ----------------------------------------------------------------

def read_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-blank line; CommandError names file and line."""
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise CommandError(f"{path}: cannot read: {exc.strerror}") from None
    with handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                row = json.loads(raw.decode("utf-8"))
            except UnicodeDecodeError:
                raise CommandError(f"{path}:{number}: not valid UTF-8") from None
            except ValueError as exc:
                raise CommandError(f"{path}:{number}: invalid JSON: {exc}") from None
            if not isinstance(row, dict):
                raise CommandError(f"{path}:{number}: expected a JSON object")
            yield number, row


def _field(row: dict[str, Any], name: str, kind: type, where: str) -> Any:
    value = row.get(name)
    if not isinstance(value, kind):
        raise CommandError(f"{where}: '{name}' must be a {kind.__name__}, got {value!r}")
    return value


def _key(row: dict[str, Any], where: str) -> int | str:
    key = row.get("key")
    if isinstance(key, bool) or not isinstance(key, (int, str)):
        raise CommandError(f"{where}: 'key' must be an integer or a string, got {key!r}")
    return key


def _instructions(ids: list[Any], kwargs: list[Any], where: str) -> list[Instruction | None]:
    if len(kwargs) != len(ids):
        raise CommandError(f"{where}: 'kwargs' has {len(kwargs)} entries for {len(ids)} "
                           "instruction ids")
    built = []
    for instruction_id, arguments in zip(ids, kwargs, strict=True):
        if not isinstance(instruction_id, str) or not isinstance(arguments, (dict, type(None))):
            raise CommandError(f"{where}: instruction ids must be strings and kwargs objects")
        try:
            built.append(build_instruction(instruction_id, arguments))
        except UnknownInstruction:
            built.append(None)  # unchecked: counted, never scored
        except InstructionError as exc:
            raise CommandError(f"{where}: {exc}") from None
    return built


def _dataset_row(row: dict[str, Any], where: str, number: int) -> Prompt:
    ids = _field(row, "instruction_id_list", list, where)
    instructions = _instructions(ids, _field(row, "kwargs", list, where), where)
    return Prompt(_key(row, where), _field(row, "prompt", str, where), ids, instructions, number)


def read_dataset(path: Path) -> list[Prompt]:
    return [_dataset_row(row, f"{path}:{number}", number) for number, row in read_jsonl(path)]


def read_responses(path: Path) -> tuple[dict[str, str], dict[Any, str]]:
    """Responses by prompt text and by key (a later row for the same prompt wins)."""
    by_prompt: dict[str, str] = {}
    by_key: dict[Any, str] = {}
    for number, row in read_jsonl(path):
        where = f"{path}:{number}"
        response = _field(row, "response", str, where)
        if isinstance(row.get("prompt"), str):
            by_prompt[row["prompt"]] = response
        elif "key" in row:
            by_key[_key(row, where)] = response
        else:
            raise CommandError(f"{where}: needs a string 'prompt' (or a 'key') to match")
    return by_prompt, by_key


def match_responses(prompts: list[Prompt], responses: tuple[dict[str, str], dict[Any, str]],
                    dataset: Path) -> list[str]:
    by_prompt, by_key = responses
    matched = []
    for prompt in prompts:
        response = by_prompt.get(prompt.prompt, by_key.get(prompt.key))
        if response is None:
            raise CommandError(f"{dataset}:{prompt.line}: no response for key {prompt.key!r} "
                               "(matched by prompt text, or by key)")
        matched.append(response)
    return matched


# --- scoring and reporting ---------------------------------------------------

def score(prompt: Prompt, response: str) -> Scored:
    instructions = prompt.instructions
    return Scored(
        key=prompt.key, instruction_ids=prompt.instruction_ids,
        strict=[None if i is None else follows_strict(i, response) for i in instructions],
        loose=[None if i is None else follows_loose(i, response) for i in instructions])


def accuracies(results: list[Scored]) -> dict[str, tuple[int, int]]:
    """IFEval's four accuracies as (followed, total) counts, over checked instructions only."""
    counts = {}
    for mode in ("strict", "loose"):
        verdicts = [getattr(result, mode) for result in results]
        whole = [v for v in verdicts if None not in v]  # prompts with every instruction checked
        checked = [flag for v in verdicts for flag in v if flag is not None]
        counts[f"prompt-level {mode}"] = (sum(all(v) for v in whole), len(whole))
        counts[f"instruction-level {mode}"] = (sum(checked), len(checked))
    return counts


def unchecked(results: list[Scored]) -> Counter[str]:
    """How many times each instruction id went unchecked."""
    return Counter(instruction_id for result in results
                   for instruction_id, verdict in zip(result.instruction_ids, result.strict,
                                                      strict=True) if verdict is None)


def print_summary(counts: dict[str, tuple[int, int]], console: Console,
                  skipped: Counter[str] | None = None) -> None:
    table = Table(title="IFEval accuracy")
    table.add_column("metric")
    table.add_column("accuracy", justify="right")
    table.add_column("followed", justify="right")
    for name in ("prompt-level strict", "instruction-level strict",
                 "prompt-level loose", "instruction-level loose"):
        followed, total = counts[name]
        table.add_row(name, f"{followed / total:.4f}" if total else "-", f"{followed}/{total}")
    console.print(table)
    if skipped:
        console.print(f"{sum(skipped.values())} instructions unchecked, not counted: "
                      + ", ".join(f"{name} x{n}" for name, n in sorted(skipped.items())),
                      soft_wrap=True, markup=False, highlight=False)


def _write(results: list[Scored], out: TextIO) -> None:
    for result in results:
        out.write(result.to_json() + "\n")


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    prompts = read_dataset(args.dataset)
    responses = match_responses(prompts, read_responses(args.responses), args.dataset)
    results = [score(p, r) for p, r in zip(prompts, responses, strict=True)]
    if args.output is None:
        _write(results, sys.stdout)
        sys.stdout.flush()
        console = Console(stderr=True)
    else:
        try:
            with args.output.open("w", encoding="utf-8") as out:
                _write(results, out)
        except OSError as exc:
            raise CommandError(f"{args.output}: cannot write: {exc.strerror}") from None
        console = Console()
    print_summary(accuracies(results), console, unchecked(results))
    return 0
