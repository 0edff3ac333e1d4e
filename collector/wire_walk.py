"""A compiled walk over an OTLP ExportTraceServiceRequest body (the ingest fast path).

``walk`` finds every resource, scope, span and span attribute and writes where their
values lie in the body into integer arrays: no Python object per field. It returns -1
counts for anything the fast path leaves to the general one (``RowBuilder``): malformed
bytes, bad UTF-8, events, links, a span that breaks a rule or a limit, a field repeated
where protobuf would merge it. The gather functions then copy the values out as Arrow
string buffers (ids as lowercase hex). Compiled by numba, cached on disk.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from canarytrace.collector import rows

# Columns of the ``spans`` array: a span's resource and scope, where its fields lie.
(S_RESOURCE, S_SCOPE, S_TRACE_POS, S_TRACE_LEN, S_SPAN_POS, S_SPAN_LEN, S_PARENT_POS,
 S_PARENT_LEN, S_STATE_POS, S_STATE_LEN, S_NAME_POS, S_NAME_LEN, S_KIND, S_START, S_END,
 S_MESSAGE_POS, S_MESSAGE_LEN, S_CODE, S_ATTR_LO, S_ATTR_HI, S_BRACKETS) = range(21)
SPAN_WIDTH = 21
# Columns of the ``attrs`` array: where a key and its value lie, the value's kind.
A_KEY_POS, A_KEY_LEN, A_KIND, A_VALUE_POS, A_VALUE_LEN, A_INT = range(6)
ATTR_WIDTH = 6
# Value kinds: empty AnyValue, string, bool, int, or one Python formats (double, array,
# kvlist, bytes: A_VALUE_POS/LEN then span the whole AnyValue message).
KIND_EMPTY, KIND_STRING, KIND_BOOL, KIND_INT, KIND_PYTHON = range(5)
# Counts returned by ``walk``.
C_RESOURCES, C_SCOPES, C_SPANS, C_ATTRS = range(4)

_KIND_COUNT, _CODE_COUNT = len(rows.SPAN_KINDS), len(rows.STATUS_CODES)
_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_TRUE, _FALSE = np.frombuffer(b"true", np.uint8), np.frombuffer(b"false", np.uint8)
_OPEN_SQUARE, _OPEN_CURLY = ord("["), ord("{")
_FAIL = -1


@njit(cache=True)
def _varint(buf, pos, end):
    """The varint at ``pos`` (as int64, wrapped) and the position after it; pos -1 if bad."""
    result = np.uint64(0)
    shift = np.uint64(0)
    while pos < end and shift < 64:
        byte = buf[pos]
        pos += 1
        result |= np.uint64(byte & 0x7F) << shift
        if byte < 0x80:
            if shift == 63 and byte > 1:
                break  # bits past 64: leave it to protobuf to say what it makes of them
            return np.int64(result), pos
        shift += np.uint64(7)
    return np.int64(0), _FAIL


@njit(cache=True)
def _varint32(buf, pos, end):
    """A tag or a length, which protobuf reads in at most 5 bytes; pos -1 if longer or bad."""
    return _varint(buf, pos, min(end, pos + 5))


@njit(cache=True)
def _tag(buf, pos, end):
    """A field's number and wire type, and the position after its tag; pos -1 if bad."""
    key, pos = _varint32(buf, pos, end)
    if pos < 0 or key >> 3 < 1 or key >> 3 > 536_870_911:
        return 0, 0, _FAIL
    return key >> 3, key & 7, pos


@njit(cache=True)
def _length(buf, pos, end):
    """A length prefix and the position after it; pos -1 when it overruns ``end``."""
    size, pos = _varint32(buf, pos, end)
    if pos < 0 or size < 0 or size > end - pos:
        return 0, _FAIL
    return size, pos


@njit(cache=True)
def _skip(buf, pos, end, wire):
    """The position after a field of wire type ``wire``; -1 for groups or bad bytes."""
    if wire == 0:
        return _varint(buf, pos, end)[1]
    if wire == 1:
        return pos + 8 if pos + 8 <= end else _FAIL
    if wire == 2:
        size, pos = _length(buf, pos, end)
        return pos + size if pos >= 0 else _FAIL
    if wire == 5:
        return pos + 4 if pos + 4 <= end else _FAIL
    return _FAIL


