"""The ingest fast path: a common OTLP protobuf request straight to otel_traces columns.

``wire_walk`` locates every field in the body; numpy and Arrow copy them out by column,
so a span costs no Python object per attribute. It builds exactly the table
``RowBuilder`` would (the tests compare both on many requests) and covers the requests
most clients send: spans without events or links, none to reject or truncate, none in
another GenAI convention (those need ``normalize`` in full). For anything else,
``columns`` returns None and the caller takes the general path, which also words the
errors and partial successes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from canarytrace import attributes as A
from canarytrace.collector import wire_walk as W
from canarytrace.collector.normalize import CONVENTION_MARKERS, finish_reasons_in
from canarytrace.collector.rows import (
    SPAN_KINDS,
    STATUS_CODES,
    Converted,
    Limits,
    RowBuilder,
    SpanRejected,
    value_to_str,
)
from canarytrace.store import span_columns

_MARKERS = pa.array(sorted(CONVENTION_MARKERS), pa.string())
_KINDS, _CODES = pa.array(SPAN_KINDS), pa.array(STATUS_CODES)
_FINISH_REASON = '"finish_reason"'
Gather = Callable[[np.ndarray, np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]
"""``wire_walk.gather`` or ``gather_hex``: byte ranges to Arrow (offsets, data)."""


@dataclass(frozen=True)
class FastColumns:
    """One request's spans as an otel_traces table, and how many resource values were cut."""

    table: pa.Table
    truncated_values: int


class _Fallback(Exception):
    """The request needs the general path."""


def warm_up() -> None:
    """Compile the walk (or load it from numba's cache) on a request that takes every branch,
    and check that it builds what the general path builds; RuntimeError if not."""
    body = _every_branch().SerializeToString()
    builder = RowBuilder(Limits())
    fast = columns(body, "warm-up", builder)
    general = builder.convert(ExportTraceServiceRequest.FromString(body), "warm-up").table()
    if fast is None or not fast.table.equals(general):
        raise RuntimeError("the ingest fast path does not build what the general path builds")


def _every_branch() -> ExportTraceServiceRequest:
    """One span with a value of every kind and output messages that name a finish reason."""
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    resource_spans.resource.attributes.add(key=A.SERVICE_NAME).value.string_value = "warm-up"
    scope_spans = resource_spans.scope_spans.add()
    scope_spans.scope.name = "canarytrace"
    span = scope_spans.spans.add(trace_id=bytes(range(1, 17)), span_id=bytes(range(1, 9)),
                                 name="chat", kind=3, start_time_unix_nano=1,
                                 end_time_unix_nano=2)
    values = {A.GEN_AI_OUTPUT_MESSAGES: AnyValue(string_value='[{"finish_reason": "stop"}]'),
              A.GEN_AI_USAGE_INPUT_TOKENS: AnyValue(int_value=-3),
              A.GEN_AI_REQUEST_TEMPERATURE: AnyValue(double_value=0.5),
              A.CANARY_FALLBACK: AnyValue(bool_value=True)}
    for key, value in values.items():
        span.attributes.add(key=key).value.CopyFrom(value)
    return request


def columns(body: bytes, project: str, builder: RowBuilder) -> FastColumns | None:
    """The request's otel_traces table, or None when the general path must take it."""
    buf = np.frombuffer(body, np.uint8)
    found = _walk(buf, builder)
    if found is None:
        return None
    resources, scopes, spans, attrs = found
    try:
        scope_columns, truncated = _scope_columns(body, project, resources, scopes, builder)
        span_attributes = _span_attributes(body, buf, spans, attrs, builder)
    except _Fallback:
        return None
    arrays = {
        "Timestamp": pa.array(spans[:, W.S_START], pa.timestamp("ns")),
        "TraceId": _strings(buf, spans, W.S_TRACE_POS, W.gather_hex),
        "SpanId": _strings(buf, spans, W.S_SPAN_POS, W.gather_hex),
        "ParentSpanId": _strings(buf, spans, W.S_PARENT_POS, W.gather_hex),
        "TraceState": _strings(buf, spans, W.S_STATE_POS, W.gather),
        "SpanName": _strings(buf, spans, W.S_NAME_POS, W.gather),
        "SpanKind": _KINDS.take(pa.array(spans[:, W.S_KIND])),
        "SpanAttributes": span_attributes,
        "Duration": pa.array(_durations(spans), pa.uint64()),
        "StatusCode": _CODES.take(pa.array(spans[:, W.S_CODE])),
        "StatusMessage": _strings(buf, spans, W.S_MESSAGE_POS, W.gather),
    }
    scope_of = pa.array(spans[:, W.S_SCOPE])
    arrays.update((name, column.take(scope_of)) for name, column in scope_columns.items())
    return FastColumns(span_columns.columns_table(arrays, len(spans)), truncated)


