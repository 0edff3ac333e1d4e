"""BFCL-style AST matching of one tool call against one expected call.

An expected call is ``ExpectedCall(name, params)`` where each parameter has a list of
allowed values and an ``optional`` flag. These spellings of ``canary.expect.tools``
entries are accepted:

- exact: ``{"name": "get_weather", "arguments": {"city": "Paris"}}`` — each value is
  the one expected value (lists and objects are literal values);
- name only: ``{"name": "get_weather"}`` or ``"get_weather"`` — any arguments will do;
- BFCL "possible answers": ``{"get_weather": {"city": ["Paris", "Paris, France"],
  "unit": ["celsius", ""]}}`` — each value lists the allowed values; ``""`` among them
  marks the parameter optional. Inside allowed objects, every key again lists allowed
  values (BFCL's dict form).

Checks, in BFCL's order: function name (``.`` and ``_`` are interchangeable, as BFCL
allows for providers that forbid dots), missing required parameters, unexpected
parameters, types (an int is accepted where a float is expected; bool is never a
number) and values (strings compared after BFCL's normalization: case, spaces and
``,./-_*^`` ignored, ``'`` read as ``"``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

WRONG_FUNC_NAME = "wrong_func_name"
MISSING_REQUIRED = "missing_required"
UNEXPECTED_PARAM = "unexpected_param"
TYPE_ERROR = "type_error"
VALUE_ERROR = "value_error"
MALFORMED_ARGUMENTS = "malformed_arguments"

_IGNORED_IN_STRINGS = re.compile(r"[ ,./\-_*^]")


class InvalidExpectation(ValueError):
    """``canary.expect.tools`` is not a list of expected calls in a supported form."""


@dataclass(frozen=True)
class ExpectedParam:
    allowed: tuple[Any, ...]
    optional: bool = False


@dataclass(frozen=True)
class ExpectedCall:
    name: str
    params: Mapping[str, ExpectedParam] | None = field(default_factory=dict)
    """None when only the function name is checked."""


@dataclass(frozen=True)
class CallError:
    """One way a call differs from the expected one; ``kind`` is an error-type label."""

    kind: str
    message: str
    param: str = ""

    def as_dict(self) -> dict[str, str]:
        return {"type": self.kind, "param": self.param, "message": self.message}


def standardize(text: str) -> str:
    """BFCL's string normalization: drop spaces and ``,./-_*^``, lowercase, ``'`` -> ``"``."""
    return _IGNORED_IN_STRINGS.sub("", text).lower().replace("'", '"')


def _exact_as_allowed(value: Any) -> Any:
    """An exact value in the possible-answers form (objects' values become one-item lists)."""
    if isinstance(value, Mapping):
        return {key: [_exact_as_allowed(item)] for key, item in value.items()}
    if isinstance(value, list):
        return [_exact_as_allowed(item) for item in value]
    return value


def _param_from_allowed(values: Any) -> ExpectedParam:
    values = values if isinstance(values, list) else [values]
    allowed = tuple(v for v in values if v != "")
    return ExpectedParam(allowed, optional=len(allowed) < len(values))


def parse_expected(entry: Any) -> ExpectedCall:
    """One ``canary.expect.tools`` entry (exact or BFCL form) as an ExpectedCall."""
    if isinstance(entry, str) and entry:
        return ExpectedCall(entry, None)
    if isinstance(entry, Mapping) and ("name" in entry or "arguments" in entry):
        if not isinstance(entry.get("name"), str) or not entry["name"]:
            raise InvalidExpectation(f"an expected call needs a 'name' string: {entry!r}")
        if "arguments" not in entry:
            return ExpectedCall(entry["name"], None)
        arguments = entry.get("arguments") or {}
        if not isinstance(arguments, Mapping):
            raise InvalidExpectation(f"arguments of {entry['name']!r} must be an object")
        params = {k: ExpectedParam((_exact_as_allowed(v),)) for k, v in arguments.items()}
        return ExpectedCall(entry["name"], params)
    if isinstance(entry, Mapping) and len(entry) == 1:
        (name, arguments), = entry.items()
        if isinstance(arguments, Mapping):
            return ExpectedCall(name, {k: _param_from_allowed(v) for k, v in arguments.items()})
    raise InvalidExpectation(
        f"expected a call as {{'name': ..., 'arguments': {{...}}}} or {{name: {{param: "
        f"[allowed, ...]}}}}, got {entry!r}")