@njit(cache=True)
def _fixed64(buf, pos):
    value = np.uint64(0)
    for i in range(8):
        value |= np.uint64(buf[pos + i]) << np.uint64(8 * i)
    return np.int64(value)


@njit(cache=True)
def _text(buf, lo, hi):
    """The ``[`` and ``{`` in buf[lo:hi], or -1 when it is not UTF-8 (as protobuf requires
    of a string field)."""
    pos, brackets = lo, 0
    while pos < hi:
        byte = buf[pos]
        if byte < 0x80:
            if byte == _OPEN_SQUARE or byte == _OPEN_CURLY:  # noqa: SIM109 - numba
                brackets += 1
            pos += 1
            continue
        if 0xC2 <= byte <= 0xDF:
            need, low, high = 1, 0x80, 0xBF
        elif 0xE0 <= byte <= 0xEF:
            need = 2
            low = 0xA0 if byte == 0xE0 else 0x80
            high = 0x9F if byte == 0xED else 0xBF
        elif 0xF0 <= byte <= 0xF4:
            need = 3
            low = 0x90 if byte == 0xF0 else 0x80
            high = 0x8F if byte == 0xF4 else 0xBF
        else:
            return _FAIL
        if pos + need >= hi or not low <= buf[pos + 1] <= high:
            return _FAIL
        for i in range(2, need + 1):
            if not 0x80 <= buf[pos + i] <= 0xBF:
                return _FAIL
        pos += need + 1
    return brackets


@njit(cache=True)
def _string(buf, pos, end):
    """A string field's (position, length, brackets); position -1 when it overruns or is
    not UTF-8."""
    size, pos = _length(buf, pos, end)
    if pos < 0:
        return _FAIL, 0, 0
    brackets = _text(buf, pos, pos + size)
    return (pos if brackets >= 0 else _FAIL), size, brackets


@njit(cache=True)
def _any_value(buf, lo, hi, out):
    """Read an AnyValue into out[A_KIND:]; -1 when the fast path must leave it, else the
    brackets in a string value."""
    pos, fields, brackets = lo, 0, 0
    out[A_KIND], out[A_VALUE_POS], out[A_VALUE_LEN], out[A_INT] = KIND_EMPTY, lo, 0, 0
    while pos < hi:
        field, wire, pos = _tag(buf, pos, hi)
        if pos < 0:
            return _FAIL
        if field > 7:
            pos = _skip(buf, pos, hi, wire)
            if pos < 0:
                return _FAIL
            continue
        fields += 1
        if field == 1 and wire == 2:
            at, size, brackets = _string(buf, pos, hi)
            if at < 0:
                return _FAIL
            out[A_KIND], out[A_VALUE_POS], out[A_VALUE_LEN] = KIND_STRING, at, size
            pos = at + size
        elif (field == 2 or field == 3) and wire == 0:
            value, pos = _varint(buf, pos, hi)
            if pos < 0:
                return _FAIL
            out[A_KIND] = KIND_BOOL if field == 2 else KIND_INT
            out[A_INT] = (1 if value != 0 else 0) if field == 2 else value
        elif (field == 4 and wire == 1) or (field >= 5 and wire == 2):
            pos = _skip(buf, pos, hi, wire)
            if pos < 0:
                return _FAIL
            out[A_KIND], out[A_VALUE_POS], out[A_VALUE_LEN] = KIND_PYTHON, lo, hi - lo
        else:
            return _FAIL
    return brackets if fields <= 1 else _FAIL


@njit(cache=True)
def _same_key(buf, attrs, a, b):
    size = attrs[a, A_KEY_LEN]
    if size != attrs[b, A_KEY_LEN]:
        return False
    first, second = attrs[a, A_KEY_POS], attrs[b, A_KEY_POS]
    for i in range(size):  # noqa: SIM110 - numba compiles loops, not generators
        if buf[first + i] != buf[second + i]:
            return False
    return True


