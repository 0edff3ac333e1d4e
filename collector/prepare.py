"""Turn an OTLP body into a spool record: decode, validate, normalize, encode as Arrow.

This is the CPU-heavy part of ingest (tens of microseconds per span in Python), so
``Preparer`` can run it in worker processes: the event loop then only moves bytes,
and ingest uses more than one core despite the GIL. Workers are spawned (not forked:
the parent runs chDB threads) and hold their own RowBuilder.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from multiprocessing import get_context
from typing import TYPE_CHECKING

from canarytrace.collector import otlp
from canarytrace.collector.rows import Limits, RowBuilder
from canarytrace.store import span_columns

if TYPE_CHECKING:  # wire imports numba, which takes a second: loaded in the background
    from canarytrace.collector.wire import FastColumns

log = logging.getLogger(__name__)

PARENT_CHECK_S = 1.0
WORKER_GC_THRESHOLD = (50_000, 20, 20)
_worker_builder: RowBuilder | None = None
_fast_columns: Callable[[bytes, str, RowBuilder], FastColumns | None] | None = None
"""``wire.columns`` once it is compiled and checked; None until then."""
_fast_failed = False  # logged once per process


@dataclass(frozen=True)
class Prepared:
    """One request's rows as a spool payload (an Arrow IPC stream), and what was refused."""

    payload: bytes
    rows: int
    rejected: int
    error: str
    truncated_values: int
    fast: bool = False
    """Converted by the fast path."""


def prepare(body: bytes, encoding: otlp.Encoding, project: str, builder: RowBuilder,
            fast_path: bool = True) -> Prepared:
    """Decode and convert one request body (raises otlp.BadRequest for an unusable body):
    by the fast path where it applies and is loaded, else by the general one."""
    if fast_path and _fast_columns is not None and encoding is otlp.Encoding.PROTOBUF:
        fast = _fast(body, project, builder)
        if fast is not None:
            return Prepared(span_columns.to_ipc(fast.table), fast.table.num_rows, 0, "",
                            fast.truncated_values, fast=True)
    converted = builder.convert(otlp.decode(body, encoding), project)
    payload = span_columns.to_ipc(converted.table()) if converted.spans else b""
    return Prepared(payload, len(converted.spans), converted.rejected,
                    converted.error_message(), converted.truncated_values)


def _fast(body: bytes, project: str, builder: RowBuilder) -> FastColumns | None:
    """The fast path's columns, or None; a failure in it sends the request the general way
    (an optimisation never fails a request the general path takes)."""
    global _fast_failed
    assert _fast_columns is not None
    try:
        return _fast_columns(body, project, builder)
    except Exception:  # noqa: BLE001
        if not _fast_failed:
            log.exception("ingest fast path failed; the general path takes the request")
            _fast_failed = True
        return None


def start_fast_path() -> None:
    """Make the fast path ready in the background: importing numba takes a second and
    compiling, when nothing is in its cache yet, ~20 s. Requests take the general path
    until then."""
    threading.Thread(target=_load_fast_path, name="fast-path", daemon=True).start()


def _load_fast_path() -> None:
    global _fast_columns
    try:
        from canarytrace.collector import wire

        wire.warm_up()
    except Exception:  # noqa: BLE001 - the general path serves every request instead
        log.exception("ingest fast path unavailable; every request takes the general path")
        return
    _fast_columns = wire.columns


def _init_worker(limits: Limits, fast_path: bool) -> None:
    global _worker_builder
    _worker_builder = RowBuilder(limits)
    if fast_path:
        start_fast_path()
    gc.freeze()  # the imports stay; collections then only look at a request's objects,
    gc.set_threshold(*WORKER_GC_THRESHOLD)  # which hold no cycles: collect seldom
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True).start()


def _exit_with_parent(parent: int) -> None:
    """A worker whose server was SIGKILLed would wait for work forever: leave with it."""
    while os.getppid() == parent:
        time.sleep(PARENT_CHECK_S)
    os._exit(0)


def _prepare_in_worker(body: bytes, encoding: otlp.Encoding, project: str) -> Prepared:
    assert _worker_builder is not None
    return prepare(body, encoding, project, _worker_builder)


def default_workers() -> int:
    """One worker per spare core (the parent keeps one for HTTP and ClickHouse), at most 4."""
    return max(1, min(4, (os.cpu_count() or 1) - 1))


class Preparer:
    """Runs ``prepare`` in ``workers`` spawned processes, or inline when ``workers`` is 0;
    by the fast path where it applies, unless ``fast_path`` is False."""

    def __init__(self, limits: Limits, workers: int, fast_path: bool = True) -> None:
        self.limits = limits
        self.workers = workers
        self.fast_path = fast_path
        self._builder = RowBuilder(limits)
        self._pool = self._new_pool() if workers else None
        if fast_path and not workers:
            start_fast_path()

    def _new_pool(self) -> ProcessPoolExecutor:
        """A pool whose workers start now (spawn and imports take a second or two of CPU),
        not on the first request."""
        pool = ProcessPoolExecutor(self.workers, mp_context=get_context("spawn"),
                                   initializer=_init_worker,
                                   initargs=(self.limits, self.fast_path))
        for _ in range(self.workers):
            pool.submit(os.getpid)
        return pool

    async def prepare(self, body: bytes, encoding: otlp.Encoding, project: str) -> Prepared:
        if self._pool is None:
            return prepare(body, encoding, project, self._builder, self.fast_path)
        loop, pool = asyncio.get_running_loop(), self._pool
        try:
            return await loop.run_in_executor(pool, _prepare_in_worker, body, encoding, project)
        except BrokenProcessPool:  # a worker died (OOM kill): replace the pool, do it here
            if self._pool is pool:  # once, though every request in flight sees it broken
                self._pool = self._new_pool()
                pool.shutdown(wait=False)
            return prepare(body, encoding, project, self._builder, self.fast_path)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
