"""OTLP logs and metrics -> ``otel_logs`` and ``otel_metrics_*`` rows.

Bodies are decoded like trace bodies (protobuf or the OTLP JSON mapping with hex ids, gzip
undone by the route) and written the way the OpenTelemetry Collector's ClickHouse exporter
writes them: ids in lowercase hex, attribute values as strings, the log body as its string
form. Attribute limits are the span limits; a record that breaks one is rejected on its own
and reported as OTLP partial success.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)

from canarytrace import attributes as A
from canarytrace.collector import otlp
from canarytrace.collector.rows import (
    MAX_TIMESTAMP_NS,
    Converted,
    Limits,
    RowBuilder,
    SpanRejected,
    value_to_str,
)
from canarytrace.store.timestamps import NS_PER_S

_ID_KEYS = ("traceId", "trace_id", "spanId", "span_id")


@dataclass
class Signal:
    """The rows of one logs or metrics request (by table), and what was refused."""

    tables: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    rejected: int = 0
    errors: list[str] = field(default_factory=list)
    records: list[tuple[dict[str, Any], Any]] = field(default_factory=list)
    """(row, LogRecord) pairs of the logs request, for the GenAI event handling."""

    @property
    def rows(self) -> int:
        return sum(map(len, self.tables.values()))

    def error_message(self, what: str) -> str:
        if not self.errors:
            return ""
        more = f" (and {len(self.errors) - 1} more)" if len(self.errors) > 1 else ""
        return f"rejected {self.rejected} {what}: {self.errors[0]}{more}"


# --- decoding ---------------------------------------------------------------------------

def decode(body: bytes, encoding: otlp.Encoding, message: type[Message]) -> Any:
    """Parse an Export{Logs,Metrics}ServiceRequest body; otlp.BadRequest when it is not one."""
    name = message.DESCRIPTOR.name
    if encoding is otlp.Encoding.PROTOBUF:
        try:
            return message.FromString(body)
        except DecodeError as exc:
            reason = str(exc).rpartition(": ")[2] or "invalid wire format"
            raise otlp.BadRequest(400, f"malformed protobuf {name}: {reason}") from exc
    try:
        document = json.loads(body)
    except UnicodeDecodeError as exc:
        raise otlp.BadRequest(400, f"JSON body is not valid UTF-8 (byte {exc.start})") from exc
    except ValueError as exc:
        raise otlp.BadRequest(400, f"malformed JSON: {exc}") from exc
    except RecursionError as exc:
        raise otlp.BadRequest(400, "malformed JSON: nested too deeply") from exc
    if not isinstance(document, dict):
        raise otlp.BadRequest(400, f"JSON body must be an object ({name})")
    _hex_ids(document, "$")
    try:
        return json_format.ParseDict(document, message(), ignore_unknown_fields=True)
    except json_format.ParseError as exc:
        raise otlp.BadRequest(400, f"invalid OTLP JSON: {str(exc).rstrip('.')}") from exc


def _hex_ids(node: Any, where: str) -> None:
    """OTLP JSON spells trace and span ids in hex where proto3 JSON wants base64."""
    if isinstance(node, list):
        for i, item in enumerate(node):
            _hex_ids(item, f"{where}[{i}]")
        return
    if not isinstance(node, dict):
        return
    for key, value in node.items():
        if key in _ID_KEYS and isinstance(value, str):
            node[key] = _b64(value, f"{where}.{key}")
        elif isinstance(value, (dict, list)):
            _hex_ids(value, f"{where}.{key}")


def _b64(hex_text: str, where: str) -> str:
    try:
        return base64.b64encode(binascii.unhexlify(hex_text)).decode("ascii")
    except (binascii.Error, ValueError) as exc:
        raise otlp.BadRequest(400, f"{where} is not a hex string: {hex_text[:64]!r}") from exc


def logs_response(encoding: otlp.Encoding, rejected: int = 0, error: str = "") -> bytes:
    response = ExportLogsServiceResponse()
    if rejected or error:
        response.partial_success.rejected_log_records = rejected
        response.partial_success.error_message = error
    return otlp._encode(response, encoding)


def metrics_response(encoding: otlp.Encoding, rejected: int = 0, error: str = "") -> bytes:
    response = ExportMetricsServiceResponse()
    if rejected or error:
        response.partial_success.rejected_data_points = rejected
        response.partial_success.error_message = error
    return otlp._encode(response, encoding)


# --- rows -------------------------------------------------------------------------------

def _hex(raw: bytes, size: int, what: str) -> str:
    if not raw:
        return ""
    if len(raw) != size:
        raise SpanRejected(f"{what} must be {size} bytes or empty, got {len(raw)}")
    return raw.hex()


def _time(ns: int, what: str) -> str:
    """``YYYY-MM-DD hh:mm:ss.nnnnnnnnn`` (UTC): unambiguous for ClickHouse even near 1970,
    where ``seconds.nanoseconds`` text is read as a date."""
    if ns > MAX_TIMESTAMP_NS:
        raise SpanRejected(f"{what} {ns} is after 2262")
    seconds, nanos = divmod(ns, NS_PER_S)
    return f"{datetime.fromtimestamp(seconds, UTC):%Y-%m-%d %H:%M:%S}.{nanos:09d}"


class SignalBuilder:
    """Converts logs and metrics requests for one project, under the span ``limits``."""

    def __init__(self, limits: Limits) -> None:
        self.builder = RowBuilder(limits)

    def _attributes(self, key_values: Any) -> dict[str, str]:
        return self.builder.attributes(key_values, Converted())

    def _resource(self, resource: Any, project: str) -> dict[str, str]:
        attributes = self._attributes(resource.attributes)
        attributes[A.CANARY_PROJECT] = project
        return attributes

    def logs(self, request: ExportLogsServiceRequest, project: str) -> Signal:
        out = Signal(tables={"otel_logs": []})
        for resource_logs in request.resource_logs:
            try:
                resource = self._resource(resource_logs.resource, project)
            except SpanRejected as exc:
                out.rejected += sum(len(s.log_records) for s in resource_logs.scope_logs)
                out.errors.append(f"resource {exc}")
                continue
            for scope_logs in resource_logs.scope_logs:
                scope = scope_logs.scope
                head = {"ServiceName": resource.get(A.SERVICE_NAME, ""),
                        "ResourceSchemaUrl": resource_logs.schema_url,
                        "ResourceAttributes": resource, "ScopeSchemaUrl": scope_logs.schema_url,
                        "ScopeName": scope.name, "ScopeVersion": scope.version}
                for record in scope_logs.log_records:
                    try:
                        row = {**head, **self._log_row(record, scope)}
                    except SpanRejected as exc:
                        out.rejected += 1
                        out.errors.append(str(exc))
                        continue
                    out.tables["otel_logs"].append(row)
                    out.records.append((row, record))
        return out

    def _log_row(self, record: Any, scope: Any) -> dict[str, Any]:
        attributes = self._attributes(record.attributes)
        event_name = getattr(record, "event_name", "") or attributes.get(A.EVENT_NAME, "")
        return {
            "Timestamp": _time(record.time_unix_nano or record.observed_time_unix_nano,
                               "time_unix_nano"),
            "TraceId": _hex(record.trace_id, 16, "trace_id"),
            "SpanId": _hex(record.span_id, 8, "span_id"),
            "TraceFlags": record.flags & 0xFF,
            "SeverityText": record.severity_text,
            "SeverityNumber": int(record.severity_number),
            "Body": value_to_str(record.body),
            "ScopeAttributes": self._attributes(scope.attributes),
            "LogAttributes": attributes,
            "EventName": event_name,
        }

    def metrics(self, request: ExportMetricsServiceRequest, project: str) -> Signal:
        out = Signal(tables={})
        for resource_metrics in request.resource_metrics:
            try:
                resource = self._resource(resource_metrics.resource, project)
            except SpanRejected as exc:
                out.rejected += 1
                out.errors.append(f"resource {exc}")
                continue
            for scope_metrics in resource_metrics.scope_metrics:
                scope = scope_metrics.scope
                head = {"ResourceAttributes": resource,
                        "ResourceSchemaUrl": resource_metrics.schema_url,
                        "ScopeName": scope.name, "ScopeVersion": scope.version,
                        "ScopeAttributes": self._attributes(scope.attributes),
                        "ScopeDroppedAttrCount": scope.dropped_attributes_count,
                        "ScopeSchemaUrl": scope_metrics.schema_url,
                        "ServiceName": resource.get(A.SERVICE_NAME, "")}
                for metric in scope_metrics.metrics:
                    self._metric(metric, head, out)
        return out

    def _metric(self, metric: Any, head: dict[str, Any], out: Signal) -> None:
        kind = metric.WhichOneof("data")
        if kind is None:
            return
        table = "otel_metrics_" + kind
        data = getattr(metric, kind)
        head = {**head, "MetricName": metric.name, "MetricDescription": metric.description,
                "MetricUnit": metric.unit}
        for point in data.data_points:
            try:
                row = {**head, **self._point(kind, data, point)}
            except SpanRejected as exc:
                out.rejected += 1
                out.errors.append(f"{metric.name}: {exc}")
                continue
            out.tables.setdefault(table, []).append(row)

    def _point(self, kind: str, data: Any, point: Any) -> dict[str, Any]:
        row: dict[str, Any] = {
            "Attributes": self._attributes(point.attributes),
            "StartTimeUnix": _time(point.start_time_unix_nano, "start_time_unix_nano"),
            "TimeUnix": _time(point.time_unix_nano, "time_unix_nano"),
            "Flags": point.flags,
        }
        if kind in ("gauge", "sum"):
            row["Value"] = float(point.as_double if point.WhichOneof("value") == "as_double"
                                 else point.as_int)
        if kind == "sum":
            row["AggregationTemporality"] = int(data.aggregation_temporality)
            row["IsMonotonic"] = bool(data.is_monotonic)
        if kind in ("histogram", "exponential_histogram", "summary"):
            row["Count"], row["Sum"] = int(point.count), float(point.sum)
        if kind in ("histogram", "exponential_histogram"):
            row["Min"], row["Max"] = float(point.min), float(point.max)
            row["AggregationTemporality"] = int(data.aggregation_temporality)
        if kind == "histogram":
            row["BucketCounts"] = list(point.bucket_counts)
            row["ExplicitBounds"] = list(point.explicit_bounds)
        if kind == "exponential_histogram":
            row.update({"Scale": point.scale, "ZeroCount": int(point.zero_count),
                        "PositiveOffset": point.positive.offset,
                        "PositiveBucketCounts": list(point.positive.bucket_counts),
                        "NegativeOffset": point.negative.offset,
                        "NegativeBucketCounts": list(point.negative.bucket_counts)})
        if kind == "summary":
            row["ValueAtQuantiles.Quantile"] = [q.quantile for q in point.quantile_values]
            row["ValueAtQuantiles.Value"] = [q.value for q in point.quantile_values]
        else:
            self._exemplars(point, row)
        return row

    def _exemplars(self, point: Any, row: dict[str, Any]) -> None:
        exemplars = list(point.exemplars)
        row["Exemplars.FilteredAttributes"] = [self._attributes(e.filtered_attributes)
                                               for e in exemplars]
        row["Exemplars.TimeUnix"] = [_time(e.time_unix_nano, "exemplar time") for e in exemplars]
        row["Exemplars.Value"] = [float(e.as_double if e.WhichOneof("value") == "as_double"
                                        else e.as_int) for e in exemplars]
        row["Exemplars.SpanId"] = [_hex(e.span_id, 8, "exemplar span_id") for e in exemplars]
        row["Exemplars.TraceId"] = [_hex(e.trace_id, 16, "exemplar trace_id")
                                    for e in exemplars]
