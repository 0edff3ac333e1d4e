"""Which spans get evaluated: a rate, overridable per route and cohort.

The decision hashes the span's pair id (its trace id when it has none), so both
arms of a mirrored pair are sampled together or not at all (the SDK stamps both
arms with the same route and cohort, hence the same rate), and re-running an
evaluation picks exactly the same spans.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field

from canarytrace.evaluators.base import SpanRecord

_SALT = b"canarytrace-eval-sample"
_OVERRIDE_COLUMNS = ("route", "cohort")


def unit_hash(key: str) -> float:
    """A stable, uniform number in [0, 1) for ``key``."""
    digest = hashlib.blake2b(key.encode(), digest_size=8, key=_SALT).digest()
    return int.from_bytes(digest, "big") / 2**64


def sampling_key(span: SpanRecord) -> str:
    """What the decision hashes: the pair id, so a mirrored pair shares one decision."""
    return span.pair_id or span.trace_id


@dataclass(frozen=True)
class SamplingRule:
    """``rate`` for every span, unless its route or cohort has its own rate (cohort wins)."""

    rate: float = 1.0
    route_rates: Mapping[str, float] = field(default_factory=dict)
    cohort_rates: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        rates = [self.rate, *self.route_rates.values(), *self.cohort_rates.values()]
        if any(not 0.0 <= r <= 1.0 for r in rates):
            raise ValueError(f"sampling rates must be between 0 and 1, got {rates}")

    def rate_for(self, span: SpanRecord) -> float:
        if span.cohort in self.cohort_rates:
            return self.cohort_rates[span.cohort]
        return self.route_rates.get(span.route, self.rate)

    def selects(self, span: SpanRecord) -> bool:
        return unit_hash(sampling_key(span)) < self.rate_for(span)

    @classmethod
    def parse(cls, rate: float, overrides: list[str] | None = None) -> SamplingRule:
        """Build from ``rate`` and overrides like ``route=billing:0.5`` or ``cohort=eu:1``;
        raises ValueError naming the bad item."""
        rates: dict[str, dict[str, float]] = {column: {} for column in _OVERRIDE_COLUMNS}
        for item in overrides or []:
            column, name, value = _split_override(item)
            rates[column][name] = value
        return cls(rate=rate, route_rates=rates["route"], cohort_rates=rates["cohort"])


def _split_override(item: str) -> tuple[str, str, float]:
    column, _, rest = item.partition("=")
    name, _, text = rest.rpartition(":")
    usage = f"bad sampling override {item!r}: use route=NAME:RATE or cohort=NAME:RATE"
    if column not in _OVERRIDE_COLUMNS or not name or not text:
        raise ValueError(usage)
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{usage} (RATE {text!r} is not a number)") from None
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{usage} (RATE must be between 0 and 1)")
    return column, name, value
