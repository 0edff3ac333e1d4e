"""``Canary``: serve a base model, mirror or split traffic to a tuned candidate, and trace both.

Each request is planned first (is it served by the candidate? is it mirrored?), sticky by
``key(request)`` when a key is given. The served arm runs in the caller; a mirrored request
also queues a *shadow* call of the candidate on a bounded background pool. Every arm call runs
inside ``scoped_attributes`` so that its LLM span(s) carry ``canary.variant``, ``canary.role``,
``canary.pair_id``, ``canary.route`` and ``canary.cohort``; an arm that is not ``@llm``-wrapped
gets an ``llm_call`` span from the canary, with the request as input and its answer as output.

Trace shape: the primary and the shadow span are siblings under the span that was current when
the canary was called (a server span, say); when none was, the canary opens an INTERNAL
``canary <candidate model>`` root span for them. Either way a pair shares one trace and one
parent-based sampling decision: it is sampled whole or not at all.

Timeouts: an async candidate is cancelled at ``timeout_s``. A sync one cannot be interrupted: as
primary it runs on a worker thread that the caller stops waiting for; a call (primary or
shadow) that ends after ``timeout_s`` is counted as a timeout. Either way the arm's span
(``@llm``'s own or the canary's) records a ``TimeoutError``.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import hashlib
import inspect
import queue
import random
import threading
import time
import uuid
import weakref
from collections.abc import Awaitable, Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, fields
from typing import Any

from canarytrace import _runtime
from canarytrace import attributes as A
from canarytrace._safety import log_once
from canarytrace.calls import llm_call
from canarytrace.context import is_instrumented, scoped_attributes, scoped_deadline
from opentelemetry import metrics, trace

Request = Any
Label = str | Callable[[Request], Any] | None

_SPLIT_SALT = b"ct-canary-split"
_MIRROR_SALT = b"ct-canary-mirror"
_TWO_POW_64 = float(2**64)


# --- assignment --------------------------------------------------------------------------

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


@dataclass(frozen=True, slots=True)
class _Plan:
    """What one request does: who serves it, whether it is mirrored, and its span labels."""

    serve_candidate: bool
    mirror: bool
    pair_id: str | None
    labels: Mapping[str, Any]

    def scope(self, variant: str, role: str, **extra: Any) -> dict[str, Any]:
        attrs = {A.CANARY_VARIANT: variant, A.CANARY_ROLE: role, **self.labels, **extra}
        if self.pair_id is not None:
            attrs[A.CANARY_PAIR_ID] = self.pair_id
        return attrs


_BASE_ONLY = _Plan(serve_candidate=False, mirror=False, pair_id=None, labels={})


# --- counters ----------------------------------------------------------------------------

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


class _Tally:
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

    def snapshot(self, pending_shadows: int) -> CanaryStats:
        with self._lock:
            return CanaryStats(**self._counts, pending_shadows=pending_shadows)


# --- shadow pools ------------------------------------------------------------------------

_STOP = object()


class ShadowPool:
    """Runs shadow jobs on ``workers`` daemon threads fed by a queue of at most ``queue_size``.

    ``try_submit`` never blocks: when the queue is full it returns False (the caller drops and
    counts the job). Threads start on the first submit.
    """

    def __init__(self, workers: int, queue_size: int) -> None:
        if workers < 1 or queue_size < 1:
            raise ValueError("shadow_workers and shadow_queue_size must be at least 1")
        self.workers = workers
        self.queue_size = queue_size
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=queue_size)
        self._threads: list[threading.Thread] = []
        self._start_lock = threading.Lock()
        self._closed = False

    @property
    def pending(self) -> int:
        """Jobs accepted and not finished (queued or running)."""
        return self._queue.unfinished_tasks

    @property
    def queued(self) -> int:
        """Jobs waiting in the queue (never more than ``queue_size``)."""
        return self._queue.qsize()

    def try_submit(self, job: Callable[[], None]) -> bool:
        if self._closed:
            return False
        if not self._threads:
            self._start()
        try:
            self._queue.put_nowait(job)
        except queue.Full:
            return False
        return True

    def _start(self) -> None:
        with self._start_lock:
            if self._threads or self._closed:
                return
            for index in range(self.workers):
                thread = threading.Thread(target=_work, args=(self._queue,), daemon=True,
                                          name=f"canarytrace-shadow-{index}")
                thread.start()
                self._threads.append(thread)

    def close(self, timeout: float) -> int:
        """Stop accepting jobs, wait up to ``timeout`` s for the accepted ones; return how many
        queued jobs were discarded unrun because the wait ran out (running ones finish)."""
        self._closed = True
        if not self._threads:
            return 0
        deadline = time.monotonic() + timeout
        _put_stop(self._queue, timeout)
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(max(deadline - time.monotonic(), 0.0))
        discarded = _discard_queued(self._queue)  # also the stop marker the last worker left
        if any(thread.is_alive() for thread in self._threads):
            self.stop_soon()
        return discarded

    def stop_soon(self) -> None:
        """Let the workers exit once the queued jobs are done; never blocks (for finalizers)."""
        self._closed = True
        _put_stop(self._queue)


def _put_stop(jobs: queue.Queue[Any], timeout: float | None = None) -> None:
    """Queue the stop marker (unless the queue stays full); a marker is never a pending task."""
    with contextlib.suppress(queue.Full):
        jobs.put(_STOP, block=timeout is not None, timeout=timeout)
        jobs.task_done()


def _work(jobs: queue.Queue[Any]) -> None:
    while True:
        job = jobs.get()
        if job is _STOP:  # pass the marker on to the next worker, then exit
            _put_stop(jobs)
            return
        try:
            job()
        except Exception as exc:  # noqa: BLE001 - a shadow never takes its worker down
            log_once("canary shadow job failed", exc)
        finally:
            jobs.task_done()


def _discard_queued(jobs: queue.Queue[Any]) -> int:
    """Empty the queue; returns how many jobs (not stop markers) it held."""
    discarded = 0
    while True:
        try:
            job = jobs.get_nowait()
        except queue.Empty:
            return discarded
        if job is not _STOP:
            jobs.task_done()
            discarded += 1


class AsyncShadows:
    """Shadow calls as asyncio tasks on one event loop: at most ``workers`` run at once and at
    most ``workers + queue_size`` exist; beyond that ``try_submit`` returns False."""

    def __init__(self, workers: int, queue_size: int) -> None:
        self._running = asyncio.Semaphore(workers)
        self._capacity = workers + queue_size
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def pending(self) -> int:
        return len(self._tasks)

    def try_submit(self, make_call: Callable[[], Awaitable[None]]) -> bool:
        if len(self._tasks) >= self._capacity:
            return False
        task = asyncio.get_running_loop().create_task(self._run(make_call))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    async def _run(self, make_call: Callable[[], Awaitable[None]]) -> None:
        async with self._running:
            await make_call()

    async def drain(self, timeout: float) -> int:
        """Wait up to ``timeout`` s for the tasks; cancel and return the count of the rest."""
        if not self._tasks:
            return 0
        _, late = await asyncio.wait(set(self._tasks), timeout=timeout)
        for task in late:
            task.cancel()
        return len(late)


# --- the canary --------------------------------------------------------------------------

@dataclass(frozen=True)
class _Arm:
    fn: Callable[[Request], Any]
    model: str
    variant: str
    instrumented: bool


def _label(value: Label, request: Request) -> Any:
    if not callable(value):
        return value
    try:
        return value(request)
    except Exception as exc:  # noqa: BLE001 - telemetry never raises
        log_once("canary route/cohort callable raised", exc)
        return None


def _messages_of(request: Request) -> Any:
    """What an arm's span records as input: a request's ``messages`` (or ``prompt``) when it
    is a mapping that has them, else the request itself."""
    if isinstance(request, Mapping):
        for name in ("messages", "prompt"):
            if name in request:
                return request[name]
    return request


def _overran(deadline: float | None) -> bool:
    return deadline is not None and time.monotonic() > deadline


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
        self._rates = Rates(mirror_rate=mirror_rate, canary_rate=canary_rate)
        self._base = _arm(base, base_model, A.VARIANT_BASE)
        self._candidate = _arm(candidate, candidate_model, A.VARIANT_CANDIDATE)
        self.fallback = fallback
        self.timeout_s = timeout_s
        self._key = key
        self._route, self._cohort = route, cohort
        self._killed = False
        self._closed = False
        self._pool = ShadowPool(shadow_workers, shadow_queue_size)
        self._async_pools: dict[asyncio.AbstractEventLoop, AsyncShadows] = {}
        self._async_lock = threading.Lock()
        self._candidate_threads = candidate_workers
        self._executor: ThreadPoolExecutor | None = None
        self._span_name = f"canary {self._candidate.model}"
        self._models = {A.CANARY_BASE_MODEL: self._base.model,
                        A.CANARY_CANDIDATE_MODEL: self._candidate.model}
        self._tally = _Tally(meter or _runtime.get_meter(), self._models)
        weakref.finalize(self, self._pool.stop_soon)

    # -- control ---------------------------------------------------------------------------

    @property
    def rates(self) -> Rates:
        return self._rates

    def set_rates(self, mirror_rate: float | None = None,
                  canary_rate: float | None = None) -> Rates:
        """Change the rates for the next requests (progressive rollout); omitted ones stay."""
        current = self._rates
        self._rates = Rates(
            mirror_rate=current.mirror_rate if mirror_rate is None else mirror_rate,
            canary_rate=current.canary_rate if canary_rate is None else canary_rate,
        )
        return self._rates

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
        pending = self._pool.pending + sum(p.pending for p in list(self._async_pools.values()))
        return self._tally.snapshot(pending_shadows=pending)

    @property
    def shadow_pool(self) -> ShadowPool:
        return self._pool

    # -- planning --------------------------------------------------------------------------

    def _plan(self, request: Request) -> _Plan:
        labels = {name: value for name, value in (
            (A.CANARY_ROUTE, _label(self._route, request)),
            (A.CANARY_COHORT, _label(self._cohort, request))) if value is not None}
        rates = self._rates
        if self._killed or self._closed:
            return _Plan(False, False, None, labels)
        key = self._key_of(request)
        serve_candidate = rates.canary_rate > 0 and unit_draw(key, _SPLIT_SALT) < rates.canary_rate
        mirror = (not serve_candidate and rates.mirror_rate > 0
                  and unit_draw(key, _MIRROR_SALT) < rates.mirror_rate)
        return _Plan(serve_candidate, mirror, uuid.uuid4().hex if mirror else None, labels)

    def _key_of(self, request: Request) -> Any:
        if self._key is None:
            return None
        try:
            return self._key(request)
        except Exception as exc:  # noqa: BLE001 - telemetry never raises
            log_once("canary key callable raised; assigning at random", exc)
            return None

    def _plan_safely(self, request: Request) -> _Plan:
        try:
            plan = self._plan(request)
        except Exception as exc:  # noqa: BLE001 - a canary bug must not break serving
            log_once("canary planning failed; serving the base", exc)
            return _BASE_ONLY
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

    # -- sync path -------------------------------------------------------------------------

    def __call__(self, request: Request) -> Any:
        plan = self._plan_safely(request)
        with self._shared_trace():
            mirror = self._mirror(request, plan) if plan.mirror else A.MIRROR_NONE
            if plan.serve_candidate:
                return self._serve_candidate(request, plan, mirror)
            return self._serve_base(request, plan, mirror)

    def _serve_base(self, request: Request, plan: _Plan, mirror: str, **extra: Any) -> Any:
        self._tally.add("served_base")
        scope = plan.scope(A.VARIANT_BASE, A.ROLE_PRIMARY, **{A.CANARY_MIRROR: mirror}, **extra)
        return _run_arm(self._base, request, scope)

    def _serve_candidate(self, request: Request, plan: _Plan, mirror: str) -> Any:
        scope = plan.scope(A.VARIANT_CANDIDATE, A.ROLE_PRIMARY, **{A.CANARY_MIRROR: mirror})
        try:
            answer = self._call_candidate(request, scope)
        except Exception as exc:
            self._count_failure(exc)
            if not self.fallback:
                raise
            self._tally.add("fallbacks")
            return self._serve_base(request, plan, mirror, **self._fallback_attributes(exc))
        self._tally.add("served_candidate")
        return answer

    def _call_candidate(self, request: Request, scope: dict[str, Any]) -> Any:
        if self.timeout_s is None:
            return _run_arm(self._candidate, request, scope)
        deadline = time.monotonic() + self.timeout_s
        context = contextvars.copy_context()
        future = self._candidate_executor().submit(
            context.run, _run_arm, self._candidate, request, scope, deadline)
        return _result_within(future, self.timeout_s)

    def _candidate_executor(self) -> ThreadPoolExecutor:
        if self._executor is None:
            with self._async_lock:
                if self._executor is None:
                    self._executor = ThreadPoolExecutor(
                        self._candidate_threads, thread_name_prefix="canarytrace-candidate")
        return self._executor

    def _fallback_attributes(self, error: BaseException) -> dict[str, Any]:
        """What the base span that answered in the candidate's place records."""
        return {A.CANARY_FALLBACK: True, A.ERROR_TYPE: type(error).__qualname__,
                A.CANARY_CANDIDATE_MODEL: self._candidate.model}

    def _count_failure(self, error: BaseException) -> None:
        self._tally.add("candidate_timeouts" if isinstance(error, TimeoutError)
                        else "candidate_errors")

    def _mirror(self, request: Request, plan: _Plan) -> str:
        """Queue the shadow call; returns the ``canary.mirror`` outcome (sent or dropped)."""
        try:
            context = contextvars.copy_context()
            scope = plan.scope(A.VARIANT_CANDIDATE, A.ROLE_SHADOW)
            job = _ShadowJob(self, request, scope, context)
            accepted = self._pool.try_submit(job)
        except Exception as exc:  # noqa: BLE001 - mirroring never breaks serving
            log_once("canary could not queue a shadow call", exc)
            accepted = False
        return self._count_mirror(accepted)

    def _count_mirror(self, accepted: bool) -> str:
        self._tally.add("mirrored" if accepted else "dropped")
        return A.MIRROR_SENT if accepted else A.MIRROR_DROPPED

    def _run_shadow(self, request: Request, scope: dict[str, Any]) -> None:
        deadline = None if self.timeout_s is None else time.monotonic() + self.timeout_s
        try:
            _run_arm(self._candidate, request, scope, deadline)
        except Exception as exc:  # noqa: BLE001 - recorded on the shadow span, never raised
            self._count_failure(exc)
            return
        if _overran(deadline):
            self._tally.add("candidate_timeouts")

    # -- async path ------------------------------------------------------------------------

    async def acall(self, request: Request) -> Any:
        """The ``__call__`` of async arms: shadows are tasks, ``timeout_s`` is a wait_for."""
        plan = self._plan_safely(request)
        with self._shared_trace():
            mirror = self._amirror(request, plan) if plan.mirror else A.MIRROR_NONE
            if plan.serve_candidate:
                return await self._aserve_candidate(request, plan, mirror)
            return await self._aserve_base(request, plan, mirror)

    async def _aserve_base(self, request: Request, plan: _Plan, mirror: str,
                           **extra: Any) -> Any:
        self._tally.add("served_base")
        scope = plan.scope(A.VARIANT_BASE, A.ROLE_PRIMARY, **{A.CANARY_MIRROR: mirror}, **extra)
        return await _arun_arm(self._base, request, scope)

    async def _aserve_candidate(self, request: Request, plan: _Plan, mirror: str) -> Any:
        scope = plan.scope(A.VARIANT_CANDIDATE, A.ROLE_PRIMARY, **{A.CANARY_MIRROR: mirror})
        try:
            answer = await _arun_arm(self._candidate, request, scope, self.timeout_s)
        except Exception as exc:
            self._count_failure(exc)
            if not self.fallback:
                raise
            self._tally.add("fallbacks")
            return await self._aserve_base(request, plan, mirror,
                                           **self._fallback_attributes(exc))
        self._tally.add("served_candidate")
        return answer

    def _amirror(self, request: Request, plan: _Plan) -> str:
        try:
            scope = plan.scope(A.VARIANT_CANDIDATE, A.ROLE_SHADOW)
            accepted = self._async_pool().try_submit(lambda: self._arun_shadow(request, scope))
        except Exception as exc:  # noqa: BLE001 - mirroring never breaks serving
            log_once("canary could not start a shadow task", exc)
            accepted = False
        return self._count_mirror(accepted)

    def _async_pool(self) -> AsyncShadows:
        """This event loop's shadow tasks (pools of closed loops are forgotten)."""
        loop = asyncio.get_running_loop()
        pool = self._async_pools.get(loop)
        if pool is None:
            with self._async_lock:
                pools = {old: p for old, p in self._async_pools.items() if not old.is_closed()}
                pool = pools[loop] = AsyncShadows(self._pool.workers, self._pool.queue_size)
                self._async_pools = pools
        return pool

    async def _arun_shadow(self, request: Request, scope: dict[str, Any]) -> None:
        try:
            await _arun_arm(self._candidate, request, scope, self.timeout_s)
        except Exception as exc:  # noqa: BLE001 - recorded on the shadow span, never raised
            self._count_failure(exc)

    # -- shutdown --------------------------------------------------------------------------

    def close(self, timeout: float = 5.0) -> None:
        """Stop mirroring and wait up to ``timeout`` s for accepted shadow calls; afterwards
        the canary serves the base only. Queued shadows still waiting then are dropped (and
        counted); running ones finish in the background."""
        self._closed = True
        dropped = self._pool.close(timeout)
        if dropped:
            self._tally.add("dropped", dropped)
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)

    async def aclose(self, timeout: float = 5.0) -> None:
        """``close()`` for ``acall`` users: also waits for this loop's shadow tasks."""
        self._closed = True
        pool = self._async_pools.get(asyncio.get_running_loop())
        deadline = time.monotonic() + timeout
        cancelled = await pool.drain(timeout) if pool is not None else 0
        if cancelled:
            self._tally.add("dropped", cancelled)
        await asyncio.to_thread(self.close, max(deadline - time.monotonic(), 0.0))

    def __enter__(self) -> Canary:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    async def __aenter__(self) -> Canary:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


