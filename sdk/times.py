"""Times as users type them on the command line: ``now``, ``30m`` back, or ISO-8601."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

_RELATIVE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_time(text: str, now: datetime) -> datetime:
    """``now``, a duration back from now (``30m``, ``1h``, ``7d``, ``2w``, ``90s``) or ISO-8601
    (a time without a zone is UTC). Raises ValueError with the accepted forms."""
    if text.strip().lower() == "now":
        return now
    relative = _RELATIVE.match(text.lower())
    if relative:
        amount, unit = float(relative.group(1)), relative.group(2)
        return now - timedelta(**{_UNITS[unit]: amount})
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"cannot read time {text!r}: use ISO-8601 (2024-05-01T12:00:00Z), "
                         "'now', or a duration back from now like 30m, 1h, 7d") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
