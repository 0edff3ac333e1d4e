"""What Argo Rollouts and Flagger do with an answer, ported from their sources, for tests.

Argo Rollouts (argoproj/argo-rollouts): ``metricproviders/webmetric/webmetric.go`` (non-2xx is
an Error; the ``jsonPath``, default ``{$}``, is extracted into ``result``),
``utils/evaluate/evaluate.go`` (``EvaluateResult``: success/failure conditions ->
Successful/Failed/Inconclusive) and ``analysis/analysis.go`` (``assessMetricStatus``: how
limits turn measurements into the metric's phase). Conditions are expr-lang expressions; the
subset used by our manifests (member access, literals, ``==``/``!=``/``<``..., ``&&``,
``||``, ``!``, parentheses) is evaluated by translating to a Python AST.

Flagger (fluxcd/flagger) ``pkg/controller/webhook.go``: a hook passes on HTTP 200-202; its
retrying client (go-retryablehttp) retries 5xx (but 501) and 429.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping, Sequence
from typing import Any

SUCCESSFUL, FAILED, INCONCLUSIVE, ERROR = "Successful", "Failed", "Inconclusive", "Error"
DEFAULT_CONSECUTIVE_ERROR_LIMIT = 4

_TOKEN = re.compile(r'\s*(?:(?P<str>"(?:[^"\\]|\\.)*")|(?P<op>&&|\|\||==|!=|<=|>=|[<>!().])'
                    r"|(?P<num>\d+(?:\.\d+)?)|(?P<name>[A-Za-z_][A-Za-z0-9_]*))")
_WORDS = {"true": "True", "false": "False", "nil": "None", "and": "and", "or": "or",
          "not": "not"}
_OPS = {"&&": " and ", "||": " or ", "!": " not "}


def expr_to_python(expression: str) -> str:
    """An expr-lang condition (the subset above) as the equivalent Python expression."""
    out, pos = [], 0
    while pos < len(expression.rstrip()):
        match = _TOKEN.match(expression, pos)
        if not match or match.end() == pos:
            raise ValueError(f"unsupported expr syntax at {expression[pos:]!r}")
        pos = match.end()
        kind, text = match.lastgroup, match.group(match.lastgroup)
        if kind == "op":
            out.append(_OPS.get(text, text))
        elif kind == "name":
            out.append(_WORDS.get(text, text))
        else:
            out.append(text)
    return "".join(out).strip()


def _evaluate(node: ast.AST, env: Mapping[str, Any]) -> Any:
    if isinstance(node, ast.Expression):
        return _evaluate(node.body, env)
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        return env[node.id]
    if isinstance(node, ast.Attribute):  # expr's member access on a map
        value = _evaluate(node.value, env)
        return value.get(node.attr) if isinstance(value, Mapping) else None
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        return not _evaluate(node.operand, env)
    if isinstance(node, ast.BoolOp):
        values = (_evaluate(v, env) for v in node.values)
        return all(values) if isinstance(node.op, ast.And) else any(values)
    if isinstance(node, ast.Compare):
        left = _evaluate(node.left, env)
        for op, right_node in zip(node.ops, node.comparators, strict=True):
            right = _evaluate(right_node, env)
            if not _COMPARE[type(op)](left, right):
                return False
            left = right
        return True
    raise ValueError(f"unsupported expression {ast.dump(node)}")


_COMPARE = {ast.Eq: lambda a, b: a == b, ast.NotEq: lambda a, b: a != b,
            ast.Lt: lambda a, b: a < b, ast.LtE: lambda a, b: a <= b,
            ast.Gt: lambda a, b: a > b, ast.GtE: lambda a, b: a >= b}


def eval_condition(result: Any, condition: str) -> bool:
    """``EvalCondition``: the condition with ``result`` bound; it must be a boolean."""
    value = _evaluate(ast.parse(expr_to_python(condition), mode="eval"), {"result": result})
    if not isinstance(value, bool):
        raise ValueError(f"condition {condition!r} gave {value!r}, not a boolean")
    return value


def json_path(body: Any, path: str | None) -> Any:
    """The web metric's ``jsonPath`` (``{$}`` or ``{$.a.b}``) applied to the JSON body."""
    path = (path or "{$}").strip()
    match = re.fullmatch(r"\{\$((?:\.[A-Za-z0-9_-]+)*)\}", path)
    if not match:
        raise ValueError(f"unsupported jsonPath {path!r}")
    for key in filter(None, match.group(1).split(".")):
        body = body[key]
    return body


def evaluate_result(result: Any, metric: Mapping[str, Any]) -> str:
    """``EvaluateResult``: one measurement's phase from the metric's conditions."""
    success_cond, failure_cond = metric.get("successCondition"), metric.get("failureCondition")
    success = eval_condition(result, success_cond) if success_cond else False
    failure = eval_condition(result, failure_cond) if failure_cond else False
    if not success_cond and not failure_cond:
        return SUCCESSFUL
    if success_cond and not failure_cond:
        failure = not success
    elif failure_cond and not success_cond:
        success = not failure
    if failure:
        return FAILED
    return SUCCESSFUL if success else INCONCLUSIVE


def measure(status_code: int, body: Any, metric: Mapping[str, Any]) -> str:
    """The phase of one web-metric measurement given the HTTP answer."""
    if not 200 <= status_code < 300:
        return ERROR
    return evaluate_result(json_path(body, metric["provider"]["web"].get("jsonPath")), metric)


def assess_metric(phases: Sequence[str], metric: Mapping[str, Any]) -> str:
    """``assessMetricStatus`` for a finished sequence of measurement phases: the metric's
    phase, or "Running" while it would keep measuring."""
    failure_limit = int(metric.get("failureLimit", 0))
    inconclusive_limit = int(metric.get("inconclusiveLimit", 0))
    error_limit = int(metric.get("consecutiveErrorLimit", DEFAULT_CONSECUTIVE_ERROR_LIMIT))
    success_limit = int(metric.get("consecutiveSuccessLimit", 0))
    count = metric.get("count")
    failed = inconclusive = consecutive_error = consecutive_success = measured = 0
    for phase in phases:
        measured += phase != ERROR
        failed += phase == FAILED
        inconclusive += phase == INCONCLUSIVE
        consecutive_error = consecutive_error + 1 if phase == ERROR else 0
        consecutive_success = consecutive_success + 1 if phase == SUCCESSFUL else 0
    outcome = None
    if failure_limit >= 0 and failed > failure_limit:
        outcome = FAILED
    if inconclusive > inconclusive_limit:
        outcome = INCONCLUSIVE
    if consecutive_error > error_limit:
        outcome = ERROR
    if outcome:
        return outcome
    if success_limit > 0 and consecutive_success >= success_limit:
        return SUCCESSFUL
    if count is not None and measured >= int(count):
        if success_limit > 0:
            return INCONCLUSIVE if failure_limit >= 0 else FAILED
        return SUCCESSFUL
    return "Running"


def substitute_args(text: str, args: Mapping[str, str]) -> str:
    """Argo's ``{{args.NAME}}`` templating."""
    def value(match: re.Match[str]) -> str:
        return args[match.group(1)]
    return re.sub(r"\{\{\s*args\.([A-Za-z0-9_.-]+)\s*\}\}", value, text)


def flagger_passes(status_code: int) -> bool:
    """Flagger's ``callWebhook``: anything above 202 fails the hook."""
    return status_code <= 202 and status_code >= 200


def flagger_retries(status_code: int) -> bool:
    """go-retryablehttp's default policy: it retries 429 and 5xx except 501."""
    return status_code == 429 or (status_code >= 500 and status_code != 501)
