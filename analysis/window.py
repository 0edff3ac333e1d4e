"""Parsing what users type for a comparison: time bounds and ``--by`` slicings."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from canarytrace.analysis.inputs import SLICE_COLUMNS
from canarytrace.times import parse_time

_DURATION = re.compile(r"^\s*\d+(?:\.\d+)?\s*[smhdw]\s*$")


def parse_window(since: str, until: str, now: datetime | None = None
                 ) -> tuple[datetime, datetime]:
    now = now or datetime.now(UTC)
    start, end = parse_time(since, now), parse_time(until, now)
    if start >= end:
        raise ValueError(f"the window is empty: since ({start.isoformat()}) is not before "
                         f"until ({end.isoformat()})")
    return start, end


def window_kind(since: str) -> str:
    """"sliding" when ``since`` is relative to now (``24h``, ``now``), else "anchored"."""
    text = since.strip().lower()
    return "sliding" if text == "now" or _DURATION.match(text) else "anchored"


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