@dataclass(frozen=True, slots=True)
class _ShadowJob:
    """One queued shadow call; runs in the caller's context (its trace and scopes)."""

    canary: Canary
    request: Request
    scope: dict[str, Any]
    context: contextvars.Context

    def __call__(self) -> None:
        self.context.run(self.canary._run_shadow, self.request, self.scope)


def _arm(fn: Callable[[Request], Any], model: str | None, variant: str) -> _Arm:
    if not callable(fn):
        raise TypeError(f"the {variant} arm must be callable, got {type(fn).__name__}")
    name = model or getattr(fn, "__qualname__", None) or type(fn).__name__
    return _Arm(fn=fn, model=name, variant=variant, instrumented=is_instrumented(fn))


def _result_within(future: Future[Any], timeout_s: float) -> Any:
    try:
        return future.result(timeout=timeout_s)
    except TimeoutError:
        if not future.done():
            future.cancel()
            raise TimeoutError(f"candidate took longer than timeout_s={timeout_s}") from None
        raise


def _run_arm(arm: _Arm, request: Request, scope: Mapping[str, Any],
             deadline: float | None = None) -> Any:
    """Call one arm inside its scope; an uninstrumented arm gets an ``llm_call`` span. The
    arm's span is marked a TimeoutError when the call (it cannot be interrupted) ends after
    ``deadline``."""
    with scoped_attributes(scope), scoped_deadline(deadline):
        if arm.instrumented:
            return arm.fn(request)
        with llm_call(model=arm.model) as call:
            call.set_input(_messages_of(request))
            answer = arm.fn(request)
            call.set_output(answer)
            return answer


async def _arun_arm(arm: _Arm, request: Request, scope: Mapping[str, Any],
                    timeout_s: float | None = None) -> Any:
    """``_run_arm`` for async arms: ``timeout_s`` cancels the call (``asyncio.wait_for``)."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    with scoped_attributes(scope), scoped_deadline(deadline):
        if arm.instrumented:
            return await _within(arm.fn(request), timeout_s)
        with llm_call(model=arm.model) as call:
            call.set_input(_messages_of(request))
            answer = await _within(arm.fn(request), timeout_s)
            call.set_output(answer)
            return answer


async def _within(result: Any, timeout_s: float | None) -> Any:
    """Await ``result`` (if it is awaitable) for at most ``timeout_s`` seconds."""
    if not inspect.isawaitable(result):
        return result
    if timeout_s is None:
        return await result
    return await asyncio.wait_for(result, timeout_s)
