"""Replay datasets: the built-in IFEval prompts, IFEval and generic JSONL, and bad rows."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from canarytrace.analysis.datasets import DatasetError, load_dataset

CONFORMANCE = Path(__file__).resolve().parents[3] / "shared" / "conformance" / "ifeval"


def _write(tmp_path: Path, *rows: object) -> Path:
    path = tmp_path / "rows.jsonl"
    path.write_text("".join((row if isinstance(row, str) else json.dumps(row)) + "\n"
                            for row in rows), encoding="utf-8")
    return path


def test_builtin_ifeval_is_the_541_public_prompts() -> None:
    dataset = load_dataset("ifeval")
    assert dataset.name == "ifeval" and len(dataset.examples) == 541
    first = dataset.examples[0]
    assert first.key == "1000"
    assert first.messages[0]["role"] == "user"
    assert first.messages[0]["content"].startswith("Write a 300+ word summary")
    assert first.instructions == [
        {"id": "punctuation:no_comma", "kwargs": {}},
        {"id": "detectable_format:number_highlighted_sections", "kwargs": {"num_highlights": 3}},
        {"id": "length_constraints:number_words",
         "kwargs": {"relation": "at least", "num_words": 300}}]
    assert len({e.key for e in dataset.examples}) == 541
    shared = CONFORMANCE / "input_data.jsonl"
    if shared.exists():  # the packaged file is a byte-for-byte copy of the conformance data
        assert dataset.digest == hashlib.sha256(shared.read_bytes()).hexdigest()


def test_limit_takes_the_first_rows_and_keeps_the_file_digest() -> None:
    full, sliced = load_dataset("ifeval"), load_dataset("ifeval", limit=20)
    assert sliced.examples == full.examples[:20]
    assert sliced.digest == full.digest
    with pytest.raises(DatasetError, match="--limit"):
        load_dataset("ifeval", limit=0)


def test_generic_rows_carry_their_expectations(tmp_path: Path) -> None:
    schema = {"type": "object", "required": ["id"]}
    path = _write(
        tmp_path,
        {"id": "a", "prompt": "Give JSON.", "json_schema": schema},
        {"key": 7, "messages": [{"role": "system", "content": "Be brief."},
                                {"role": "user", "content": "Weather?"}],
         "tools": ["get_weather", {"name": "lookup", "arguments": {"q": "x"}}]},
        "",
        {"prompt": "Capital of France?", "reference": "Paris", "task": "name it",
         "instructions": ["answer in one word", {"id": "punctuation:no_comma"}]},
    )
    dataset = load_dataset(str(path))
    assert dataset.name == "rows"
    a, b, c = dataset.examples
    assert (a.key, a.line, a.expectations) == ("a", 1, {"json_schema": schema})
    assert b.key == "7" and [m["role"] for m in b.messages] == ["system", "user"]
    assert b.expectations["tools"][1] == {"name": "lookup", "arguments": {"q": "x"}}
    assert c.key == "line-4" and c.line == 4
    assert c.expectations == {"instructions": ["answer in one word",
                                               {"id": "punctuation:no_comma"}],
                              "reference": "Paris", "task": "name it"}


@pytest.mark.parametrize(("row", "message"), [
    ("{not json", "invalid JSON"),
    ("[1, 2]", "expected a JSON object"),
    ({"reference": "x"}, "exactly one of 'prompt' (text) or 'messages'"),
    ({"prompt": "x", "messages": [{"role": "user", "content": "y"}]}, "exactly one of"),
    ({"prompt": 3}, "prompt: 3 is not of type 'string'"),
    ({"messages": [{"role": "user"}]}, "'content' is a required property"),
    ({"prompt": "x", "json_schema": {"type": "nonsense"}}, "json_schema is not a valid JSON"),
    ({"prompt": "x", "tools": [{"arguments": {}}]}, "tools/0"),
    ({"prompt": "x", "instructions": [{"id": "punctuation:no_comma", "kwargs": {"n": 1}}]},
     "unexpected argument(s) n"),
    ({"prompt": "x", "instruction_id_list": ["no:such_checker"], "kwargs": [{}]},
     "no checker for instruction id 'no:such_checker'"),
    ({"prompt": "x", "instruction_id_list": ["length_constraints:number_words"],
      "kwargs": [{"relation": "at least", "num_words": "many"}]}, "num_words must be an integer"),
    ({"prompt": "x", "instruction_id_list": ["punctuation:no_comma"], "kwargs": []},
     "'kwargs' has 0 entries for 1 instruction ids"),
    ({"prompt": "x", "instruction_id_list": "punctuation:no_comma", "kwargs": [{}]},
     "instruction_id_list"),
])
def test_a_bad_row_is_one_error_naming_its_line(tmp_path: Path, row: object,
                                                message: str) -> None:
    path = _write(tmp_path, {"prompt": "fine"}, row)
    with pytest.raises(DatasetError) as caught:
        load_dataset(str(path))
    text = str(caught.value)
    assert text.startswith(f"{path}:2: ") and message in text
    assert "\n" not in text


def test_file_level_errors(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="built-in datasets: ifeval"):
        load_dataset(str(tmp_path / "missing.jsonl"))
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n")
    with pytest.raises(DatasetError, match="has no rows"):
        load_dataset(str(empty))
    binary = tmp_path / "binary.jsonl"
    binary.write_bytes(b'{"prompt": "ok"}\n{"prompt": "\xff"}\n')
    with pytest.raises(DatasetError, match=r":2: not valid UTF-8"):
        load_dataset(str(binary))
    duplicate = _write(tmp_path, {"id": "a", "prompt": "x"}, {"id": "a", "prompt": "y"})
    with pytest.raises(DatasetError, match=r":2: duplicate key 'a' \(first on line 1\)"):
        load_dataset(str(duplicate))
