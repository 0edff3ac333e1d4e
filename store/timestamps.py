"""Span timestamps: nanoseconds since the epoch, and the text forms ClickHouse and the API use."""

from __future__ import annotations

from datetime import UTC, datetime

NS_PER_S = 1_000_000_000


def to_ns(moment: datetime) -> int:
    """Nanoseconds since the epoch; naive datetimes are taken as UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * NS_PER_S + delta.microseconds * 1_000


def format_ns(ns: int) -> str:
    """Nanoseconds since the epoch as ClickHouse DateTime64(9) text: ``seconds.nanoseconds``."""
    return f"{ns // NS_PER_S}.{ns % NS_PER_S:09d}"


def iso_ns(ns: int) -> str:
    """``2024-05-01T12:00:00.123456789Z`` for nanoseconds since the epoch."""
    seconds, nanos = divmod(int(ns), NS_PER_S)
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{nanos:09d}Z"
