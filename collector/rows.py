"""OTLP spans -> ``otel_traces`` rows, validated, normalized and limited.

Values are written the way the OpenTelemetry Collector's ClickHouse exporter writes
them (SpanKind 'Client', StatusCode 'Ok', ids in lowercase hex, attribute values as
strings: ints in decimal, bools 'true'/'false', arrays and maps as JSON), so both
writers can share one table; timestamps are integer nanoseconds. A span that breaks a
rule is rejected on its own, before the request is acknowledged; the rest of the request
is kept (OTLP partial success naming the rejected spans).
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pyarrow as pa
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from canarytrace import attributes as A
from canarytrace.collector.normalize import normalize
from canarytrace.store import span_columns

SPAN_KINDS = ("Unspecified", "Internal", "Server", "Client", "Producer", "Consumer")
STATUS_CODES = ("Unset", "Ok", "Error")
MAX_TIMESTAMP_NS = 2**63 - 1  # DateTime64(9) ends at 2262-04-11

MESSAGES_SHOWN = 5
_BRACKETS = re.compile(r"[\[\]{}]")
_ZERO_TRACE_ID = bytes(16)
_ZERO_SPAN_ID = bytes(8)


@dataclass(frozen=True)
class Limits:
    """Per-span limits: longer values are truncated; more or longer keys reject the span."""

    max_attribute_length: int = 128 * 1024
    max_attributes_per_span: int = 1024
    max_attribute_key_length: int = 1024
    max_json_depth: int = 64


SPAN_FIELDS = ("Timestamp", "TraceId", "SpanId", "ParentSpanId", "TraceState", "SpanName",
               "SpanKind", "SpanAttributes", "Duration", "StatusCode", "StatusMessage",
               "Events", "Links")
"""One span's values, in order; ``Events`` and ``Links`` are each a tuple of the lists of
NESTED_FIELDS, or None when the span has none."""
NESTED_FIELDS = {
    "Events": ("Events.Timestamp", "Events.Name", "Events.Attributes"),
    "Links": ("Links.TraceId", "Links.SpanId", "Links.TraceState", "Links.Attributes"),
}
SCOPE_FIELDS = ("ServiceName", "ResourceAttributes", "ScopeName", "ScopeVersion")


@dataclass
class Converted:
    """The spans of one request, kept column-ready, and what was refused or cut on the way."""

    spans: list[tuple[Any, ...]] = field(default_factory=list)
    """Each span's SPAN_FIELDS values."""
    scopes: list[tuple[Any, ...]] = field(default_factory=list)
    """Each span's SCOPE_FIELDS values (one tuple shared by the spans of a scope)."""
    rejected: int = 0
    errors: list[str] = field(default_factory=list)
    truncated_values: int = 0

    @property
    def rows(self) -> list[dict[str, Any]]:
        """The spans as otel_traces rows keyed by column name (``Events.Name`` etc.)."""
        rows = []
        for values, scope in zip(self.spans, self.scopes, strict=True):
            row = dict(zip(SPAN_FIELDS, values, strict=True))
            for nested, fields in NESTED_FIELDS.items():
                if lists := row.pop(nested):
                    row.update(zip(fields, lists, strict=True))
            row.update(zip(SCOPE_FIELDS, scope, strict=True))
            rows.append(row)
        return rows

    def table(self) -> pa.Table:
        """The spans as one Arrow table, built by column (no row dicts on the way)."""
        if not self.spans:
            return span_columns.columns_table({}, 0)
        columns = dict(zip(SPAN_FIELDS, zip(*self.spans, strict=True), strict=True))
        columns.update(zip(SCOPE_FIELDS, zip(*self.scopes, strict=True), strict=True))
        for nested, fields in NESTED_FIELDS.items():
            values = columns.pop(nested)
            if any(values):
                empty = ([],) * len(fields)
                columns.update(zip(fields, zip(*(v or empty for v in values), strict=True),
                                   strict=True))
        return span_columns.columns_table(columns, len(self.spans))

    def error_message(self) -> str:
        """One line for OTLP ``partial_success.error_message``, naming the rejected spans."""
        if not self.errors:
            return ""
        shown = "; ".join(self.errors[:MESSAGES_SHOWN])
        more = f" (and {len(self.errors) - MESSAGES_SHOWN} more)" \
            if len(self.errors) > MESSAGES_SHOWN else ""
        return f"rejected {self.rejected} span(s): {shown}{more}"


