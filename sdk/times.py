"""Times as users type them on the command line: ``now``, ``30m`` back, or ISO-8601."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

_RELATIVE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(2262, 4, 11, tzinfo=UTC)
"""The times a span can have: ClickHouse's DateTime64(9) range (nanoseconds in an Int64)."""


def parse_time(text: str, now: datetime) -> datetime:
    """``now``, a duration back from now (``30m``, ``1h``, ``7d``, ``2w``, ``90s``) or ISO-8601
    (a time without a zone is UTC), within :func:`check_range`. Raises ValueError with the
    accepted forms."""
    if text.strip().lower() == "now":
        return check_range(now)
    relative = _RELATIVE.match(text.lower())
    try:
        if relative:
            amount, unit = float(relative.group(1)), relative.group(2)
            return check_range(now - timedelta(**{_UNITS[unit]: amount}))
        moment = datetime.fromisoformat(text.strip())
    except OverflowError:
        raise ValueError(f"time {text!r} is out of range: times must lie between "
                         f"{EARLIEST:%Y-%m-%d} and {LATEST:%Y-%m-%d}") from None
    except ValueError:
        raise ValueError(f"cannot read time {text!r}: use ISO-8601 (2024-05-01T12:00:00Z), "
                         "'now', or a duration back from now like 30m, 1h, 7d") from None
    return check_range(moment)


def check_range(moment: datetime) -> datetime:
    """``moment`` in UTC (naive is UTC); ValueError outside [EARLIEST, LATEST), which a
    nanosecond timestamp cannot hold."""
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    if not EARLIEST <= moment < LATEST:
        raise ValueError(f"time {moment.isoformat()} is out of range: times must lie between "
                         f"{EARLIEST:%Y-%m-%d} and {LATEST:%Y-%m-%d}")
    return moment
