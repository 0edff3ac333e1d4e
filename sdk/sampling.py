"""Head sampling that keeps both arms of a mirrored request, even across processes.

A mesh mirrors a request to two services, each of which starts its own trace: sampling by
trace id would keep a base span and drop its candidate partner. ``PairRatioSampler`` decides
a root span that carries ``canary.pair_id`` (from ``ct.request`` or the request-id
middleware) by a stable hash of the pair id, so every process takes the same decision for the
same request; other root spans are sampled by trace id as usual.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from opentelemetry.context import Context
from opentelemetry.sdk.trace.sampling import (
    Decision,
    Sampler,
    SamplingResult,
    TraceIdRatioBased,
)
from opentelemetry.trace import Link, SpanKind
from opentelemetry.trace.span import TraceState
from opentelemetry.util.types import Attributes

from canarytrace import attributes as A

_SALT = b"canarytrace-head-sample"


def pair_unit(pair_id: str) -> float:
    """A stable, uniform number in [0, 1) for ``pair_id`` (the same in every process)."""
    digest = hashlib.blake2b(pair_id.encode(), digest_size=8, key=_SALT).digest()
    return int.from_bytes(digest, "big") / 2**64


class PairRatioSampler(Sampler):
    """Sample ``rate`` of requests: by pair id when the span has one, else by trace id."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self._by_trace = TraceIdRatioBased(rate)

    def should_sample(self, parent_context: Context | None, trace_id: int, name: str,
                      kind: SpanKind | None = None, attributes: Attributes = None,
                      links: Sequence[Link] | None = None,
                      trace_state: TraceState | None = None) -> SamplingResult:
        pair_id = attributes.get(A.CANARY_PAIR_ID) if attributes else None
        if not isinstance(pair_id, str) or not pair_id:
            return self._by_trace.should_sample(parent_context, trace_id, name, kind,
                                                attributes, links, trace_state)
        keep = self.rate >= 1.0 or pair_unit(pair_id) < self.rate
        decision = Decision.RECORD_AND_SAMPLE if keep else Decision.DROP
        return SamplingResult(decision, attributes if keep else None, trace_state)

    def get_description(self) -> str:
        return f"PairRatioSampler{{{self.rate}}}"