@njit(cache=True)
def _key_value(buf, lo, hi, first, limits, attrs, row):
    """Read a KeyValue into attrs[row] (spans' attributes start at ``first``); -1 to fall
    back, else the brackets in its value."""
    out = attrs[row]
    out[:] = 0
    out[A_KEY_POS] = lo
    pos, has_value, brackets = lo, False, 0
    while pos < hi:
        field, wire, pos = _tag(buf, pos, hi)
        if pos < 0:
            return _FAIL
        if field == 1 and wire == 2:
            at, size, _ = _string(buf, pos, hi)
            if at < 0:
                return _FAIL
            out[A_KEY_POS], out[A_KEY_LEN] = at, size
            pos = at + size
        elif field == 2 and wire == 2:
            size, pos = _length(buf, pos, hi)
            if pos < 0 or has_value:
                return _FAIL
            brackets = _any_value(buf, pos, pos + size, out)
            if brackets < 0:
                return _FAIL
            has_value = True
            pos += size
        elif field == 1 or field == 2:
            return _FAIL
        else:
            pos = _skip(buf, pos, hi, wire)
            if pos < 0:
                return _FAIL
    if out[A_KEY_LEN] > limits[1] or out[A_VALUE_LEN] > limits[2]:
        return _FAIL  # a key to refuse or a value to cut: the general path says which
    for earlier in range(first, row):
        if _same_key(buf, attrs, earlier, row):
            return _FAIL
    return brackets


@njit(cache=True)
def _status(buf, lo, hi, out):
    """Read a Status into out[S_MESSAGE_POS:]; False when the fast path must leave it."""
    pos = lo
    while pos < hi:
        field, wire, pos = _tag(buf, pos, hi)
        if pos < 0:
            return False
        if field == 2 and wire == 2:
            at, size, _ = _string(buf, pos, hi)
            if at < 0:
                return False
            out[S_MESSAGE_POS], out[S_MESSAGE_LEN] = at, size
            pos = at + size
        elif field == 3 and wire == 0:
            code, pos = _varint(buf, pos, hi)
            out[S_CODE] = code
            if pos < 0:
                return False
        elif field == 2 or field == 3:
            return False
        else:
            pos = _skip(buf, pos, hi, wire)
            if pos < 0:
                return False
    return True


@njit(cache=True)
def _zeros(buf, pos, size):
    return not buf[pos:pos + size].any()


@njit(cache=True)
def _span_ok(buf, out, limits):
    """The rules ``RowBuilder.span_values`` enforces; a span breaking one falls back."""
    if out[S_TRACE_LEN] != 16 or out[S_SPAN_LEN] != 8:
        return False
    if out[S_PARENT_LEN] != 0 and out[S_PARENT_LEN] != 8:
        return False
    if _zeros(buf, out[S_TRACE_POS], 16) or _zeros(buf, out[S_SPAN_POS], 8):
        return False
    if out[S_START] <= 0 or not 0 <= out[S_KIND] < _KIND_COUNT:  # a start after 2262 is < 0
        return False
    if not 0 <= out[S_CODE] < _CODE_COUNT:
        return False
    return out[S_ATTR_HI] - out[S_ATTR_LO] <= limits[0]


@njit(cache=True)
def _span(buf, lo, hi, resource, scope, counts, limits, spans, attrs):
    """Read one Span into spans and its attributes into attrs; False to fall back."""
    if counts[C_SPANS] == len(spans):
        return False  # more spans than the body has room for valid ones
    out = spans[counts[C_SPANS]]
    out[:] = 0
    out[S_RESOURCE], out[S_SCOPE] = resource, scope
    out[S_ATTR_LO] = counts[C_ATTRS]
    pos, has_status, brackets = lo, False, 0
    while pos < hi:
        field, wire, pos = _tag(buf, pos, hi)
        if pos < 0:
            return False
        if wire == 2 and (field == 1 or field == 2 or field == 4):
            size, pos = _length(buf, pos, hi)
            column = S_TRACE_POS if field == 1 else S_SPAN_POS if field == 2 else S_PARENT_POS
            out[column], out[column + 1] = pos, size
            pos += size
        elif wire == 2 and (field == 3 or field == 5):
            at, size, _ = _string(buf, pos, hi)
            column = S_STATE_POS if field == 3 else S_NAME_POS
            out[column], out[column + 1] = at, size
            pos = at + size if at >= 0 else _FAIL
        elif field == 6 and wire == 0:
            kind, pos = _varint(buf, pos, hi)
            out[S_KIND] = kind
        elif (field == 7 or field == 8) and wire == 1:
            if pos + 8 > hi:
                return False
            out[S_START if field == 7 else S_END] = _fixed64(buf, pos)
            pos += 8
        elif field == 9 and wire == 2:
            size, pos = _length(buf, pos, hi)
            if pos < 0 or counts[C_ATTRS] == len(attrs):
                return False
            found = _key_value(buf, pos, pos + size, out[S_ATTR_LO], limits, attrs,
                               counts[C_ATTRS])
            if found < 0:
                return False
            brackets += found
            counts[C_ATTRS] += 1
            pos += size
        elif field == 15 and wire == 2:
            size, pos = _length(buf, pos, hi)
            if pos < 0 or has_status or not _status(buf, pos, pos + size, out):
                return False
            has_status = True
            pos += size
        elif 1 <= field <= 9 or field == 11 or field == 13 or field == 15:
            return False  # a known field of the wrong type, or events and links
        else:
            pos = _skip(buf, pos, hi, wire)
        if pos < 0:
            return False
    out[S_ATTR_HI], out[S_BRACKETS] = counts[C_ATTRS], brackets
    if not _span_ok(buf, out, limits):
        return False
    counts[C_SPANS] += 1
    return True


