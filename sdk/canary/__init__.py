"""``Canary``: serve a base model, mirror or split traffic to a tuned candidate, and trace both.

One concept a module: ``assignment`` (the BLAKE2b unit draw, rates, a request's plan),
``arms`` (one arm call inside its scope and span), ``shadows`` (the bounded pools mirrored
calls run on), ``lanes`` (how arms are invoked: threads for ``__call__``, tasks for
``acall``), ``counters`` (``CanaryStats`` and the OTel metric counters) and ``router``
(``Canary``, whose one core serves both calling conventions).
"""

from canarytrace.canary.assignment import Label, Rates, Request, unit_draw
from canarytrace.canary.counters import CanaryStats
from canarytrace.canary.router import Canary
from canarytrace.canary.shadows import AsyncShadows, ShadowPool

__all__ = [
    "AsyncShadows",
    "Canary",
    "CanaryStats",
    "Label",
    "Rates",
    "Request",
    "ShadowPool",
    "unit_draw",
]
