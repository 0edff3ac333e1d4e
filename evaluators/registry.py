"""Evaluators by name: the built-ins plus plugins from the ``canarytrace.evaluators`` entry points.

Nothing is imported until an evaluator is asked for, so listing names stays cheap and
a model-based evaluator's torch import happens only when it is used. A third-party
package registers an evaluator class in its ``pyproject.toml``::

    [project.entry-points."canarytrace.evaluators"]
    my_metric = "my_package.metrics:MyMetric"   # MyMetric.name == "my_metric"

A plugin that cannot be loaded is reported once (a warning on the
``canarytrace.evaluators`` logger, and in ``EvaluatorRegistry.problems``) and skipped.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from importlib import metadata
from typing import Any

from canarytrace.evaluators.base import Evaluator

ENTRY_POINT_GROUP = "canarytrace.evaluators"

BUILTINS: Mapping[str, str] = {
    "json_validation": "canarytrace.evaluators.json_validation:JsonValidation",
    "instruction_adherence": "canarytrace.evaluators.instruction_adherence:InstructionAdherence",
    "tool_selection": "canarytrace.evaluators.tool_selection:ToolSelection",
    "task_completion": "canarytrace.evaluators.task_completion:TaskCompletion",
    "pairwise": "canarytrace.evaluators.pairwise:PairwiseJudge",
    "reward_score": "canarytrace.evaluators.reward:RewardScore",
}
"""Built-in evaluators: name -> ``module:Class`` import path, loaded on first use."""

logger = logging.getLogger("canarytrace.evaluators")


class UnknownEvaluatorError(KeyError):
    """No evaluator is registered under this name."""

    def __str__(self) -> str:
        return str(self.args[0])


class EvaluatorLoadError(RuntimeError):
    """An evaluator is registered but its class could not be loaded."""


@dataclass(frozen=True)
class _Source:
    """Where an evaluator class comes from: a built-in path or an entry point."""

    origin: str
    load: Callable[[], Any]


def _import_path(path: str) -> Any:
    module_name, _, attribute = path.partition(":")
    return getattr(importlib.import_module(module_name), attribute)


def _check_class(name: str, loaded: Any) -> type[Evaluator]:
    if not (isinstance(loaded, type) and issubclass(loaded, Evaluator)):
        raise EvaluatorLoadError(f"{loaded!r} is not a subclass of canarytrace Evaluator")
    declared = getattr(loaded, "name", None)
    if declared != name:
        raise EvaluatorLoadError(f"it is registered as {name!r} but its class says "
                                 f"name={declared!r}")
    return loaded


class EvaluatorRegistry:
    """Evaluator classes by name, loaded lazily; broken ones are reported once and skipped."""

    def __init__(
        self,
        builtins: Mapping[str, str] = BUILTINS,
        entry_points: Iterable[metadata.EntryPoint] | None = None,
    ) -> None:
        self._sources: dict[str, _Source] = {
            name: _Source(f"built-in {path}", lambda path=path: _import_path(path))
            for name, path in builtins.items()
        }
        self._classes: dict[str, type[Evaluator]] = {}
        self._unavailable: dict[str, str] = {}
        self.problems: list[str] = []
        """Every evaluator that could not be registered or loaded, and why (one line each)."""
        if entry_points is None:
            entry_points = metadata.entry_points(group=ENTRY_POINT_GROUP)
        for entry_point in entry_points:
            self._add_plugin(entry_point)

    def _add_plugin(self, entry_point: metadata.EntryPoint) -> None:
        origin = f"plugin {entry_point.value}"
        if entry_point.name in self._sources:
            self._report(entry_point.name, f"{origin} skipped: the name is already taken by "
                                           f"the {self._sources[entry_point.name].origin}")
            return
        self._sources[entry_point.name] = _Source(origin, entry_point.load)

    def _report(self, name: str, problem: str) -> None:
        line = f"evaluator {name!r}: {problem}"
        self.problems.append(line)
        logger.warning("canarytrace %s", line)

    def names(self) -> list[str]:
        """Every registered name, loadable or not (nothing is imported)."""
        return sorted(self._sources)

    def get(self, name: str) -> type[Evaluator]:
        """The evaluator class registered as ``name``; raises a clear error if it cannot load."""
        if name in self._classes:
            return self._classes[name]
        source = self._sources.get(name)
        if source is None:
            known = ", ".join(self.names()) or "none"
            raise UnknownEvaluatorError(f"unknown evaluator {name!r} (known: {known})")
        if name in self._unavailable:
            raise EvaluatorLoadError(f"evaluator {name!r} is unavailable: "
                                     f"{self._unavailable[name]}")
        try:
            loaded = _check_class(name, source.load())
        except Exception as exc:  # noqa: BLE001 - any plugin failure is reported, never raised raw
            detail = exc if isinstance(exc, EvaluatorLoadError) else f"{type(exc).__name__}: {exc}"
            self._unavailable[name] = f"{source.origin} failed to load: {detail}"
            self._report(name, self._unavailable[name])
            raise EvaluatorLoadError(f"evaluator {name!r} is unavailable: "
                                     f"{self._unavailable[name]}") from exc
        self._classes[name] = loaded
        return loaded

    def available(self) -> dict[str, type[Evaluator]]:
        """Every evaluator class that loads; the others are reported once and left out."""
        classes = {}
        for name in self.names():
            try:
                classes[name] = self.get(name)
            except EvaluatorLoadError:
                continue
        return classes

    def create(self, name: str, **options: Any) -> Evaluator:
        """An evaluator instance: ``cls(**options)``, or ``cls.from_env()`` when no options
        are given and the class reads its configuration (judge, model path) from the env."""
        cls = self.get(name)
        from_env = getattr(cls, "from_env", None)
        if not options and callable(from_env):
            return from_env()
        return cls(**options)


@cache
def default_registry() -> EvaluatorRegistry:
    """The process-wide registry: built-ins plus the installed plugins."""
    return EvaluatorRegistry()
