"""Parsing what users type for a comparison: time bounds and ``--by`` slicings."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from canarytrace.analysis.inputs import SLICE_COLUMNS

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


def parse_window(since: str, until: str, now: datetime | None = None
                 ) -> tuple[datetime, datetime]:
    now = now or datetime.now(UTC)
    start, end = parse_time(since, now), parse_time(until, now)
    if start >= end:
        raise ValueError(f"the window is empty: since ({start.isoformat()}) is not before "
                         f"until ({end.isoformat()})")
    return start, end


def parse_slicings(text: str) -> tuple[tuple[str, ...], ...]:
    """``route,cohort`` slices by route and by cohort; ``route+cohort`` by their combination;
    ``none`` (or empty) only keeps the "all" slice."""
    if text.strip().lower() in ("", "none", "all"):
        return ()
    slicings = []
    for part in text.split(","):
        dims = tuple(d.strip().lower() for d in part.split("+"))
        unknown = [d for d in dims if d not in SLICE_COLUMNS]
        if unknown or not all(dims):
            raise ValueError(f"cannot slice by {part.strip()!r}: use "
                             f"{', '.join(SLICE_COLUMNS)} or combinations like route+cohort")
        if len(set(dims)) != len(dims):
            raise ValueError(f"{part.strip()!r} names a dimension twice")
        if dims not in slicings:
            slicings.append(dims)
    return tuple(slicings)
