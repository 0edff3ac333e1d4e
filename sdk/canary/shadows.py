"""Shadow pools: where mirrored calls wait and run, bounded so they never slow the served call.

``ShadowPool`` is a few daemon threads fed by a bounded queue (``Canary.__call__``);
``AsyncShadows`` is a bounded set of asyncio tasks on one event loop (``Canary.acall``).
Neither ever blocks a submit: when full, it refuses, and the canary drops and counts the call.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

from canarytrace._safety import log_once

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
