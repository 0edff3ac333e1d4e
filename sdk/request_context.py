"""``ct.request``: the request an LLM call serves, whose id pairs the mesh's mirrored copies.

A mesh (Envoy, Istio, Linkerd) that mirrors a request to a canary keeps its ``x-request-id``
on the copy. Recording that id as ``canary.pair_id`` on the LLM spans of both services lets
the comparison pair the base's and the candidate's answers to the same request, exactly as
it pairs a ``ct.Canary`` primary and its shadow.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from canarytrace import attributes as A
from canarytrace._safety import log_once
from canarytrace.context import scoped_attributes

MAX_REQUEST_ID_LENGTH = 256
"""Longer ids are not recorded (a pair key, not a payload)."""


def clean_request_id(value: Any) -> str | None:
    """``value`` (text, bytes or an integer id) as a pair key: stripped printable text of at
    most 256 characters, else None."""
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    elif isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        return None
    value = value.strip()
    if not value or len(value) > MAX_REQUEST_ID_LENGTH or not value.isprintable():
        return None
    return value


def request_attributes(request_id: Any = None, route: str | None = None,
                       cohort: str | None = None) -> dict[str, str]:
    """The scope of one request: its id as the pair key, and its route and cohort if given."""
    found: dict[str, str] = {}
    pair_id = clean_request_id(request_id)
    if pair_id is not None:
        found[A.CANARY_PAIR_ID] = pair_id
    elif request_id is not None:
        log_once("ignoring a request id that is empty, too long or not printable text")
    for key, value in ((A.CANARY_ROUTE, route), (A.CANARY_COHORT, cohort)):
        if value:
            found[key] = str(value)
    return found


@contextmanager
def request(request_id: str | None = None, *, route: str | None = None,
            cohort: str | None = None) -> Iterator[str | None]:
    """Within this block, LLM spans belong to request ``request_id`` (``canary.pair_id``) and
    carry ``route`` and ``cohort`` when given. Yields the recorded id (None when unusable)."""
    attributes = request_attributes(request_id, route, cohort)
    with scoped_attributes(attributes):
        yield attributes.get(A.CANARY_PAIR_ID)
