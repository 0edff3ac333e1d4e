"""The evaluator registry: built-ins by name, plugins from real entry points, broken ones
skipped."""

import logging
import subprocess
import sys
import textwrap

import pytest

from canarytrace import attributes as A
from canarytrace.evaluators.json_validation import JsonValidation
from canarytrace.evaluators.registry import (
    BUILTINS,
    ENTRY_POINT_GROUP,
    EvaluatorLoadError,
    EvaluatorRegistry,
    UnknownEvaluatorError,
    default_registry,
)
from canarytrace.evaluators.task_completion import TaskCompletion
from tests.evaluators.span_builders import llm_span

BUILTIN_NAMES = {"json_validation", "instruction_adherence", "tool_selection",
                 "task_completion", "pairwise", "reward_score"}

PLUGIN_MODULE = '''
from canarytrace.evaluators.base import EvalResult, Evaluator


class ShortAnswer(Evaluator):
    name = "short_answer"
    version = "2"

    def evaluate(self, span):
        words = len(span.output_text.split())
        return EvalResult(float(words <= 5), words <= 5, "short" if words <= 5 else "long")


class Misnamed(ShortAnswer):
    name = "something_else"


class Clash(ShortAnswer):
    name = "json_validation"


NOT_AN_EVALUATOR = object()
'''


def install_plugins(root, entry_points: dict[str, str]) -> None:
    """A real installed distribution on ``root``: module, METADATA and entry_points.txt."""
    (root / "acme_evals.py").write_text(PLUGIN_MODULE)
    dist_info = root / "acme_evals-1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-evals\nVersion: 1.0\n")
    lines = [f"[{ENTRY_POINT_GROUP}]"] + [f"{k} = {v}" for k, v in entry_points.items()]
    (dist_info / "entry_points.txt").write_text("\n".join(lines) + "\n")


@pytest.fixture
def plugins(tmp_path, monkeypatch):
    install_plugins(tmp_path, {
        "short_answer": "acme_evals:ShortAnswer",
        "missing_module": "acme_nowhere:Thing",
        "not_an_evaluator": "acme_evals:NOT_AN_EVALUATOR",
        "misnamed": "acme_evals:Misnamed",
        "json_validation": "acme_evals:Clash",
    })
    monkeypatch.syspath_prepend(str(tmp_path))
    yield
    sys.modules.pop("acme_evals", None)


def test_builtins_are_registered_by_name():
    registry = EvaluatorRegistry(entry_points=[])
    assert set(registry.names()) == BUILTIN_NAMES == set(BUILTINS)
    assert registry.get("json_validation") is JsonValidation
    assert isinstance(registry.create("json_validation"), JsonValidation)
    for name in BUILTIN_NAMES:
        assert registry.get(name).name == name


def test_instruction_adherence_is_picked_up_by_import_path():
    cls = EvaluatorRegistry(entry_points=[]).get("instruction_adherence")
    assert cls.__module__ == "canarytrace.evaluators.instruction_adherence"


def test_unknown_name_is_one_clear_error():
    with pytest.raises(UnknownEvaluatorError, match="unknown evaluator 'nope' .*json_validation"):
        EvaluatorRegistry(entry_points=[]).get("nope")


def test_plugin_from_an_installed_entry_point_is_usable(plugins):
    registry = EvaluatorRegistry()
    assert "short_answer" in registry.names()
    evaluator = registry.create("short_answer")
    assert (evaluator.name, evaluator.version) == ("short_answer", "2")
    assert evaluator.evaluate(llm_span("Yes, done.")).label == "short"
    assert evaluator.evaluate(llm_span("This answer rambles on far too long")).passed is False


def test_broken_plugins_are_reported_once_and_skipped(plugins, caplog):
    caplog.set_level(logging.WARNING, logger="canarytrace.evaluators")
    registry = EvaluatorRegistry()
    for _ in range(2):
        available = registry.available()
    assert set(available) == BUILTIN_NAMES | {"short_answer"}
    assert available["json_validation"] is JsonValidation
    problems = dict(line.split(": ", 1) for line in registry.problems)
    assert set(problems) == {"evaluator 'missing_module'", "evaluator 'not_an_evaluator'",
                             "evaluator 'misnamed'", "evaluator 'json_validation'"}
    assert "ModuleNotFoundError" in problems["evaluator 'missing_module'"]
    assert "not a subclass" in problems["evaluator 'not_an_evaluator'"]
    assert "'something_else'" in problems["evaluator 'misnamed'"]
    assert "already taken by the built-in" in problems["evaluator 'json_validation'"]
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 4
    with pytest.raises(EvaluatorLoadError, match="'missing_module' is unavailable"):
        registry.get("missing_module")
    assert len(caplog.records) == 4


def test_builtin_that_cannot_import_is_skipped_not_fatal(caplog):
    registry = EvaluatorRegistry(
        builtins={**BUILTINS, "future_metric": "canarytrace.evaluators.not_written_yet:Metric"},
        entry_points=[])
    assert "future_metric" not in registry.available()
    assert "json_validation" in registry.available()
    assert len(registry.problems) == 1 and "not_written_yet" in registry.problems[0]


def test_create_reads_model_based_configuration_from_the_environment(monkeypatch):
    monkeypatch.delenv("CANARYTRACE_JUDGE_URL", raising=False)
    monkeypatch.delenv("CANARYTRACE_JUDGE_MODEL_PATH", raising=False)
    monkeypatch.delenv("CANARYTRACE_REWARD_MODEL", raising=False)
    registry = EvaluatorRegistry(entry_points=[])
    task = registry.create("task_completion")
    assert isinstance(task, TaskCompletion) and task.judge is None
    assert registry.create("task_completion", threshold=0.9).threshold == 0.9
    with pytest.raises(ValueError, match="CANARYTRACE_REWARD_MODEL"):
        registry.create("reward_score")


def test_default_registry_is_shared():
    assert default_registry() is default_registry()
    assert default_registry().get("tool_selection").name == "tool_selection"


def test_importing_evaluators_loads_no_model_library():
    code = textwrap.dedent("""
        import sys
        from canarytrace.evaluators.registry import default_registry
        registry = default_registry()
        names = registry.names()
        before = [m for m in ("canarytrace.evaluators.json_validation",) if m in sys.modules]
        for name in ("json_validation", "tool_selection", "task_completion", "pairwise",
                     "reward_score"):
            registry.get(name)
        heavy = [m for m in ("torch", "transformers") if m in sys.modules]
        print(len(names), before, heavy)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.split("\n")[0] == "6 [] []"


def test_registered_evaluators_score_a_span_end_to_end():
    span = llm_span('```json\n{"ok": true}\n```', tool_calls=[{"name": "noop"}], expect={
        A.CANARY_EXPECT_JSON_SCHEMA: {"type": "object", "required": ["ok"]},
        A.CANARY_EXPECT_TOOLS: [{"name": "noop", "arguments": {}}]})
    registry = EvaluatorRegistry(entry_points=[])
    for name in ("json_validation", "tool_selection"):
        evaluator = registry.create(name)
        assert evaluator.applies_to(span) and evaluator.evaluate(span).passed is True