def _walk(buf: np.ndarray, builder: RowBuilder) -> tuple[np.ndarray, ...] | None:
    """The walk's arrays (resources, scopes, spans, attrs), or None to fall back."""
    limits = builder.limits
    bounds = np.array([limits.max_attributes_per_span, limits.max_attribute_key_length,
                       limits.max_attribute_length], np.int64)
    arrays = [np.empty((rows, width), np.int64) for rows, width in
              zip(W.capacities(len(buf)), (2, 3, W.SPAN_WIDTH, W.ATTR_WIDTH), strict=True)]
    counts = W.walk(buf, bounds, *arrays)
    if counts[0] < 0 or counts[W.C_SPANS] == 0:
        return None
    return tuple(array[:count] for array, count in zip(arrays, counts, strict=True))


def _strings(buf: np.ndarray, rows: np.ndarray, position: int, gather: Gather) -> pa.Array:
    """The string column of the byte ranges at ``rows[:, position]`` (length next to it)."""
    offsets, data = gather(buf, rows[:, position].copy(), rows[:, position + 1].copy())
    return pa.StringArray.from_buffers(len(rows), pa.py_buffer(offsets), pa.py_buffer(data))


def _durations(spans: np.ndarray) -> np.ndarray:
    start, end = spans[:, W.S_START].view(np.uint64), spans[:, W.S_END].view(np.uint64)
    return np.where(end > start, end - start, np.uint64(0))


def _scope_columns(body: bytes, project: str, resources: np.ndarray, scopes: np.ndarray,
                   builder: RowBuilder) -> tuple[dict[str, pa.Array], int]:
    """ServiceName, ResourceAttributes, ScopeName, ScopeVersion of each scope (the general
    path's code reads the few resources), and the resource values cut."""
    out = Converted()
    shared = []
    try:
        placed = _parsed_in_place(b"".join(_field(1, _field(1, _slice(body, position, size)))
                                           for position, size in resources))
        for resource_spans in placed.resource_spans:
            attributes = builder.attributes(resource_spans.resource.attributes, out)
            attributes[A.CANARY_PROJECT] = project
            shared.append(attributes)
        placed = _parsed_in_place(b"".join(
            _field(1, _field(2, _field(1, _slice(body, position, size))))
            for _, position, size in scopes))
    except SpanRejected as exc:
        raise _Fallback from exc
    of_scope = [shared[resource] for resource in scopes[:, 0]]
    scope_messages = [resource_spans.scope_spans[0].scope
                      for resource_spans in placed.resource_spans]
    return {"ServiceName": pa.array([r.get(A.SERVICE_NAME, "") for r in of_scope], pa.string()),
            "ResourceAttributes": span_columns.map_column(of_scope),
            "ScopeName": pa.array([scope.name for scope in scope_messages], pa.string()),
            "ScopeVersion": pa.array([scope.version for scope in scope_messages], pa.string()),
            }, out.truncated_values


