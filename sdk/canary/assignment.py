"""Assignment: who serves a request and whether it is mirrored, sticky by ``key(request)``.

A key is hashed with BLAKE2b into a uniform draw in [0, 1); the canary split and the mirror
sample use different salts, so the two draws are independent. Without a key (or when the key
callable raises) the draws are random.
"""

from __future__ import annotations

import hashlib
import random
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from canarytrace import attributes as A
from canarytrace._safety import log_once

Request = Any
Label = str | Callable[[Request], Any] | None

_SPLIT_SALT = b"ct-canary-split"
_MIRROR_SALT = b"ct-canary-mirror"
_TWO_POW_64 = float(2**64)


def unit_draw(key: Any, salt: bytes) -> float:
    """A stable uniform draw in [0, 1) for ``key``: the same key and salt always give the same
    number; different salts give independent numbers. ``key=None`` draws at random."""
    if key is None:
        return random.random()
    raw = key if isinstance(key, bytes) else str(key).encode("utf-8", "surrogatepass")
    digest = hashlib.blake2b(raw, digest_size=8, salt=salt).digest()
    return int.from_bytes(digest, "big") / _TWO_POW_64


@dataclass(frozen=True)
class Rates:
    """``canary_rate``: share of requests the candidate serves. ``mirror_rate``: share of the
    base-served requests also sent to the candidate as a shadow call."""

    mirror_rate: float = 0.0
    canary_rate: float = 0.0

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            if isinstance(value, bool) or not isinstance(value, int | float) \
                    or not 0.0 <= value <= 1.0:
                raise ValueError(f"{field.name} must be a number between 0 and 1, got {value!r}")

    def updated(self, mirror_rate: float | None = None,
                canary_rate: float | None = None) -> Rates:
        """These rates with the given ones changed (checked again); omitted ones stay."""
        changes = {name: value for name, value in
                   (("mirror_rate", mirror_rate), ("canary_rate", canary_rate))
                   if value is not None}
        return replace(self, **changes)


@dataclass(frozen=True, slots=True)
class Plan:
    """What one request does: who serves it, whether it is mirrored, and its span labels."""

    serve_candidate: bool
    mirror: bool
    pair_id: str | None
    labels: Mapping[str, Any]

    def scope(self, variant: str, role: str, **extra: Any) -> dict[str, Any]:
        """The attributes the LLM spans of one arm call carry."""
        attrs = {A.CANARY_VARIANT: variant, A.CANARY_ROLE: role, **self.labels, **extra}
        if self.pair_id is not None:
            attrs[A.CANARY_PAIR_ID] = self.pair_id
        return attrs


BASE_ONLY = Plan(serve_candidate=False, mirror=False, pair_id=None, labels={})


class Assigner:
    """Plans each request from the current ``rates``, the sticky ``key`` and the ``route`` and
    ``cohort`` labels (values, or callables of the request)."""

    def __init__(self, rates: Rates, key: Callable[[Request], Any] | None,
                 route: Label, cohort: Label) -> None:
        self.rates = rates
        self._key = key
        self._route, self._cohort = route, cohort

    def plan(self, request: Request, *, candidate_allowed: bool) -> Plan:
        """Draw the request's arm and mirroring; with ``candidate_allowed`` False, base only."""
        labels = {name: value for name, value in (
            (A.CANARY_ROUTE, _label(self._route, request)),
            (A.CANARY_COHORT, _label(self._cohort, request))) if value is not None}
        rates = self.rates
        if not candidate_allowed:
            return Plan(False, False, None, labels)
        key = self._key_of(request)
        serve_candidate = rates.canary_rate > 0 and unit_draw(key, _SPLIT_SALT) < rates.canary_rate
        mirror = (not serve_candidate and rates.mirror_rate > 0
                  and unit_draw(key, _MIRROR_SALT) < rates.mirror_rate)
        return Plan(serve_candidate, mirror, uuid.uuid4().hex if mirror else None, labels)

    def _key_of(self, request: Request) -> Any:
        if self._key is None:
            return None
        try:
            return self._key(request)
        except Exception as exc:  # noqa: BLE001 - telemetry never raises
            log_once("canary key callable raised; assigning at random", exc)
            return None


def _label(value: Label, request: Request) -> Any:
    if not callable(value):
        return value
    try:
        return value(request)
    except Exception as exc:  # noqa: BLE001 - telemetry never raises
        log_once("canary route/cohort callable raised", exc)
        return None
