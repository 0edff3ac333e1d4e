"""How hard a judge endpoint may be called: pacing to a budget, pausing on Retry-After,
jittered exponential backoff, and a breaker that stops calling a judge that keeps failing.

All of them are shared by the threads of one judge client, so its concurrent calls
together keep to the provider's limits.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Mapping
from email.utils import parsedate_to_datetime

RETRYABLE_STATUSES = frozenset({429, 502, 503, 504})
"""Answers that mean "come back later": rate limited, or a gateway/server not ready."""


class Pacer:
    """Spreads ``per_minute`` units (requests or tokens) evenly over each minute, with no
    burst: a call waits until its share of the budget is free."""

    def __init__(self, per_minute: float) -> None:
        if per_minute <= 0:
            raise ValueError(f"a per-minute budget must be positive, got {per_minute}")
        self.seconds_per_unit = 60.0 / per_minute
        self._next = 0.0
        self._lock = threading.Lock()

    def take(self, units: float = 1.0) -> float:
        """Wait until ``units`` may be spent; returns the seconds waited."""
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + units * self.seconds_per_unit
        if start > now:
            time.sleep(start - now)
        return start - now

    def refund(self, units: float) -> None:
        """Correct an estimate: negative ``units`` give budget back, positive ones take more."""
        with self._lock:
            self._next += -units * self.seconds_per_unit


class Pause:
    """A moment before which no call is sent (set from a 429's Retry-After), shared by all."""

    def __init__(self) -> None:
        self._until = 0.0
        self._lock = threading.Lock()

    def hold(self, seconds: float) -> None:
        with self._lock:
            self._until = max(self._until, time.monotonic() + seconds)

    def wait(self) -> None:
        """Sleep until the pause is over, plus a little jitter so callers do not all wake at
        the same instant."""
        while (delay := self._until - time.monotonic()) > 0:
            time.sleep(delay + random.uniform(0, min(0.05, delay / 10)))


class Breaker:
    """Opens after ``threshold`` calls in a row failed: for ``cooldown_s`` calls fail fast
    (the judge is down, its results stay provisional); then calls are tried again."""

    def __init__(self, threshold: int, cooldown_s: float = 30.0) -> None:
        self.threshold, self.cooldown_s = threshold, cooldown_s
        self._failures, self._open_until, self.last_error = 0, 0.0, ""
        self._lock = threading.Lock()

    def open_for(self) -> float:
        """Seconds the breaker stays open (0 when calls may go through)."""
        return max(0.0, self._open_until - time.monotonic())

    def failed(self, error: str) -> None:
        with self._lock:
            self._failures += 1
            self.last_error = error
            if self._failures >= self.threshold:
                self._open_until = time.monotonic() + self.cooldown_s

    def succeeded(self) -> None:
        with self._lock:
            self._failures, self._open_until = 0, 0.0


def retry_after_s(headers: Mapping[str, str]) -> float | None:
    """The server's wait, from ``retry-after-ms`` (OpenAI, vLLM routers) or ``Retry-After``
    (seconds or an HTTP date); None when absent or unreadable."""
    milliseconds = headers.get("retry-after-ms")
    if milliseconds:
        try:
            return max(0.0, float(milliseconds) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def backoff_s(attempt: int, base_s: float = 0.5, cap_s: float = 30.0) -> float:
    """Exponential backoff with jitter: between half and all of ``base_s * 2**attempt``."""
    ceiling = min(cap_s, base_s * 2 ** attempt)
    return random.uniform(ceiling / 2, ceiling)