_END = -2


@njit(cache=True)
def _next_child(buf, pos, hi, header):
    """Read a ResourceSpans' or ScopeSpans' fields from ``pos`` to its next child (field 2),
    noting where its resource or scope (field 1, at most once) lies in ``header`` and
    checking its schema_url (field 3): (child position, size, position after it); the
    position is _END after the last child, -1 to fall back."""
    while pos < hi:
        field, wire, pos = _tag(buf, pos, hi)
        if pos < 0:
            return _FAIL, 0, 0
        if wire == 2 and 1 <= field <= 3:
            size, pos = _length(buf, pos, hi)
            if pos < 0:
                return _FAIL, 0, 0
            if field == 2:
                return pos, size, pos + size
            if field == 1:
                if header[0] >= 0:
                    return _FAIL, 0, 0
                header[0], header[1] = pos, size
            elif _text(buf, pos, pos + size) < 0:
                return _FAIL, 0, 0
            pos += size
        elif 1 <= field <= 3:
            return _FAIL, 0, 0
        else:
            pos = _skip(buf, pos, hi, wire)
            if pos < 0:
                return _FAIL, 0, 0
    return _END, 0, 0


@njit(cache=True)
def _scope_spans(buf, lo, hi, resource, counts, limits, scopes, spans, attrs):
    """Read one ScopeSpans (where its scope lies into scopes, and its spans); False to fall
    back."""
    scope = counts[C_SCOPES]
    if scope == len(scopes):
        return False
    counts[C_SCOPES] += 1
    scopes[scope, 0], scopes[scope, 1], scopes[scope, 2] = resource, _FAIL, 0
    pos = lo
    while True:
        child, size, pos = _next_child(buf, pos, hi, scopes[scope, 1:])
        if child == _END:
            return True
        if child < 0 or not _span(buf, child, child + size, resource, scope, counts, limits,
                                  spans, attrs):
            return False


@njit(cache=True)
def _resource_spans(buf, lo, hi, counts, limits, resources, scopes, spans, attrs):
    """Read one ResourceSpans (where its resource lies into resources, and its scopes);
    False to fall back."""
    resource = counts[C_RESOURCES]
    if resource == len(resources):
        return False
    counts[C_RESOURCES] += 1
    resources[resource, 0], resources[resource, 1] = _FAIL, 0
    pos = lo
    while True:
        child, size, pos = _next_child(buf, pos, hi, resources[resource])
        if child == _END:
            return True
        if child < 0 or not _scope_spans(buf, child, child + size, resource, counts, limits,
                                         scopes, spans, attrs):
            return False


@njit(cache=True)
def _request(buf, counts, limits, resources, scopes, spans, attrs):
    pos, end = 0, len(buf)
    while pos < end:
        field, wire, pos = _tag(buf, pos, end)
        if pos < 0:
            return False
        if field == 1 and wire == 2:
            size, pos = _length(buf, pos, end)
            if pos < 0 or not _resource_spans(buf, pos, pos + size, counts, limits,
                                              resources, scopes, spans, attrs):
                return False
            pos += size
        elif field == 1:
            return False
        else:
            pos = _skip(buf, pos, end, wire)
            if pos < 0:
                return False
    return True