def _parsed_in_place(body: bytes) -> ExportTraceServiceRequest:
    """A request built around pieces of the body, so that protobuf parses each at the depth
    it has in the body (its nesting limit counts from the request); _Fallback if it fails."""
    try:
        return ExportTraceServiceRequest.FromString(body)
    except DecodeError as exc:
        raise _Fallback from exc


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field (the numbers used here fit a one-byte tag)."""
    size, length = len(payload), bytearray()
    while size >= 0x80:
        length.append(size & 0x7F | 0x80)
        size >>= 7
    length.append(size)
    return bytes([number << 3 | 2]) + bytes(length) + payload


def _slice(body: bytes, position: int, size: int) -> bytes:
    return body[position:position + size] if position >= 0 else b""


def _span_attributes(body: bytes, buf: np.ndarray, spans: np.ndarray, attrs: np.ndarray,
                     builder: RowBuilder) -> pa.Array:
    """The SpanAttributes map column, with the finish reasons ``normalize`` would add."""
    keys = _strings(buf, attrs, W.A_KEY_POS, W.gather)
    if len(keys) and pc.any(pc.is_in(keys, value_set=_MARKERS)).as_py():
        raise _Fallback  # another convention: normalize in full
    owners = np.repeat(np.arange(len(spans)), spans[:, W.S_ATTR_HI] - spans[:, W.S_ATTR_LO])
    values = _values(body, buf, spans, attrs, owners, builder.limits)
    added = _finish_reasons(keys, values, owners, builder.limits.max_attribute_length)
    if added:
        extra_owners, extra_values = zip(*added, strict=True)
        owners = np.concatenate([owners, np.array(extra_owners, np.int64)])
        order = pa.array(np.argsort(owners, kind="stable"))
        keys = pa.concat_arrays([keys, pa.array([A.GEN_AI_RESPONSE_FINISH_REASONS] * len(added))])
        values = pa.concat_arrays([values, pa.array(extra_values, pa.string())])
        keys, values = keys.take(order), values.take(order)
    offsets = np.zeros(len(spans) + 1, np.int32)
    np.cumsum(np.bincount(owners, minlength=len(spans)), out=offsets[1:])
    return pa.MapArray.from_arrays(pa.array(offsets), keys, values)


def _values(body: bytes, buf: np.ndarray, spans: np.ndarray, attrs: np.ndarray,
            owners: np.ndarray, limits: Limits) -> pa.Array:
    """Attribute values as strings (doubles, arrays, maps and bytes formatted in Python);
    _Fallback when one is to be cut, or a span has enough brackets to hold JSON nested too
    deep (the general path does both)."""
    offsets, data = W.gather_values(buf, attrs)
    values = pa.StringArray.from_buffers(len(attrs), pa.py_buffer(offsets), pa.py_buffer(data))
    python = np.flatnonzero(attrs[:, W.A_KIND] == W.KIND_PYTHON)
    key_values = b"".join(_field(9, _field(2, body[p:p + n]))
                          for p, n in attrs[python][:, [W.A_VALUE_POS, W.A_VALUE_LEN]])
    span = _parsed_in_place(_field(1, _field(2, _field(2, key_values)))) \
        .resource_spans[0].scope_spans[0].spans[0] if len(python) else None
    texts = [value_to_str(kv.value) for kv in span.attributes] if span else []
    brackets = spans[:, W.S_BRACKETS].copy()
    np.add.at(brackets, owners[python], [t.count("[") + t.count("{") for t in texts])
    if brackets.max() > limits.max_json_depth \
            or any(len(t) > limits.max_attribute_length for t in texts):
        raise _Fallback
    if not texts:
        return values
    mask = np.zeros(len(attrs), bool)
    mask[python] = True
    return pc.replace_with_mask(values, pa.array(mask), pa.array(texts, pa.string()))


def _finish_reasons(keys: pa.Array, values: pa.Array, owners: np.ndarray,
                    max_length: int) -> list[tuple[int, str]]:
    """(span, finish reasons) for spans whose output messages name them and which lack
    ``gen_ai.response.finish_reasons``: what ``normalize`` adds to a span of no convention."""
    has_reasons = np.flatnonzero(pc.equal(keys, A.GEN_AI_RESPONSE_FINISH_REASONS)
                                 .to_numpy(zero_copy_only=False))
    if len(has_reasons) and not pc.all(pc.not_equal(values.take(has_reasons), "")).as_py():
        raise _Fallback  # an empty value normalize would replace in place
    outputs = np.flatnonzero(pc.equal(keys, A.GEN_AI_OUTPUT_MESSAGES)
                             .to_numpy(zero_copy_only=False))
    outputs = outputs[~np.isin(owners[outputs], owners[has_reasons])]
    texts = values.take(outputs)
    named = pc.match_substring(texts, _FINISH_REASON).to_numpy(zero_copy_only=False)
    added = []
    for span, text in zip(owners[outputs[named]].tolist(),
                          texts.filter(pa.array(named)).to_pylist(), strict=True):
        reasons = finish_reasons_in(text)
        if reasons is not None:
            if len(reasons) > max_length:
                raise _Fallback  # to cut: the general path counts it
            added.append((span, reasons))
    return added

