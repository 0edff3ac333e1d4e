"""The comparison policy: per metric what a regression is, how much it matters, and thresholds.

A policy is a YAML file (``--policy FILE``) validated against ``POLICY_SCHEMA``; the built-in
default is ``default_policy.yaml`` next to this module and documents every field. A user file
is merged over the default, so it only needs the fields it changes.
"""

from __future__ import annotations

import copy
import functools
import math
from dataclasses import dataclass, field, fields, replace
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

UP = "up"
DOWN = "down"
WAIT, LIST = "wait", "list"
"""``unjudged_slices``: what PROMOTE does about slices with data but under min_samples."""
MAX_BOOTSTRAP_RESAMPLES = 20_000
MAX_DISTRIBUTION_SAMPLE = 50_000
MAX_POLICY_NODES = 10_000
"""Bounds that keep one comparison's CPU time in seconds whatever a policy says."""

_METRIC_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "bad": {"enum": [UP, DOWN]},
        "min_effect": {"type": "number", "minimum": 0, "maximum": 1e6},
        "tolerance": {"type": "number", "minimum": 0, "maximum": 100},
        "critical": {"type": "boolean"},
        "weight": {"type": "number", "minimum": 0, "maximum": 1e4},
        "min_samples": {"type": "integer", "minimum": 1, "maximum": 10_000_000},
        "max_samples": {"type": "integer", "minimum": 1, "maximum": 1_000_000_000},
        "enabled": {"type": "boolean"},
    },
}

POLICY_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "alpha": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
        "pass_threshold": {"type": "number", "minimum": 0, "maximum": 100},
        "marginal_threshold": {"type": "number", "minimum": 0, "maximum": 100},
        "require_evaluators": {"type": "boolean"},
        "bootstrap_resamples": {"type": "integer", "minimum": 100,
                                "maximum": MAX_BOOTSTRAP_RESAMPLES},
        "distribution_sample": {"type": "integer", "minimum": 100,
                                "maximum": MAX_DISTRIBUTION_SAMPLE},
        "seed": {"type": "integer", "minimum": 0, "maximum": 2**32 - 1},
        "unjudged_slices": {"enum": [WAIT, LIST]},
        "evaluator_pass_rate": _METRIC_SCHEMA,
        "evaluator_score": _METRIC_SCHEMA,
        "metrics": {"type": "object", "additionalProperties": _METRIC_SCHEMA},
    },
}


class PolicyError(ValueError):
    """A policy file that cannot be read or does not match the schema."""


@dataclass(frozen=True)
class MetricPolicy:
    """How one metric is judged (see default_policy.yaml for the meaning of each field)."""

    bad: str = DOWN
    min_effect: float = 0.0
    tolerance: float = 0.1
    critical: bool = False
    weight: float = 1.0
    min_samples: int = 100
    max_samples: int = 20000
    enabled: bool = True


