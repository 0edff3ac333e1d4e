"""``canarytrace score``: IFEval conformance on GPT-4's responses, output formats, bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from canarytrace import cli

CANARYTRACE = [str(Path(sys.executable).with_name("canarytrace"))]  # the installed command
CONFORMANCE = Path(__file__).resolve().parents[2].parent / "shared" / "conformance" / "ifeval"

# The reference's published summary. Two of its 834 verdicts (keys 1122 and 1129, a
# letter_frequency asking for "#" and "!") came from a random letter it drew instead;
# its run happened to pass one of them. Counting the character asked for passes both
# (the responses hold 4 "#" and 10 "!"), so each figure is one prompt / one instruction
# above the summary.
REFERENCE_SUMMARY = {
    "prompt-level strict": 0.7689, "instruction-level strict": 0.8357,
    "prompt-level loose": 0.7948, "instruction-level loose": 0.8549,
}
OURS = {
    "prompt-level strict": (417, 541), "instruction-level strict": (698, 834),
    "prompt-level loose": (431, 541), "instruction-level loose": (714, 834),
}


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


@pytest.mark.slow
def test_gpt4_conformance_all_834_strict_and_loose_verdicts():
    if not CONFORMANCE.is_dir():
        pytest.skip(f"IFEval conformance data not found at {CONFORMANCE}")
    run = subprocess.run(
        [*CANARYTRACE, "score",
         "--dataset", str(CONFORMANCE / "input_data.jsonl"),
         "--responses", str(CONFORMANCE / "gpt4_responses.jsonl")],
        capture_output=True, text=True, timeout=240, check=False)
    assert run.returncode == 0, run.stderr

    ours = {row["key"]: row for row in (json.loads(line) for line in run.stdout.splitlines())}
    expected = _jsonl(CONFORMANCE / "gpt4_expected.jsonl")
    assert len(ours) == len(expected) == 541
    compared = {"strict": 0, "loose": 0}
    for want in expected:
        got = ours[want["key"]]
        assert got["instruction_id_list"] == want["instruction_id_list"]
        for mode in ("strict", "loose"):
            assert len(got[mode]) == len(want[mode])
            for index, verdict in enumerate(want[mode]):
                assert isinstance(got[mode][index], bool)
                if verdict is None:  # the reference drew a random letter; we count the one asked
                    assert got[mode][index] is True, (want["key"], mode)
                    continue
                where = (want["key"], want["instruction_id_list"][index], mode)
                assert got[mode][index] == verdict, where
            compared[mode] += len(want[mode])
    assert compared == {"strict": 834, "loose": 834}

    for name, (followed, total) in OURS.items():
        figure = f"{followed / total:.4f}"
        line = next(line for line in run.stderr.splitlines() if name in line)
        assert figure in line and f"{followed}/{total}" in line
        assert followed / total - REFERENCE_SUMMARY[name] == pytest.approx(1 / total, abs=5e-5)


# --- small files: output, matching, errors ------------------------------------

DATASET = [
    {"key": 1, "prompt": "Write a haiku without commas.",
     "instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]},
    {"key": 2, "prompt": "Answer in at least 5 words, all lowercase.",
     "instruction_id_list": ["length_constraints:number_words", "change_case:english_lowercase"],
     "kwargs": [{"num_words": 5, "relation": "at least"}, {}]},
]
RESPONSES = [  # in another order than the dataset, matched by prompt text
    {"prompt": "Answer in at least 5 words, all lowercase.",
     "response": "Sure:\nthe new model answers faster and costs less than the old one."},
    {"prompt": "Write a haiku without commas.", "response": "Old pond, frog jumps in"},
]


def _write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join(
        (row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows),
        encoding="utf-8")
    return path


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    return (_write_jsonl(tmp_path / "dataset.jsonl", DATASET),
            _write_jsonl(tmp_path / "responses.jsonl", RESPONSES))


def test_scores_to_stdout_with_the_summary_on_stderr(files, capsys):
    dataset, responses = files
    assert cli.main(["score", "--dataset", str(dataset), "--responses", str(responses)]) == 0
    out, err = capsys.readouterr()
    assert [json.loads(line) for line in out.splitlines()] == [
        {"key": 1, "instruction_id_list": ["punctuation:no_comma"],
         "strict": [False], "loose": [False]},
        {"key": 2, "instruction_id_list": DATASET[1]["instruction_id_list"],
         "strict": [True, False], "loose": [True, True]},
    ]
    summary = {line.split("│")[1].strip(): line.split("│")[2].strip()
               for line in err.splitlines() if line.count("│") == 4}
    assert summary == {"prompt-level strict": "0.0000", "instruction-level strict": "0.3333",
                       "prompt-level loose": "0.5000", "instruction-level loose": "0.6667"}


def test_output_file_gets_the_jsonl_and_stdout_the_summary(files, tmp_path, capsys):
    dataset, responses = files
    out_file = tmp_path / "verdicts.jsonl"
    code = cli.main(["score", "--dataset", str(dataset), "--responses", str(responses),
                     "-o", str(out_file)])
    assert code == 0
    assert [row["key"] for row in _jsonl(out_file)] == [1, 2]
    out, err = capsys.readouterr()
    assert "prompt-level loose" in out and "0.5000" in out
    assert err == ""


def test_responses_can_be_matched_by_key(files, tmp_path, capsys):
    dataset, _ = files
    by_key = _write_jsonl(tmp_path / "by_key.jsonl", [
        {"key": 2, "response": "the new model answers faster than before"},
        {"key": 1, "response": "Old pond frog jumps in"},
    ])
    assert cli.main(["score", "--dataset", str(dataset), "--responses", str(by_key)]) == 0
    verdicts = [json.loads(line)["strict"] for line in capsys.readouterr().out.splitlines()]
    assert verdicts == [[True], [True, True]]


def _fails(capsys, argv: list[str]) -> str:
    assert cli.main(["score", *argv]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err
    return err.strip()


BAD_DATASET_ROWS = [
    ("{not json", "invalid JSON"),
    ('["a", "list"]', "expected a JSON object"),
    (json.dumps({**DATASET[1], "kwargs": [{"num_words": 5, "relation": "more than"}, {}]}),
     "relation must be 'less than' or 'at least'"),
    (json.dumps({**DATASET[1], "kwargs": [{}]}), "'kwargs' has 1 entries for 2 instruction ids"),
    (json.dumps({k: v for k, v in DATASET[0].items() if k != "prompt"}), "'prompt' must be a str"),
    (json.dumps({**DATASET[0], "key": [1]}), "'key' must be an integer or a string"),
]


@pytest.mark.parametrize(("bad_row", "message"), BAD_DATASET_ROWS,
                         ids=[message for _, message in BAD_DATASET_ROWS])
def test_a_bad_dataset_row_names_file_and_line_and_writes_nothing(
        files, tmp_path, capsys, bad_row, message):
    _, responses = files
    dataset = _write_jsonl(tmp_path / "bad_dataset.jsonl", [DATASET[0], "", bad_row])
    out_file = tmp_path / "verdicts.jsonl"
    err = _fails(capsys, ["--dataset", str(dataset), "--responses", str(responses),
                          "-o", str(out_file)])
    assert err.startswith(f"canarytrace score: {dataset}:3: ")
    assert message in err
    assert not out_file.exists()


def test_an_unknown_instruction_id_is_unchecked_and_counted_not_refused(files, tmp_path, capsys):
    _, responses = files
    dataset = _write_jsonl(tmp_path / "unknown.jsonl", [
        {**DATASET[0], "instruction_id_list": ["style:friendly_tone"]},
        {**DATASET[1], "instruction_id_list": ["length_constraints:number_words",
                                               "style:friendly_tone"]},
    ])
    assert cli.main(["score", "--dataset", str(dataset), "--responses", str(responses)]) == 0
    out, err = capsys.readouterr()
    rows = [json.loads(line) for line in out.splitlines()]
    assert [(row["strict"], row["loose"]) for row in rows] == [
        ([None], [None]), ([True, None], [True, None])]
    summary = {line.split("│")[1].strip(): line.split("│")[3].strip()
               for line in err.splitlines() if line.count("│") == 4}
    # instruction level counts the one checked instruction; no prompt is fully checked
    assert summary["instruction-level strict"] == "1/1"
    assert summary["prompt-level strict"] == "0/0"
    assert "2 instructions unchecked" in err and "style:friendly_tone x2" in err


def test_a_bad_responses_row_names_file_and_line(files, tmp_path, capsys):
    dataset, _ = files
    responses = _write_jsonl(tmp_path / "bad_responses.jsonl",
                             [RESPONSES[0], {"prompt": "Write a haiku without commas."}])
    err = _fails(capsys, ["--dataset", str(dataset), "--responses", str(responses)])
    assert f"{responses}:2: 'response' must be a str" in err


def test_invalid_utf8_names_the_line(files, tmp_path, capsys):
    dataset, _ = files
    responses = tmp_path / "latin1.jsonl"
    responses.write_bytes(json.dumps(RESPONSES[0]).encode() + b"\n" + b'{"prompt": "caf\xe9"}\n')
    err = _fails(capsys, ["--dataset", str(dataset), "--responses", str(responses)])
    assert f"{responses}:2: not valid UTF-8" in err


def test_a_prompt_without_a_response_names_the_dataset_line(files, tmp_path, capsys):
    dataset, _ = files
    responses = _write_jsonl(tmp_path / "partial.jsonl", [RESPONSES[1]])
    err = _fails(capsys, ["--dataset", str(dataset), "--responses", str(responses)])
    assert f"{dataset}:2: no response for key 2" in err


def test_missing_file_and_missing_option_are_one_line_errors(files, tmp_path, capsys):
    dataset, _ = files
    err = _fails(capsys, ["--dataset", str(dataset), "--responses", str(tmp_path / "nope.jsonl")])
    assert "nope.jsonl: cannot read" in err
    err = _fails(capsys, ["--dataset", str(dataset)])
    assert "--responses" in err


def test_the_installed_command_reports_errors_on_one_line(tmp_path):
    dataset = _write_jsonl(tmp_path / "dataset.jsonl", ["{broken"])
    run = subprocess.run(
        [*CANARYTRACE, "score", "--dataset", str(dataset),
         "--responses", str(dataset)],
        capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 2
    assert run.stderr.strip().splitlines() == [
        run.stderr.strip()] and f"{dataset}:1: invalid JSON" in run.stderr