def same_function(called: str, expected: str) -> bool:
    return called == expected or called.replace(".", "_") == expected.replace(".", "_")


def json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple)):
        return "array"
    if isinstance(value, Mapping):
        return "object"
    return "null" if value is None else type(value).__name__


def type_matches(value: Any, allowed: tuple[Any, ...]) -> bool:
    """Whether ``value`` has the type of some allowed value (int accepted as a float)."""
    if not allowed:
        return True
    expected = {json_type(v) for v in allowed}
    actual = json_type(value)
    return actual in expected or (actual == "integer" and "number" in expected)


def value_matches(value: Any, allowed: Any) -> bool:
    """Whether ``value`` equals one allowed value, BFCL-normalized (objects: allowed lists)."""
    if isinstance(allowed, Mapping):
        return isinstance(value, Mapping) and _object_matches(value, allowed)
    if isinstance(allowed, list):
        return (isinstance(value, (list, tuple)) and len(value) == len(allowed)
                and all(value_matches(v, a) for v, a in zip(value, allowed, strict=True)))
    if isinstance(allowed, str):
        return isinstance(value, str) and standardize(value) == standardize(allowed)
    if isinstance(allowed, bool) or allowed is None:
        return value is allowed
    if isinstance(allowed, (int, float)):
        return json_type(value) in ("integer", "number") and value == allowed
    return value == allowed


def _object_matches(value: Mapping[str, Any], allowed: Mapping[str, Any]) -> bool:
    for key, item in value.items():
        if key not in allowed:
            return False
        param = _param_from_allowed(allowed[key])
        options = param.allowed or ("",)
        if not any(value_matches(item, a) for a in options):
            return False
    return all(key in value or _param_from_allowed(options).optional
               for key, options in allowed.items())


def check_call(call: Mapping[str, Any], expected: ExpectedCall) -> list[CallError]:
    """Every difference between ``call`` and ``expected``, most severe kind first."""
    name = str(call.get("name", ""))
    if not same_function(name, expected.name):
        return [CallError(WRONG_FUNC_NAME, f"called {name!r}, expected {expected.name!r}")]
    if expected.params is None:
        return []
    arguments = call.get("arguments")
    arguments = {} if arguments in (None, "") else arguments
    if not isinstance(arguments, Mapping):
        return [CallError(MALFORMED_ARGUMENTS,
                          f"arguments of {name!r} are not a JSON object: {arguments!r}")]
    errors = [CallError(MISSING_REQUIRED, f"missing required parameter {p!r}", p)
              for p, spec in expected.params.items() if not spec.optional and p not in arguments]
    for param, value in arguments.items():
        errors += _check_param(param, value, expected.params.get(param))
    order = [MISSING_REQUIRED, UNEXPECTED_PARAM, TYPE_ERROR, VALUE_ERROR]
    return sorted(errors, key=lambda error: order.index(error.kind))


def _check_param(param: str, value: Any, spec: ExpectedParam | None) -> list[CallError]:
    if spec is None:
        return [CallError(UNEXPECTED_PARAM, f"unexpected parameter {param!r}", param)]
    if not type_matches(value, spec.allowed):
        expected = sorted({json_type(v) for v in spec.allowed})
        return [CallError(TYPE_ERROR, f"parameter {param!r} should be {' or '.join(expected)}, "
                                      f"got {json_type(value)} {value!r}", param)]
    if spec.allowed and not any(value_matches(value, a) for a in spec.allowed):
        return [CallError(VALUE_ERROR, f"parameter {param!r} is {value!r}, expected one of "
                                       f"{list(spec.allowed)!r}", param)]
    return []