MIN_SPAN_BYTES = 39
"""The smallest valid span on the wire: its tag and length, a 16-byte trace id, an 8-byte
span id and a start time, each with its tag (and length)."""


def capacities(size: int) -> tuple[int, int, int, int]:
    """Rows to allocate for a body of ``size`` bytes: more than a valid one can hold (the
    arrays are np.empty, so untouched rows cost no memory)."""
    return size // 2 + 1, size // 2 + 1, size // MIN_SPAN_BYTES + 1, size // 2 + 1


@njit(cache=True)
def walk(buf, limits, resources, scopes, spans, attrs):
    """Fill the arrays (sized by ``capacities``); the counts, or all -1 when the request is
    for the general path. ``limits``: most attributes per span, longest key and value in
    bytes."""
    counts = np.zeros(4, np.int64)
    if not _request(buf, counts, limits, resources, scopes, spans, attrs):
        counts[:] = _FAIL
    return counts


@njit(cache=True)
def gather(buf, positions, lengths):
    """The byte ranges as one Arrow string column: (offsets, data)."""
    offsets = np.empty(len(positions) + 1, np.int32)
    data = np.empty(lengths.sum(), np.uint8)
    at = 0
    for i in range(len(positions)):
        offsets[i] = at
        start = positions[i]
        for j in range(lengths[i]):
            data[at + j] = buf[start + j]
        at += lengths[i]
    offsets[len(positions)] = at
    return offsets, data


@njit(cache=True)
def gather_hex(buf, positions, lengths):
    """The byte ranges in lowercase hex, as one Arrow string column: (offsets, data)."""
    offsets = np.empty(len(positions) + 1, np.int32)
    data = np.empty(2 * lengths.sum(), np.uint8)
    at = 0
    for i in range(len(positions)):
        offsets[i] = at
        for j in range(positions[i], positions[i] + lengths[i]):
            data[at] = _HEX[buf[j] >> 4]
            data[at + 1] = _HEX[buf[j] & 15]
            at += 2
    offsets[len(positions)] = at
    return offsets, data


@njit(cache=True)
def _write_int(data, at, value):
    """``str(value)`` of an int64 into data[at:]; the position after it."""
    magnitude = np.uint64(value)
    if value < 0:
        data[at] = ord("-")
        at += 1
        magnitude = ~magnitude + np.uint64(1)
    digits = np.empty(20, np.uint8)
    count = 0
    while True:
        digits[count] = ord("0") + np.uint8(magnitude % np.uint64(10))
        count += 1
        magnitude //= np.uint64(10)
        if magnitude == 0:
            break
    for i in range(count):
        data[at + i] = digits[count - 1 - i]
    return at + count


@njit(cache=True)
def gather_values(buf, attrs):
    """Attribute values as the Go exporter writes them (strings as they are, ints in
    decimal, bools true/false, empty values ""), as one Arrow string column; KIND_PYTHON
    values are left empty for the caller to fill."""
    size = 0
    for row in range(len(attrs)):
        kind = attrs[row, A_KIND]
        size += attrs[row, A_VALUE_LEN] if kind == KIND_STRING else 20 if kind == KIND_INT \
            else 5 if kind == KIND_BOOL else 0
    offsets = np.empty(len(attrs) + 1, np.int32)
    data = np.empty(size, np.uint8)
    at = 0
    for row in range(len(attrs)):
        offsets[row] = at
        kind = attrs[row, A_KIND]
        if kind == KIND_STRING:
            start = attrs[row, A_VALUE_POS]
            for j in range(attrs[row, A_VALUE_LEN]):
                data[at + j] = buf[start + j]
            at += attrs[row, A_VALUE_LEN]
        elif kind == KIND_INT:
            at = _write_int(data, at, attrs[row, A_INT])
        elif kind == KIND_BOOL:
            word = _TRUE if attrs[row, A_INT] else _FALSE
            data[at:at + len(word)] = word
            at += len(word)
    offsets[len(attrs)] = at
    return offsets, data[:at]