@dataclass(frozen=True)
class Policy:
    alpha: float = 0.05
    pass_threshold: float = 95.0
    marginal_threshold: float = 75.0
    require_evaluators: bool = True
    bootstrap_resamples: int = 1000
    distribution_sample: int = 5000
    seed: int = 0
    unjudged_slices: str = WAIT
    evaluator_pass_rate: MetricPolicy = MetricPolicy(critical=True, min_effect=0.02)
    evaluator_score: MetricPolicy = MetricPolicy(min_effect=0.1)
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per-metric fields by name, as written in the file (merged over the default's)."""
    source: str = "built-in default"

    def for_metric(self, name: str, evaluator_kind: str | None = None) -> MetricPolicy:
        """The policy of ``name``. An evaluator's metric (``evaluator_kind`` "pass_rate" or
        "score") starts from its template, and fields named under ``metrics`` override it."""
        override = self.metrics.get(name, {})
        if evaluator_kind is None:
            return MetricPolicy(**override)
        template = self.evaluator_score if evaluator_kind == "score" else self.evaluator_pass_rate
        return replace(template, **override)

    def summary(self) -> dict[str, Any]:
        """The policy-wide settings, as the report shows them."""
        return {"source": self.source, "alpha": self.alpha,
                "pass_threshold": self.pass_threshold,
                "marginal_threshold": self.marginal_threshold,
                "unjudged_slices": self.unjudged_slices}


def default_policy() -> Policy:
    return from_mapping(_default_mapping(), source="built-in default")


def load_policy(path: str | Path) -> Policy:
    """Read a YAML (or JSON) policy file and merge it over the default."""
    return parse_policy(read_policy_text(path), source=str(path))


def read_policy_text(path: str | Path) -> str:
    """The text of a policy file; PolicyError when it cannot be read as UTF-8."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyError(f"cannot read policy file {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise PolicyError(f"cannot read policy file {path}: not UTF-8 text") from exc


def parse_policy(text: str, source: str = "policy") -> Policy:
    """Parse policy YAML/JSON text, validate it and merge it over the default."""
    try:
        data = yaml.load(text, Loader=_PlainLoader)  # noqa: S506 - a SafeLoader, no aliases
    except yaml.YAMLError as exc:
        raise PolicyError(f"{source}: not valid YAML: {_one_line(exc)}") from exc
    if data is None:
        data = {}
    _check_numbers(data, source)
    _validate(data, source)
    return from_mapping(_merge(_default_mapping(), data), source=source)


def from_mapping(data: dict[str, Any], source: str) -> Policy:
    """Build a Policy from an already-validated, complete mapping."""
    scalars = {f.name: data[f.name] for f in fields(Policy)
               if f.name in data and f.name not in ("evaluator_pass_rate", "evaluator_score",
                                                    "metrics")}
    policy = Policy(
        **scalars,
        evaluator_pass_rate=MetricPolicy(**data["evaluator_pass_rate"]),
        evaluator_score=MetricPolicy(**data["evaluator_score"]),
        metrics=dict(data.get("metrics", {})),
        source=source,
    )
    for name, metric in [("evaluator_pass_rate", policy.evaluator_pass_rate),
                         ("evaluator_score", policy.evaluator_score),
                         *((n, policy.for_metric(n)) for n in policy.metrics)]:
        if metric.min_samples > metric.max_samples:
            raise PolicyError(f"{source}: {name}: min_samples ({metric.min_samples}) is above "
                              f"max_samples ({metric.max_samples})")
    if policy.marginal_threshold > policy.pass_threshold:
        raise PolicyError(f"{source}: marginal_threshold ({policy.marginal_threshold}) is above "
                          f"pass_threshold ({policy.pass_threshold})")
    return policy


def _default_mapping() -> dict[str, Any]:
    return copy.deepcopy(_default_mapping_cached())


@functools.cache
def _default_mapping_cached() -> dict[str, Any]:
    text = resources.files("canarytrace.analysis").joinpath("default_policy.yaml").read_text(
        encoding="utf-8")
    return yaml.safe_load(text)


class _PlainLoader(yaml.SafeLoader):
    """YAML without anchors and aliases: a policy needs none, and aliases let a few bytes
    expand into an exponentially large document."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(None, None, "aliases (*name) are not allowed in "
                                              "a policy", event.start_mark)
        return super().compose_node(parent, index)


def _check_numbers(data: Any, source: str, where: str = "") -> None:
    """Every number finite (YAML reads .nan and .inf) and the document small."""
    stack, seen = [(where, data)], 0
    while stack:
        path, value = stack.pop()
        seen += 1
        if seen > MAX_POLICY_NODES:
            raise PolicyError(f"{source}: more than {MAX_POLICY_NODES} values; a policy is small")
        if isinstance(value, float) and not math.isfinite(value):
            raise PolicyError(f"{source}: {path or '(top level)'}: {value} is not a finite "
                              "number")
        if isinstance(value, dict):
            stack += [(f"{path}.{key}" if path else str(key), item) for key, item in value.items()]
        elif isinstance(value, list):
            stack += [(f"{path}.{i}" if path else str(i), item) for i, item in enumerate(value)]


def _validate(data: Any, source: str) -> None:
    validator = jsonschema.Draft202012Validator(POLICY_SCHEMA)
    error = jsonschema.exceptions.best_match(validator.iter_errors(data))
    if error is not None:
        where = ".".join(str(part) for part in error.absolute_path) or "(top level)"
        raise PolicyError(f"{source}: {where}: {error.message}")


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge ``override`` into a copy of ``base`` (mappings merge, other values replace)."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())
