"""What a failed ClickHouse call means: the input was refused, or the store is out.

``REFUSED``: the data or query itself is at fault (a parse error, a violated constraint);
the same call fails again, so an API answers 4xx and the writer isolates the bad rows.
``OUTAGE``: the store cannot take it now (unreachable, disk full, out of memory or file
descriptors, too many parts); the same call may work later, so keep it and retry.
``UNKNOWN``: anything else; treated like an outage by whoever must not lose data.
"""

from __future__ import annotations

import enum

from clickhouse_connect.driver.exceptions import ClickHouseError, OperationalError


class Fault(enum.Enum):
    REFUSED = "refused"
    OUTAGE = "outage"
    UNKNOWN = "unknown"


REFUSED_CODES = {
    6: "CANNOT_PARSE_TEXT", 9: "SIZES_OF_COLUMNS_DOESNT_MATCH", 25: "CANNOT_PARSE_ESCAPE_SEQUENCE",
    26: "CANNOT_PARSE_QUOTED_STRING", 27: "CANNOT_PARSE_INPUT_ASSERTION_FAILED",
    32: "ATTEMPT_TO_READ_AFTER_EOF", 33: "CANNOT_READ_ALL_DATA", 36: "BAD_ARGUMENTS",
    38: "CANNOT_PARSE_DATE", 41: "CANNOT_PARSE_DATETIME", 43: "ILLEGAL_TYPE_OF_ARGUMENT",
    53: "TYPE_MISMATCH", 69: "ARGUMENT_OUT_OF_BOUND", 70: "CANNOT_CONVERT_TYPE",
    72: "CANNOT_PARSE_NUMBER", 117: "INCORRECT_DATA", 128: "TOO_LARGE_ARRAY_SIZE",
    130: "CANNOT_READ_ARRAY_FROM_TEXT", 131: "TOO_LARGE_STRING_SIZE", 158: "TOO_MANY_ROWS",
    190: "SIZES_OF_ARRAYS_DONT_MATCH", 307: "TOO_MANY_BYTES",
    321: "VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE", 349: "CANNOT_INSERT_NULL_IN_ORDINARY_COLUMN",
    396: "TOO_MANY_ROWS_OR_BYTES", 407: "DECIMAL_OVERFLOW",
    441: "CANNOT_PARSE_DOMAIN_VALUE_FROM_STRING", 457: "BAD_QUERY_PARAMETER",
    469: "VIOLATED_CONSTRAINT",
}
OUTAGE_CODES = {
    74: "CANNOT_READ_FROM_FILE_DESCRIPTOR", 75: "CANNOT_WRITE_TO_FILE_DESCRIPTOR",
    76: "CANNOT_OPEN_FILE", 77: "CANNOT_CLOSE_FILE", 159: "TIMEOUT_EXCEEDED",
    173: "CANNOT_ALLOCATE_MEMORY", 202: "TOO_MANY_SIMULTANEOUS_QUERIES", 209: "SOCKET_TIMEOUT",
    210: "NETWORK_ERROR", 225: "NO_ZOOKEEPER", 236: "ABORTED", 241: "MEMORY_LIMIT_EXCEEDED",
    242: "TABLE_IS_READ_ONLY", 243: "NOT_ENOUGH_SPACE", 252: "TOO_MANY_PARTS",
    275: "AIO_WRITE_ERROR", 319: "UNKNOWN_STATUS_OF_INSERT",
    364: "RECEIVED_ERROR_TOO_MANY_REQUESTS", 394: "QUERY_WAS_CANCELLED", 425: "SYSTEM_ERROR",
    439: "CANNOT_SCHEDULE_TASK", 473: "DEADLOCK_AVOIDED", 999: "KEEPER_EXCEPTION",
}
RESOURCE_TEXT = ("no space left", "not enough space", "too many open files",
                 "cannot allocate memory", "memory limit", "std::bad_alloc", "disk quota",
                 "errno: 28", "errno: 24", "errno: 23", "errno: 12", "errno: 122",
                 "connection refused", "connection reset", "timed out")
TOO_MANY_PARTITIONS = "too many partitions"


def classify(exc: BaseException) -> Fault:
    """Whether ``exc`` (from a clickhouse-connect call) is a refusal, an outage or unknown."""
    if isinstance(exc, OSError):
        return Fault.OUTAGE  # a temp file, a socket, a descriptor: the machine, not the data
    if not isinstance(exc, ClickHouseError):
        return Fault.UNKNOWN
    code, text = getattr(exc, "code", None), str(exc).lower()
    if code == 252 and TOO_MANY_PARTITIONS in text:
        return Fault.REFUSED
    if code in OUTAGE_CODES or any(marker in text for marker in RESOURCE_TEXT):
        return Fault.OUTAGE
    if code in REFUSED_CODES:
        return Fault.REFUSED
    if isinstance(exc, OperationalError) and code is None:
        return Fault.OUTAGE  # no answer from the server at all
    return Fault.UNKNOWN


def first_line(exc: BaseException) -> str:
    """The first line of an error message (ClickHouse's run to many lines and a stack)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
