"""Counters: what a canary did, kept for ``Canary.stats`` and added to OTel metric counters
``canarytrace.canary.*`` (attributes: the base and candidate model)."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, fields

from opentelemetry import metrics

from canarytrace._safety import log_once


@dataclass(frozen=True)
class CanaryStats:
    """A snapshot of a canary's counters (``pending_shadows``: accepted, not finished yet)."""

    requests: int = 0
    served_base: int = 0
    served_candidate: int = 0
    mirrored: int = 0
    dropped: int = 0
    fallbacks: int = 0
    candidate_errors: int = 0
    candidate_timeouts: int = 0
    pending_shadows: int = 0


_COUNTED = tuple(f.name for f in fields(CanaryStats) if f.name != "pending_shadows")
_METRIC_DESCRIPTIONS = {
    "requests": "Requests handled by the canary",
    "served_base": "Requests answered by the base model",
    "served_candidate": "Requests answered by the candidate model",
    "mirrored": "Shadow calls of the candidate accepted by the pool",
    "dropped": "Shadow calls dropped: the pool was full, or close() ran out of time",
    "fallbacks": "Candidate failures answered by the base model instead",
    "candidate_errors": "Candidate calls that raised",
    "candidate_timeouts": "Candidate calls that exceeded timeout_s",
}


class Tally:
    """Counters kept in the object (for ``stats``) and added to OpenTelemetry counters."""

    def __init__(self, meter: metrics.Meter, attributes: Mapping[str, str]) -> None:
        self._counts = dict.fromkeys(_COUNTED, 0)
        self._lock = threading.Lock()
        self._attributes = dict(attributes)
        self._instruments = {
            name: meter.create_counter(f"canarytrace.canary.{name}", unit="1",
                                       description=_METRIC_DESCRIPTIONS[name])
            for name in _COUNTED
        }

    def add(self, name: str, amount: int = 1) -> None:
        with self._lock:
            self._counts[name] += amount
        try:
            self._instruments[name].add(amount, self._attributes)
        except Exception as exc:  # noqa: BLE001 - telemetry never raises
            log_once("canary metric export failed", exc)

    def add_failure(self, error: BaseException) -> None:
        """Count a failed candidate call: a timeout or an error."""
        self.add("candidate_timeouts" if isinstance(error, TimeoutError) else "candidate_errors")

    def snapshot(self, pending_shadows: int) -> CanaryStats:
        with self._lock:
            return CanaryStats(**self._counts, pending_shadows=pending_shadows)
