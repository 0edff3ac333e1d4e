"""Lanes: how a ``Canary`` invokes its arms, in threads (``__call__``) or as tasks (``acall``).

The router has one core, a coroutine, for both: it awaits ``lane.serve`` for the served arm
and ``lane.run_shadow`` in a shadow, and asks ``lane.mirror`` to queue a shadow. ``TaskLane``
awaits async arms. ``ThreadLane`` calls sync arms and its coroutines never suspend, so
``run_to_end`` runs the same core to its end in the calling (or shadow worker) thread.

Timeouts: an async candidate is cancelled at ``timeout_s``. A sync one cannot be interrupted:
as primary it runs on a worker thread that the caller stops waiting for; a shadow that ends
after ``timeout_s`` fails as a ``TimeoutError`` once it is done.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from canarytrace.canary.arms import ArmCall, arun_arm, deadline_after, run_arm
from canarytrace.canary.shadows import AsyncShadows, ShadowPool

T = TypeVar("T")
Shadow = Callable[[], Coroutine[Any, Any, None]]


class Lane(Protocol):
    """One calling convention: how an arm is called and where a shadow call runs."""

    async def serve(self, call: ArmCall) -> Any:
        """Call the served (primary) arm."""

    async def run_shadow(self, call: ArmCall) -> Any:
        """Call the candidate as a shadow (inside the shadow's thread or task)."""

    def mirror(self, shadow: Shadow) -> bool:
        """Queue ``shadow()`` to run in the background; False when the pool is full."""


def run_to_end(steps: Coroutine[Any, Any, T]) -> T:
    """The result of a coroutine that never suspends (it awaits only ``ThreadLane`` calls)."""
    try:
        steps.send(None)
    except StopIteration as done:
        return done.value
    steps.close()
    raise RuntimeError("a sync canary call awaited something that suspends")


class ThreadLane:
    """``__call__``: sync arms. The served arm runs in the caller's thread, or on one of
    ``candidate_workers`` threads when it is held to a ``timeout_s``; shadows run on ``pool``."""

    def __init__(self, pool: ShadowPool, candidate_workers: int) -> None:
        self.pool = pool
        self._candidate_workers = candidate_workers
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    @property
    def pending(self) -> int:
        return self.pool.pending

    async def serve(self, call: ArmCall) -> Any:
        if call.timeout_s is None:
            return run_arm(call)
        deadline = deadline_after(call.timeout_s)
        context = contextvars.copy_context()
        future = self._workers().submit(context.run, run_arm, call, deadline)
        return _result_within(future, call.timeout_s)

    async def run_shadow(self, call: ArmCall) -> Any:
        deadline = deadline_after(call.timeout_s)
        answer = run_arm(call, deadline)
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError(f"shadow call took longer than timeout_s={call.timeout_s}")
        return answer

    def mirror(self, shadow: Shadow) -> bool:
        return self.pool.try_submit(_ShadowJob(shadow, contextvars.copy_context()))

    def close(self, timeout: float) -> int:
        """Close the shadow pool (see ``ShadowPool.close``) and let go of the worker threads."""
        discarded = self.pool.close(timeout)
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
        return discarded

    def _workers(self) -> ThreadPoolExecutor:
        if self._executor is None:
            with self._lock:
                if self._executor is None:
                    self._executor = ThreadPoolExecutor(
                        self._candidate_workers, thread_name_prefix="canarytrace-candidate")
        return self._executor


@dataclass(frozen=True, slots=True)
class _ShadowJob:
    """One queued shadow call; runs in the caller's context (its trace and scopes)."""

    shadow: Shadow
    context: contextvars.Context

    def __call__(self) -> None:
        self.context.run(self._run)

    def _run(self) -> None:
        run_to_end(self.shadow())


def _result_within(future: Future[Any], timeout_s: float) -> Any:
    try:
        return future.result(timeout=timeout_s)
    except TimeoutError:
        if not future.done():
            future.cancel()
            raise TimeoutError(f"candidate took longer than timeout_s={timeout_s}") from None
        raise


class TaskLane:
    """``acall``: async arms, awaited (``timeout_s`` cancels the candidate). Shadows are
    tasks on the running loop, bounded per loop like a ``ShadowPool`` of the same size."""

    def __init__(self, workers: int, queue_size: int) -> None:
        self._workers, self._queue_size = workers, queue_size
        self._pools: dict[asyncio.AbstractEventLoop, AsyncShadows] = {}
        self._lock = threading.Lock()

    @property
    def pending(self) -> int:
        return sum(pool.pending for pool in list(self._pools.values()))

    async def serve(self, call: ArmCall) -> Any:
        return await arun_arm(call)

    run_shadow = serve

    def mirror(self, shadow: Shadow) -> bool:
        return self._loop_pool().try_submit(shadow)

    async def drain(self, timeout: float) -> int:
        """Wait up to ``timeout`` s for this loop's shadow tasks; cancel and count the rest."""
        pool = self._pools.get(asyncio.get_running_loop())
        return await pool.drain(timeout) if pool is not None else 0

    def _loop_pool(self) -> AsyncShadows:
        """This event loop's shadow tasks (pools of closed loops are forgotten)."""
        loop = asyncio.get_running_loop()
        pool = self._pools.get(loop)
        if pool is None:
            with self._lock:
                pools = {old: p for old, p in self._pools.items() if not old.is_closed()}
                pool = pools[loop] = AsyncShadows(self._workers, self._queue_size)
                self._pools = pools
        return pool
