"""``json_validation``: does the output hold JSON that satisfies ``canary.expect.json_schema``?

The JSON is taken from the whole output, a code fence or the prose around it
(see ``json_extraction``). Schemas are JSON Schema Draft 2020-12 with ``format``
checked; the schema ``true`` means "any JSON". Labels:

- ``valid``: the output validates;
- ``no_json``: nothing JSON-like in the output;
- ``parse_error``: JSON-like text that does not parse (message, line and column);
- ``schema_error``: parses but violates the schema (every error, best first, with its
  JSON path);
- ``invalid_schema``: the expectation itself is not a usable schema (``passed`` is None).

Parser errors the SDK recorded on the span (``canary.parser.errors``) are a failure
signal: the span passes only if its final output validates, and then scores
``1 / (1 + parser_errors)`` instead of 1 (see ``details["score_rule"]``).
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError, ValidationError, best_match, relevance

from canarytrace import attributes as A
from canarytrace.evaluators.base import EvalResult, Evaluator, SpanRecord
from canarytrace.evaluators.json_extraction import extract_json

SCORE_RULE = "1 / (1 + parser_errors) when the final output validates, else 0"
MAX_REPORTED_ERRORS = 20


@lru_cache(maxsize=256)
def _validator(schema_json: str) -> Draft202012Validator:
    """A validator per distinct schema (spans of one route share it); raises SchemaError."""
    schema = json.loads(schema_json)
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


def _describe(error: ValidationError) -> dict[str, Any]:
    return {
        "path": error.json_path,
        "message": error.message,
        "keyword": str(error.validator),
        "schema_path": "/".join(str(part) for part in error.absolute_schema_path),
    }


def schema_errors(validator: Draft202012Validator, instance: Any) -> list[dict[str, Any]]:
    """Every validation error, the most relevant first (jsonschema's ``best_match``)."""
    errors = list(validator.iter_errors(instance))
    if not errors:
        return []
    top = max(errors, key=relevance)
    rest = sorted((e for e in errors if e is not top), key=relevance, reverse=True)
    return [_describe(best_match(errors))] + [_describe(e) for e in rest]


def _count(span: SpanRecord, key: str) -> int:
    try:
        return max(int(float(span.attributes.get(key) or 0)), 0)
    except (ValueError, OverflowError):  # not a number, NaN, infinity
        return 0


class JsonValidation(Evaluator):
    """Checks the output's JSON against the span's expected JSON Schema."""

    name = "json_validation"
    version = "1"

    def applies_to(self, span: SpanRecord) -> bool:
        return bool(span.attributes.get(A.CANARY_EXPECT_JSON_SCHEMA))

    def evaluate(self, span: SpanRecord) -> EvalResult:
        raw_schema = span.attributes.get(A.CANARY_EXPECT_JSON_SCHEMA, "")
        try:
            validator = _validator(raw_schema)
        except (ValueError, SchemaError) as exc:
            message = exc.message if isinstance(exc, SchemaError) else str(exc)
            return EvalResult(None, None, "invalid_schema",
                              f"the expected JSON Schema is not usable: {message}")
        parser = {"parser_errors": _count(span, A.CANARY_PARSER_ERRORS),
                  "parser_retries": _count(span, A.CANARY_PARSER_RETRIES),
                  "score_rule": SCORE_RULE}
        return self._check(span.output_text, validator, parser)

    def _check(self, text: str, validator: Draft202012Validator,
               parser: dict[str, Any]) -> EvalResult:
        extraction = extract_json(text)
        if not extraction.found and extraction.failure is None:
            return EvalResult(0.0, False, "no_json", "the output contains no JSON", parser)
        if not extraction.found:
            failure = extraction.failure
            details = {**parser, "source": extraction.source, "line": failure.line,
                       "column": failure.column, "message": failure.message}
            return EvalResult(0.0, False, "parse_error",
                              f"the output's JSON does not parse: {failure.describe()}", details)
        errors = schema_errors(validator, extraction.value)
        if errors:
            details = {**parser, "source": extraction.source, "error_count": len(errors),
                       "errors": errors[:MAX_REPORTED_ERRORS]}
            first = errors[0]
            return EvalResult(0.0, False, "schema_error",
                              f"{len(errors)} schema error(s); first at {first['path']}: "
                              f"{first['message']}", details)
        return self._valid(extraction.source, parser)

    @staticmethod
    def _valid(source: str, parser: dict[str, Any]) -> EvalResult:
        retried = parser["parser_errors"]
        reason = "the output's JSON satisfies the schema"
        if retried:
            reason += f" after {retried} recorded parser error(s); score reduced"
        return EvalResult(1.0 / (1 + retried), True, "valid", reason, {**parser, "source": source})
