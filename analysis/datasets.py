"""Replay datasets: IFEval JSONL, generic ``expect`` JSONL, the built-in ``ifeval``/``ifbench``.

An IFEval row is ``{"key", "prompt", "instruction_id_list", "kwargs"}``. A generic row has
``prompt`` (text) or ``messages`` (``[{"role", "content"}]``), an optional ``id``/``key``, and
any of the expectations ``ct.expect`` takes: ``instructions``, ``json_schema``, ``tools``,
``reference``, ``task``. Every row is checked when the file is read (JSON Schema for its
shape, the IFEval checkers for instruction arguments, the metaschema for ``json_schema``),
so a bad row is one error naming its line before any model runs.

``--dataset ifeval`` is ``ifeval_input_data.jsonl`` next to this module: the 541 prompts
of the public IFEval release (google-research/instruction_following_eval, Apache-2.0).
``--dataset ifbench`` is ``ifbench_input_data.jsonl``: IFBench's 300 test prompts
(allenai/IFBench, data ODC-BY-1.0), in the same shape. IFEval-format rows must name
instructions a checker knows; IFBench's ``words:start_verb`` is accepted and left unchecked.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema

from canarytrace.evaluators.instructions import (
    InstructionError,
    UnknownInstruction,
    UnverifiableInstruction,
    build_instruction,
)

BUILTIN_DATASETS: Mapping[str, str] = {"ifeval": "ifeval_input_data.jsonl",
                                       "ifbench": "ifbench_input_data.jsonl"}
"""Names ``--dataset`` accepts besides a path, and their file next to this module."""

EXPECTATION_FIELDS = ("instructions", "json_schema", "tools", "reference", "task")
"""Generic-row fields passed to ``ct.expect`` as they are."""

_KEY = {"type": ["string", "integer"]}
_INSTRUCTION = {"oneOf": [
    {"type": "string", "minLength": 1},
    {"type": "object", "required": ["id"],
     "properties": {"id": {"type": "string", "minLength": 1},
                    "kwargs": {"type": ["object", "null"]}}},
]}
_TOOL = {"oneOf": [
    {"type": "string", "minLength": 1},
    {"type": "object", "required": ["name"],
     "properties": {"name": {"type": "string", "minLength": 1},
                    "arguments": {"type": "object"}}},
]}
_MESSAGE = {"type": "object", "required": ["role", "content"],
            "properties": {"role": {"type": "string", "minLength": 1},
                           "content": {"type": "string"}}}

IFEVAL_ROW_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["prompt", "instruction_id_list", "kwargs"],
    "properties": {
        "key": _KEY,
        "prompt": {"type": "string", "minLength": 1},
        "instruction_id_list": {"type": "array", "items": {"type": "string", "minLength": 1}},
        "kwargs": {"type": "array", "items": {"type": ["object", "null"]}},
    },
}
GENERIC_ROW_SCHEMA: dict[str, Any] = {
    "type": "object",
    "oneOf": [{"required": ["prompt"], "not": {"required": ["messages"]}},
              {"required": ["messages"], "not": {"required": ["prompt"]}}],
    "properties": {
        "id": _KEY,
        "key": _KEY,
        "prompt": {"type": "string", "minLength": 1},
        "messages": {"type": "array", "minItems": 1, "items": _MESSAGE},
        "instructions": {"type": "array", "items": _INSTRUCTION},
        "json_schema": {"type": ["object", "boolean"]},
        "tools": {"type": "array", "items": _TOOL},
        "reference": {"type": "string"},
        "task": {"type": "string"},
    },
}


class DatasetError(ValueError):
    """A dataset that cannot be read, or a row that is not valid (the message names the line)."""


@dataclass(frozen=True)
class Example:
    """One prompt to replay and what its answer must satisfy (``ct.expect`` keyword arguments)."""

    key: str
    messages: tuple[Mapping[str, str], ...]
    expectations: Mapping[str, Any]
    line: int

    @property
    def instructions(self) -> list[dict[str, Any]]:
        """The ``{"id", "kwargs"}`` instructions the answer is checked against ([] if none)."""
        return list(self.expectations.get("instructions") or [])


@dataclass(frozen=True)
class Dataset:
    """A dataset's examples, where they came from, and a digest of the file's bytes."""

    name: str
    source: str
    digest: str
    examples: tuple[Example, ...]


def load_dataset(spec: str, limit: int | None = None) -> Dataset:
    """Read ``spec`` (a built-in name or a JSONL path); the first ``limit`` examples if given."""
    if limit is not None and limit < 1:
        raise DatasetError(f"--limit must be at least 1, got {limit}")
    name, source, data = _read(spec)
    examples: list[Example] = []
    keys: dict[str, int] = {}
    for line, row in _rows(source, data):
        example = parse_row(row, line, source)
        if example.key in keys:
            raise DatasetError(f"{source}:{line}: duplicate key {example.key!r} "
                               f"(first on line {keys[example.key]})")
        keys[example.key] = line
        examples.append(example)
        if limit is not None and len(examples) == limit:
            break
    if not examples:
        raise DatasetError(f"{source}: the dataset has no rows")
    return Dataset(name, source, hashlib.sha256(data).hexdigest(), tuple(examples))


def _read(spec: str) -> tuple[str, str, bytes]:
    """(name, source shown in errors, bytes) of a built-in dataset or a file."""
    if spec in BUILTIN_DATASETS:
        resource = resources.files("canarytrace.analysis") / BUILTIN_DATASETS[spec]
        return spec, f"built-in dataset {spec!r}", resource.read_bytes()
    path = Path(spec)
    try:
        data = path.read_bytes()
    except OSError as exc:
        known = ", ".join(BUILTIN_DATASETS)
        raise DatasetError(f"{spec}: cannot read: {exc.strerror or exc} "
                           f"(built-in datasets: {known})") from None
    return path.stem, str(path), data


def _rows(source: str, data: bytes) -> list[tuple[int, Any]]:
    rows = []
    for line, raw in enumerate(data.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            rows.append((line, json.loads(raw.decode("utf-8"))))
        except UnicodeDecodeError:
            raise DatasetError(f"{source}:{line}: not valid UTF-8") from None
        except ValueError as exc:
            raise DatasetError(f"{source}:{line}: invalid JSON: {exc}") from None
    return rows


def parse_row(row: Any, line: int, source: str = "dataset") -> Example:
    """One JSONL row as an Example; DatasetError names ``source`` and ``line``."""
    where = f"{source}:{line}"
    if not isinstance(row, dict):
        raise DatasetError(f"{where}: expected a JSON object, got {type(row).__name__}")
    if "instruction_id_list" in row:
        _validate(IFEVAL_ROW_SCHEMA, row, where)
        return _ifeval_example(row, line, where)
    _validate(GENERIC_ROW_SCHEMA, row, where)
    return _generic_example(row, line, where)


def _validate(schema: Mapping[str, Any], row: Mapping[str, Any], where: str) -> None:
    error = jsonschema.exceptions.best_match(
        jsonschema.Draft202012Validator(schema).iter_errors(row))
    if error is None:
        return
    if error.validator == "oneOf" and not error.absolute_path:
        raise DatasetError(f"{where}: a row needs exactly one of 'prompt' (text) or 'messages'")
    field = "/".join(str(part) for part in error.absolute_path)
    raise DatasetError(f"{where}: {field + ': ' if field else ''}{error.message}")


def _ifeval_example(row: Mapping[str, Any], line: int, where: str) -> Example:
    ids, kwargs = row["instruction_id_list"], row["kwargs"]
    if len(ids) != len(kwargs):
        raise DatasetError(f"{where}: 'kwargs' has {len(kwargs)} entries for {len(ids)} "
                           "instruction ids")
    instructions = [{"id": i, "kwargs": k or {}} for i, k in zip(ids, kwargs, strict=True)]
    for item in instructions:
        _check_instruction(item, where, known_only=True)
    messages = ({"role": "user", "content": row["prompt"]},)
    return Example(_key(row, line), messages, {"instructions": instructions}, line)


def _generic_example(row: Mapping[str, Any], line: int, where: str) -> Example:
    expectations = {name: row[name] for name in EXPECTATION_FIELDS if name in row}
    for item in expectations.get("instructions", []):
        if isinstance(item, dict):
            _check_instruction(item, where, known_only=False)
    if "json_schema" in expectations:
        try:
            jsonschema.validators.validator_for(row["json_schema"]).check_schema(
                row["json_schema"])
        except jsonschema.SchemaError as exc:
            raise DatasetError(f"{where}: json_schema is not a valid JSON Schema: "
                               f"{exc.message}") from None
    if "messages" in row:
        messages = tuple({"role": m["role"], "content": m["content"]} for m in row["messages"])
    else:
        messages = ({"role": "user", "content": row["prompt"]},)
    return Example(_key(row, line), messages, expectations, line)


def _check_instruction(item: Mapping[str, Any], where: str, known_only: bool) -> None:
    """Build the checker to catch bad arguments now; unknown ids only if ``known_only``."""
    try:
        build_instruction(item["id"], item.get("kwargs") or {})
    except UnverifiableInstruction:
        pass  # known, left unchecked by the evaluator
    except UnknownInstruction as exc:
        if known_only:
            raise DatasetError(f"{where}: {exc}") from None
    except InstructionError as exc:
        raise DatasetError(f"{where}: {exc}") from None


def _key(row: Mapping[str, Any], line: int) -> str:
    """The row's ``key`` (or ``id``) as text, else its line number."""
    for name in ("key", "id"):
        if name in row:
            return str(row[name])
    return f"line-{line}"


def prompt_text(messages: Sequence[Mapping[str, str]]) -> str:
    """The prompt for a model without a chat template: the messages' contents, in order."""
    return "\n\n".join(m["content"] for m in messages)
