"""OTLP/HTTP wire format: request bodies in, ExportTraceServiceResponse / Status out.

Protobuf (``application/x-protobuf``) and JSON (``application/json``, the OTLP JSON
mapping: hex ids, lowerCamelCase or snake_case keys, integer enums, int64 as string or
number), optionally gzip-compressed. Every way a body can be wrong raises ``BadRequest``
with the HTTP status and a message precise enough to fix the sender.
"""

from __future__ import annotations

import base64
import binascii
import enum
import json
import zlib
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import DecodeError
from google.rpc import status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

GRPC_INVALID_ARGUMENT = 3
GRPC_UNAVAILABLE = 14
GRPC_UNAUTHENTICATED = 16


class Encoding(enum.Enum):
    PROTOBUF = "application/x-protobuf"
    JSON = "application/json"


class BadRequest(Exception):
    """A request we refuse: ``status`` is the HTTP status, the message says why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(status, message)  # both in args, so it pickles from worker processes
        self.status = status
        self.message = message

    def __str__(self) -> str:
        return self.message


def encoding_of(content_type: str | None) -> Encoding:
    """The body encoding named by a Content-Type header, or 415."""
    media_type = (content_type or "").split(";")[0].strip().lower()
    if media_type in ("application/x-protobuf", "application/protobuf"):
        return Encoding.PROTOBUF
    if media_type == "application/json":
        return Encoding.JSON
    raise BadRequest(415, f"unsupported Content-Type {media_type or '(none)'!r}: "
                          "use application/x-protobuf or application/json")


def decompress(body: bytes, content_encoding: str | None, limit: int) -> bytes:
    """Undo Content-Encoding, refusing output over ``limit`` bytes (gzip bombs) with 413.

    A gzip body may hold several members (``cat a.gz b.gz``): all are inflated, in order;
    anything after the last member that is not another member is a 400.
    """
    encoding = (content_encoding or "identity").strip().lower()
    if encoding in ("identity", ""):
        return body
    if encoding not in ("gzip", "deflate"):
        raise BadRequest(415, f"unsupported Content-Encoding {encoding!r}: use gzip or none")
    wbits = zlib.MAX_WBITS | 16 if encoding == "gzip" else zlib.MAX_WBITS
    parts: list[bytes] = []
    size, rest, member = 0, body, 0
    while True:
        inflater = zlib.decompressobj(wbits)
        try:
            data = inflater.decompress(rest, limit + 1 - size)
        except zlib.error as exc:
            where = f" (member {member + 1})" if member else ""
            raise BadRequest(400, f"body is not valid {encoding} data{where}: {exc}") from exc
        size += len(data)
        if size > limit or inflater.unconsumed_tail:
            raise BadRequest(413, f"decompressed body exceeds the {limit}-byte limit")
        if not inflater.eof:
            raise BadRequest(400, f"{encoding} body is truncated")
        parts.append(data)
        rest, member = inflater.unused_data, member + 1
        if not rest.strip(b"\0") or encoding != "gzip":  # NUL padding, as gzip(1) allows
            break
    if rest.strip(b"\0"):
        raise BadRequest(400, f"{len(rest)} bytes of trailing data after the {encoding} body")
    return b"".join(parts)


def decode(body: bytes, encoding: Encoding) -> ExportTraceServiceRequest:
    """Parse an ExportTraceServiceRequest body."""
    if encoding is Encoding.PROTOBUF:
        try:
            return ExportTraceServiceRequest.FromString(body)
        except DecodeError as exc:
            reason = str(exc).rpartition(": ")[2] or "invalid wire format"
            raise BadRequest(400, f"malformed protobuf ExportTraceServiceRequest: {reason}") \
                from exc
    return _decode_json(body)


def _decode_json(body: bytes) -> ExportTraceServiceRequest:
    try:
        document = json.loads(body)
    except UnicodeDecodeError as exc:
        raise BadRequest(400, f"JSON body is not valid UTF-8 (byte {exc.start})") from exc
    except ValueError as exc:
        raise BadRequest(400, f"malformed JSON: {exc}") from exc
    except RecursionError as exc:
        raise BadRequest(400, "malformed JSON: nested too deeply") from exc
    if not isinstance(document, dict):
        raise BadRequest(400, "JSON body must be an object with a 'resourceSpans' list")
    _hex_ids_to_base64(document)
    try:
        return json_format.ParseDict(document, ExportTraceServiceRequest(),
                                     ignore_unknown_fields=True)
    except json_format.ParseError as exc:
        raise BadRequest(400, f"invalid OTLP JSON: {str(exc).rstrip('.')}") from exc


_ID_FIELDS = ("traceId", "trace_id", "spanId", "span_id", "parentSpanId", "parent_span_id")


def _hex_ids_to_base64(document: dict[str, Any]) -> None:
    """OTLP JSON spells ids in hex where proto3 JSON expects base64: rewrite them in place."""
    for r, resource_spans in enumerate(_items(document, "resourceSpans", "resource_spans")):
        for s, scope_spans in enumerate(_items(resource_spans, "scopeSpans", "scope_spans")):
            for i, span in enumerate(_items(scope_spans, "spans")):
                where = f"resourceSpans[{r}].scopeSpans[{s}].spans[{i}]"
                _rewrite_ids(span, where)
                for j, link in enumerate(_items(span, "links")):
                    _rewrite_ids(link, f"{where}.links[{j}]")


def _items(parent: Any, *keys: str) -> list[Any]:
    if not isinstance(parent, dict):
        return []
    for key in keys:
        value = parent.get(key)
        if isinstance(value, list):
            return value
    return []


def _rewrite_ids(obj: Any, where: str) -> None:
    if not isinstance(obj, dict):
        return
    for key in _ID_FIELDS:
        value = obj.get(key)
        if not isinstance(value, str):
            continue
        try:
            raw = binascii.unhexlify(value)
        except (binascii.Error, ValueError) as exc:
            raise BadRequest(400, f"{where}.{key} is not a hex string: {value[:64]!r}") from exc
        obj[key] = base64.b64encode(raw).decode("ascii")


def _encode(message: Any, encoding: Encoding) -> bytes:
    if encoding is Encoding.PROTOBUF:
        return message.SerializeToString()
    return json_format.MessageToJson(message, indent=None).encode()


def export_response(encoding: Encoding, rejected: int = 0, error: str = "") -> bytes:
    """An ExportTraceServiceResponse; ``partial_success`` set when spans were rejected."""
    response = ExportTraceServiceResponse()
    if rejected or error:
        response.partial_success.rejected_spans = rejected
        response.partial_success.error_message = error
    return _encode(response, encoding)


def status_body(encoding: Encoding, message: str, code: int = GRPC_INVALID_ARGUMENT) -> bytes:
    """A google.rpc.Status error body, as OTLP/HTTP prescribes for failed requests."""
    return _encode(status_pb2.Status(code=code, message=message), encoding)