class SpanRejected(ValueError):
    """Why one span cannot be stored."""


def format_double(value: float) -> str:
    """A double as Go's pcommon ``AsString`` writes it (ES6 number formatting)."""
    text = repr(value)
    if "e" not in text and "n" not in text:
        return text[:-2] if text.endswith(".0") else text
    if value != value or value in (float("inf"), float("-inf")):
        return {"nan": "NaN", "inf": "+Inf", "-inf": "-Inf"}[text]
    if abs(value) < 1e-6 or abs(value) >= 1e21:
        mantissa, _, exponent = text.partition("e")
        return f"{mantissa.removesuffix('.0')}e{int(exponent):+d}"
    return format(Decimal(text), "f")


def _raw(value: AnyValue) -> Any:
    """An AnyValue as plain Python (for JSON of arrays and maps)."""
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_raw(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _raw(kv.value) for kv in value.kvlist_value.values}
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode("ascii")
    return getattr(value, kind) if kind else None


def value_to_str(value: AnyValue) -> str:
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return value.string_value
    if kind == "int_value":
        return str(value.int_value)
    if kind == "bool_value":
        return "true" if value.bool_value else "false"
    if kind == "double_value":
        return format_double(value.double_value)
    if kind is None:
        return ""
    raw = _raw(value)
    if isinstance(raw, str):
        return raw
    return json.dumps(raw, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


class RowBuilder:
    """Turns ExportTraceServiceRequests into rows for one project, under ``limits``."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits

    def convert(self, request: ExportTraceServiceRequest, project: str) -> Converted:
        out = Converted()
        for resource_spans in request.resource_spans:
            try:
                resource = self.attributes(resource_spans.resource.attributes, out)
            except SpanRejected as exc:
                self.reject_resource(resource_spans, f"resource {exc}", out)
                continue
            resource[A.CANARY_PROJECT] = project
            service = resource.get(A.SERVICE_NAME, "")
            for scope_spans in resource_spans.scope_spans:
                scope = scope_spans.scope
                shared = (service, resource, scope.name, scope.version)
                for span in scope_spans.spans:
                    try:
                        values = self.span_values(span, out)
                    except SpanRejected as exc:
                        out.rejected += 1
                        out.errors.append(f"span {span.span_id.hex() or '(no id)'}: {exc}")
                        continue
                    out.spans.append(values)
                    out.scopes.append(shared)
        return out

    @staticmethod
    def reject_resource(resource_spans: Any, reason: str, out: Converted) -> None:
        """Reject every span of a resource whose own attributes break a limit."""
        count = sum(len(scope_spans.spans) for scope_spans in resource_spans.scope_spans)
        out.rejected += count
        out.errors.append(reason)

    def span_values(self, span: Span, out: Converted) -> tuple[Any, ...]:
        """A span's SPAN_FIELDS values, or SpanRejected."""
        trace_id, span_id, parent_span_id = span.trace_id, span.span_id, span.parent_span_id
        check_ids(trace_id, span_id, parent_span_id)
        start, end, kind = span.start_time_unix_nano, span.end_time_unix_nano, span.kind
        if not 0 < start <= MAX_TIMESTAMP_NS:
            raise SpanRejected(f"start_time_unix_nano {start} is outside 1970..2262")
        status = span.status
        code = status.code
        if not 0 <= kind < len(SPAN_KINDS):
            raise SpanRejected(f"kind {kind} is not a SpanKind (0..{len(SPAN_KINDS) - 1})")
        if not 0 <= code < len(STATUS_CODES):
            raise SpanRejected(f"status code {code} is not a StatusCode "
                               f"(0..{len(STATUS_CODES) - 1})")
        attributes = self.attributes(span.attributes, out)
        if normalize(attributes):
            self.truncate(attributes, out)
        return (start, trace_id.hex(), span_id.hex(), parent_span_id.hex(), span.trace_state,
                span.name, SPAN_KINDS[kind], attributes, end - start if end > start else 0,
                STATUS_CODES[code], status.message,
                self.events(span, out) if span.events else None,
                self.links(span, out) if span.links else None)

    def attributes(self, key_values: Any, out: Converted) -> dict[str, str]:
        """Attribute values as strings; long ones truncated; too many, too long keys or JSON
        nested too deeply (which every later reader would choke on) refused."""
        limits = self.limits
        if len(key_values) > limits.max_attributes_per_span:
            raise SpanRejected(f"{len(key_values)} attributes; the limit is "
                               f"{limits.max_attributes_per_span}")
        result = {kv.key: (value := kv.value).string_value or value_to_str(value)
                  for kv in key_values}  # one pass: upb field access is the cost here
        if not result:
            return result
        if max(map(len, result)) > limits.max_attribute_key_length:
            longest = max(map(len, result))
            raise SpanRejected(f"attribute key of {longest} characters; the limit is "
                               f"{limits.max_attribute_key_length}")
        longest_value = max(map(len, result.values()))
        if longest_value > limits.max_json_depth:  # nesting deeper needs more characters
            self.check_nesting(result)
        if longest_value > limits.max_attribute_length:
            self.truncate(result, out)
        return result

    def check_nesting(self, attributes: dict[str, str]) -> None:
        """Refuse values that look like JSON nested deeper than ``max_json_depth``."""
        limit = self.limits.max_json_depth
        values = attributes.values()
        joined = "".join(values)
        if joined.count("[") + joined.count("{") <= limit:  # the usual span: one C pass
            return
        for value in [v for v in values if len(v) > limit]:  # a few per span
            head = value[0]
            if head not in "[{" and not (head.isspace() and value.lstrip()[:1] in ("[", "{")):
                continue
            if value.count("[") + value.count("{") <= limit:
                continue
            depth = nesting_depth(value)
            if depth > limit:
                key = next(k for k, v in attributes.items() if v is value)
                raise SpanRejected(f"attribute {key[:100]} holds JSON nested {depth} levels "
                                   f"deep; the limit is {limit}")

    def truncate(self, attributes: dict[str, str], out: Converted) -> None:
        limit = self.limits.max_attribute_length
        if not attributes or max(map(len, attributes.values())) <= limit:
            return
        for key, value in attributes.items():
            if len(value) > limit:
                attributes[key] = value[:limit] + A.TRUNCATION_MARKER
                out.truncated_values += 1

    def events(self, span: Span, out: Converted) -> tuple[list[Any], ...]:
        """A span's lists of ``NESTED_FIELDS["Events"]``."""
        for event in span.events:
            if event.time_unix_nano > MAX_TIMESTAMP_NS:
                raise SpanRejected(f"event time_unix_nano {event.time_unix_nano} is after 2262")
        return ([e.time_unix_nano for e in span.events], [e.name for e in span.events],
                [self.attributes(e.attributes, out) for e in span.events])

    def links(self, span: Span, out: Converted) -> tuple[list[Any], ...]:
        """A span's lists of ``NESTED_FIELDS["Links"]``."""
        for link in span.links:
            check_ids(link.trace_id, link.span_id, b"", what="link ")
        return ([link.trace_id.hex() for link in span.links],
                [link.span_id.hex() for link in span.links],
                [link.trace_state for link in span.links],
                [self.attributes(link.attributes, out) for link in span.links])


def nesting_depth(text: str) -> int:
    """The deepest bracket nesting in ``text``, counting brackets inside strings too (a JSON
    string may itself hold JSON that a reader parses)."""
    depth = deepest = 0
    for match in _BRACKETS.finditer(text):
        if match.group() in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif depth:
            depth -= 1
    return deepest


def check_ids(trace_id: bytes, span_id: bytes, parent_span_id: bytes, what: str = "") -> None:
    """Trace ids are 16 non-zero bytes, span ids 8; a parent span id is empty or 8 bytes."""
    if len(trace_id) != 16:
        raise SpanRejected(f"{what}trace_id must be 16 bytes, got {len(trace_id)}")
    if trace_id == _ZERO_TRACE_ID:
        raise SpanRejected(f"{what}trace_id is all zeros")
    if len(span_id) != 8:
        raise SpanRejected(f"{what}span_id must be 8 bytes, got {len(span_id)}")
    if span_id == _ZERO_SPAN_ID:
        raise SpanRejected(f"{what}span_id is all zeros")
    if parent_span_id and len(parent_span_id) != 8:
        raise SpanRejected(f"parent_span_id must be 8 bytes or empty, got {len(parent_span_id)}")
