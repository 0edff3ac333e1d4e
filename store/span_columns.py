"""otel_traces rows as typed Arrow columns: what the collector spools and inserts.

Rows are dicts keyed by column name (``Events.Timestamp`` etc. for the Nested columns).
Timestamps are integer nanoseconds since the epoch (text ``seconds.nanoseconds`` and
datetimes are accepted too), so ClickHouse parses nothing: a span from 1970 stores the
same as one from today. One request's rows travel as one Arrow IPC stream.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc as ipc

from canarytrace.store.timestamps import NS_PER_S, to_ns

NS_PER_DAY = 86_400 * NS_PER_S
_MAP = pa.map_(pa.string(), pa.string())
_TIME = pa.timestamp("ns")
_TEXT = pa.string()

COLUMNS: tuple[tuple[str, pa.DataType, Any], ...] = (  # name, Arrow type, default
    ("Timestamp", _TIME, 0), ("TraceId", _TEXT, ""), ("SpanId", _TEXT, ""),
    ("ParentSpanId", _TEXT, ""), ("TraceState", _TEXT, ""), ("SpanName", _TEXT, ""),
    ("SpanKind", _TEXT, ""), ("ServiceName", _TEXT, ""), ("ResourceAttributes", _MAP, {}),
    ("ScopeName", _TEXT, ""), ("ScopeVersion", _TEXT, ""), ("SpanAttributes", _MAP, {}),
    ("Duration", pa.uint64(), 0), ("StatusCode", _TEXT, ""), ("StatusMessage", _TEXT, ""),
    ("Events.Timestamp", pa.list_(_TIME), []), ("Events.Name", pa.list_(_TEXT), []),
    ("Events.Attributes", pa.list_(_MAP), []), ("Links.TraceId", pa.list_(_TEXT), []),
    ("Links.SpanId", pa.list_(_TEXT), []), ("Links.TraceState", pa.list_(_TEXT), []),
    ("Links.Attributes", pa.list_(_MAP), []),
)
SCHEMA = pa.schema([(name, kind) for name, kind, _ in COLUMNS])
_TIME_COLUMNS = ("Timestamp", "Events.Timestamp")
_MAP_COLUMNS = ("ResourceAttributes", "SpanAttributes", "Events.Attributes", "Links.Attributes")
_FLAT_MAPS = ("ResourceAttributes", "SpanAttributes")


def timestamp_ns(value: Any) -> int:
    """Nanoseconds since the epoch from an int, ``seconds.nanoseconds`` text or a datetime."""
    if isinstance(value, int):
        return value
    if isinstance(value, datetime):
        return to_ns(value)
    if isinstance(value, float):
        return int(value)
    text = str(value).strip()
    seconds, dot, fraction = text.partition(".")
    if seconds.isdigit() and (not dot or fraction.isdigit()):
        return int(seconds) * NS_PER_S + int((fraction + "000000000")[:9] or 0)
    return to_ns(datetime.fromisoformat(text.replace("Z", "+00:00")))


def table(rows: list[Mapping[str, Any]]) -> pa.Table:
    """Rows (dicts keyed by column name) as one Arrow table of the otel_traces columns.

    A value of the wrong type raises ``TypeError`` or ``ValueError`` naming the column.
    """
    present = set().union(*rows)
    return columns_table({name: [row.get(name, default) for row in rows]
                          for name, _, default in COLUMNS if name in present}, len(rows))


def columns_table(columns: Mapping[str, Sequence[Any]], count: int) -> pa.Table:
    """Columns by name, each ``count`` values long (Python values or Arrow arrays of the
    column's type), as one Arrow table; an absent column holds its default. Maps shared by
    many rows (a resource's) are built once."""
    arrays = []
    for name, kind, default in COLUMNS:
        values = columns.get(name)
        if values is None:
            arrays.append(_default_column(kind, default, count))
            continue
        if isinstance(values, pa.Array):
            arrays.append(values)
            continue
        try:
            arrays.append(map_column(values) if name in _FLAT_MAPS
                          else pa.array(values, type=kind))
        except (pa.ArrowTypeError, pa.ArrowInvalid, TypeError, OverflowError, AttributeError):
            arrays.append(_coerced(name, kind, list(values)))
    return pa.Table.from_arrays(arrays, schema=SCHEMA)


def _default_column(kind: pa.DataType, default: Any, count: int) -> pa.Array:
    if default == []:  # no events or links at all: empty lists without a value each
        offsets = pa.array([0] * (count + 1), pa.int32())
        return pa.ListArray.from_arrays(offsets, pa.array([], kind.value_type), type=kind)
    return pa.array([default] * count, type=kind)


def map_column(maps: Sequence[Mapping[str, str]]) -> pa.Array:
    """Map(String, String) from dicts; dicts shared by many rows (a resource's) built once."""
    first: dict[int, int] = {}
    unique: list[Mapping[str, str]] = []
    indices = []
    for value in maps:
        slot = first.get(id(value))
        if slot is None:
            slot = first[id(value)] = len(unique)
            unique.append(value)
        indices.append(slot)
    keys: list[str] = []
    values: list[str] = []
    offsets = [0]
    for value in unique:
        keys += value
        values += value.values()
        offsets.append(len(keys))
    built = pa.MapArray.from_arrays(pa.array(offsets, pa.int32()), pa.array(keys, _TEXT),
                                    pa.array(values, _TEXT))
    return built if len(unique) == len(maps) else built.take(pa.array(indices, pa.int32()))


def _coerced(name: str, kind: pa.DataType, values: list[Any]) -> pa.Array:
    """The slow path for rows written by hand: text timestamps, non-string attribute values."""
    try:
        if name == "Timestamp":
            values = [timestamp_ns(v) for v in values]
        elif name == "Events.Timestamp":
            values = [[timestamp_ns(t) for t in times] for times in values]
        elif name in ("ResourceAttributes", "SpanAttributes"):
            values = [{str(k): str(v) for k, v in m.items()} for m in values]
        elif name in _MAP_COLUMNS:
            values = [[{str(k): str(v) for k, v in m.items()} for m in maps] for maps in values]
        return pa.array(values, type=kind)
    except (pa.ArrowException, TypeError, ValueError, OverflowError, AttributeError) as exc:
        raise ValueError(f"column {name}: {exc}") from exc


def to_ipc(data: pa.Table) -> bytes:
    """One Arrow IPC stream (schema + batches): what a spool record and an insert carry."""
    sink = io.BytesIO()
    with ipc.new_stream(sink, data.schema) as writer:
        writer.write_table(data)
    return sink.getvalue()


def from_ipc(payload: bytes) -> pa.Table:
    """The table of one Arrow IPC stream; ValueError when it is not one of ours."""
    try:
        data = ipc.open_stream(pa.py_buffer(payload)).read_all()
    except pa.ArrowException as exc:
        raise ValueError(f"not an Arrow IPC stream: {exc}") from exc
    if not data.schema.equals(SCHEMA):
        raise ValueError("Arrow stream does not have the otel_traces columns")
    return data


def concat(tables: Iterable[pa.Table]) -> pa.Table:
    return pa.concat_tables(list(tables))


def partition_chunks(data: pa.Table, max_days: int) -> list[pa.Table]:
    """``data`` split so that no piece spans more than ``max_days`` UTC days (partitions)."""
    if not data.num_rows:
        return []
    days = pc.divide(data.column("Timestamp").cast(pa.int64()), NS_PER_DAY)
    distinct = pc.unique(days)
    if len(distinct) <= max_days:
        return [data]
    ordered = pc.sort_indices(distinct)
    sorted_days = pc.take(distinct, ordered)
    bounds = [sorted_days[i].as_py() for i in range(0, len(sorted_days), max_days)]
    pieces = []
    for i, low in enumerate(bounds):
        mask = pc.greater_equal(days, low)
        if i + 1 < len(bounds):
            mask = pc.and_(mask, pc.less(days, bounds[i + 1]))
        pieces.append(data.filter(mask))
    return pieces
