"""``Canary``: serve a base model, mirror or split traffic to a tuned candidate, and trace both.

Each request is planned first (is it served by the candidate? is it mirrored?), sticky by
``key(request)`` when a key is given. The served arm runs in the caller; a mirrored request
also queues a *shadow* call of the candidate on a bounded background pool. One core,
``Canary._serve``, does this for ``__call__`` and ``acall`` alike; only the lane that invokes
the arms differs (``lanes.py``).

Trace shape: the primary and the shadow span are siblings under the span that was current when
the canary was called (a server span, say); when none was, the canary opens an INTERNAL
``canary <candidate model>`` root span for them. Either way a pair shares one trace and one
parent-based sampling decision: it is sampled whole or not at all.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from opentelemetry import metrics, trace

from canarytrace import _runtime
from canarytrace import attributes as A
from canarytrace._safety import log_once
from canarytrace.canary.arms import ArmCall, make_arm
from canarytrace.canary.assignment import BASE_ONLY, Assigner, Label, Plan, Rates, Request
from canarytrace.canary.counters import CanaryStats, Tally
from canarytrace.canary.lanes import Lane, TaskLane, ThreadLane, run_to_end
from canarytrace.canary.shadows import ShadowPool


class Canary:
    """Serve ``base`` and ship ``candidate`` as a canary: mirror a ``mirror_rate`` share of the
    base-served requests to it in the background and let it serve a ``canary_rate`` share.

    Call it like the arms: ``canary(request)`` for sync callables, ``await canary.acall(request)``
    for async ones. ``key(request)`` makes assignment sticky (a user stays in one arm); without
    it assignment is random. With ``fallback`` a candidate exception or a candidate slower than
    ``timeout_s`` is answered by the base; the base span then records ``canary.fallback`` and
    the candidate's ``error.type``. ``route`` and ``cohort`` are values or callables of the
    request. Shadow calls run on at most ``shadow_workers`` threads (tasks, for ``acall``) with
    ``shadow_queue_size`` waiting; beyond that they are dropped and counted.
    """

    def __init__(self, base: Callable[[Request], Any], candidate: Callable[[Request], Any], *,
                 base_model: str | None = None, candidate_model: str | None = None,
                 mirror_rate: float = 0.0, canary_rate: float = 0.0, fallback: bool = True,
                 timeout_s: float | None = None, key: Callable[[Request], Any] | None = None,
                 route: Label = None, cohort: Label = None, shadow_workers: int = 4,
                 shadow_queue_size: int = 64, candidate_workers: int = 16,
                 meter: metrics.Meter | None = None) -> None:
        if timeout_s is not None and timeout_s <= 0:
            raise ValueError(f"timeout_s must be positive, got {timeout_s!r}")
        rates = Rates(mirror_rate=mirror_rate, canary_rate=canary_rate)
        self._base = make_arm(base, base_model, A.VARIANT_BASE)
        self._candidate = make_arm(candidate, candidate_model, A.VARIANT_CANDIDATE)
        self.fallback = fallback
        self.timeout_s = timeout_s
        self._assigner = Assigner(rates, key, route, cohort)
        self._killed = False
        self._closed = False
        self._threads = ThreadLane(ShadowPool(shadow_workers, shadow_queue_size),
                                   candidate_workers)
        self._tasks = TaskLane(shadow_workers, shadow_queue_size)
        self._span_name = f"canary {self._candidate.model}"
        self._models = {A.CANARY_BASE_MODEL: self._base.model,
                        A.CANARY_CANDIDATE_MODEL: self._candidate.model}
        self._tally = Tally(meter or _runtime.get_meter(), self._models)
        weakref.finalize(self, self._threads.pool.stop_soon)

    # -- control ---------------------------------------------------------------------------

    @property
    def rates(self) -> Rates:
        return self._assigner.rates

    def set_rates(self, mirror_rate: float | None = None,
                  canary_rate: float | None = None) -> Rates:
        """Change the rates for the next requests (progressive rollout); omitted ones stay."""
        self._assigner.rates = self._assigner.rates.updated(mirror_rate, canary_rate)
        return self._assigner.rates

    def kill(self) -> None:
        """Kill switch: from now on no request reaches the candidate, as primary or shadow."""
        self._killed = True

    def revive(self) -> None:
        """Undo ``kill()``: the rates apply again."""
        self._killed = False

    @property
    def killed(self) -> bool:
        return self._killed

    @property
    def stats(self) -> CanaryStats:
        return self._tally.snapshot(pending_shadows=self._threads.pending + self._tasks.pending)

    @property
    def shadow_pool(self) -> ShadowPool:
        return self._threads.pool

    # -- serving: one core for both calling conventions -----------------------------------

    def __call__(self, request: Request) -> Any:
        """Serve ``request`` with sync arms; shadows run on the background thread pool."""
        return run_to_end(self._serve(request, self._threads))

    async def acall(self, request: Request) -> Any:
        """The ``__call__`` of async arms: shadows are tasks, ``timeout_s`` is a wait_for."""
        return await self._serve(request, self._tasks)

    async def _serve(self, request: Request, lane: Lane) -> Any:
        """Plan the request, queue its shadow, serve it (falling back to the base), count."""
        plan = self._plan_safely(request)
        with self._shared_trace():
            mirror = self._mirror(request, plan, lane) if plan.mirror else A.MIRROR_NONE
            primary = {A.CANARY_MIRROR: mirror}
            if plan.serve_candidate:
                return await self._serve_candidate(request, plan, primary, lane)
            return await self._serve_base(request, plan, primary, lane)

    async def _serve_base(self, request: Request, plan: Plan, extra: Mapping[str, Any],
                          lane: Lane) -> Any:
        self._tally.add("served_base")
        scope = plan.scope(A.VARIANT_BASE, A.ROLE_PRIMARY, **extra)
        return await lane.serve(ArmCall(self._base, request, scope))

    async def _serve_candidate(self, request: Request, plan: Plan, extra: Mapping[str, Any],
                               lane: Lane) -> Any:
        scope = plan.scope(A.VARIANT_CANDIDATE, A.ROLE_PRIMARY, **extra)
        try:
            answer = await lane.serve(ArmCall(self._candidate, request, scope, self.timeout_s))
        except Exception as exc:
            self._tally.add_failure(exc)
            if not self.fallback:
                raise
            self._tally.add("fallbacks")
            fallback = {**extra, **self._fallback_attributes(exc)}
            return await self._serve_base(request, plan, fallback, lane)
        self._tally.add("served_candidate")
        return answer

    def _fallback_attributes(self, error: BaseException) -> dict[str, Any]:
        """What the base span that answered in the candidate's place records."""
        return {A.CANARY_FALLBACK: True, A.ERROR_TYPE: type(error).__qualname__,
                A.CANARY_CANDIDATE_MODEL: self._candidate.model}

    def _mirror(self, request: Request, plan: Plan, lane: Lane) -> str:
        """Queue the shadow call; returns the ``canary.mirror`` outcome (sent or dropped)."""
        try:
            scope = plan.scope(A.VARIANT_CANDIDATE, A.ROLE_SHADOW)
            call = ArmCall(self._candidate, request, scope, self.timeout_s)
            accepted = lane.mirror(lambda: self._shadow(call, lane))
        except Exception as exc:  # noqa: BLE001 - mirroring never breaks serving
            log_once("canary could not queue a shadow call", exc)
            accepted = False
        self._tally.add("mirrored" if accepted else "dropped")
        return A.MIRROR_SENT if accepted else A.MIRROR_DROPPED

    async def _shadow(self, call: ArmCall, lane: Lane) -> None:
        try:
            await lane.run_shadow(call)
        except Exception as exc:  # noqa: BLE001 - recorded on the shadow span, never raised
            self._tally.add_failure(exc)

    # -- planning --------------------------------------------------------------------------

    def _plan_safely(self, request: Request) -> Plan:
        try:
            plan = self._assigner.plan(request,
                                       candidate_allowed=not (self._killed or self._closed))
        except Exception as exc:  # noqa: BLE001 - a canary bug must not break serving
            log_once("canary planning failed; serving the base", exc)
            return BASE_ONLY
        self._tally.add("requests")
        return plan

    @contextmanager
    def _shared_trace(self) -> Iterator[None]:
        """Keep both arms in one trace: under the current span, or under a ``canary`` root span
        opened here when no span is current."""
        if trace.get_current_span().get_span_context().is_valid:
            yield
            return
        with _runtime.get_tracer().start_as_current_span(
                self._span_name, kind=trace.SpanKind.INTERNAL, attributes=self._models):
            yield

    # -- shutdown --------------------------------------------------------------------------

    def close(self, timeout: float = 5.0) -> None:
        """Stop mirroring and wait up to ``timeout`` s for accepted shadow calls; afterwards
        the canary serves the base only. Queued shadows still waiting then are dropped (and
        counted); running ones finish in the background."""
        self._closed = True
        self._count_dropped(self._threads.close(timeout))

    async def aclose(self, timeout: float = 5.0) -> None:
        """``close()`` for ``acall`` users: also waits for this loop's shadow tasks."""
        self._closed = True
        deadline = time.monotonic() + timeout
        self._count_dropped(await self._tasks.drain(timeout))
        await asyncio.to_thread(self.close, max(deadline - time.monotonic(), 0.0))

    def _count_dropped(self, dropped: int) -> None:
        if dropped:
            self._tally.add("dropped", dropped)

    def __enter__(self) -> Canary:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    async def __aenter__(self) -> Canary:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
