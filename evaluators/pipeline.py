"""Overlapping an evaluation run's reads and writes with its scoring, one step deep.

While a page is scored, the next page and its lookups are read (``read_ahead``) and the
previous page's results are written (``OneWriteBehind``), each in a background thread:
the store and the collector work while Python scores. At most one page waits on each
side, so memory stays bounded; errors surface in the run's thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from queue import Empty, Full, Queue
from typing import Any, TypeVar

T = TypeVar("T")
_DONE = object()


def read_ahead(items: Iterator[T], name: str = "evaluation-read-ahead") -> Iterator[T]:
    """What ``items`` yields, each item produced in a background thread while the caller
    works on the one before; an error in ``items`` is raised here. Closing (or dropping)
    this generator stops the thread."""
    handoff: Queue[tuple[Any, BaseException | None]] = Queue(maxsize=1)
    stop = threading.Event()

    def hand(item: Any, error: BaseException | None = None) -> bool:
        while not stop.is_set():
            try:
                handoff.put((item, error), timeout=0.1)
                return True
            except Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not hand(item):
                    return
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, raised there
            hand(None, exc)
            return
        hand(_DONE)

    thread = threading.Thread(target=produce, name=name, daemon=True)
    thread.start()
    try:
        while True:
            try:
                item, error = handoff.get(timeout=0.5)
            except Empty:
                if not thread.is_alive() and handoff.empty():
                    return
                continue
            if error is not None:
                raise error
            if item is _DONE:
                return
            yield item
    finally:
        stop.set()


class OneWriteBehind:
    """Runs ``write`` in a background thread, one call at a time: a new call first waits
    for the one before (and raises its error)."""

    def __init__(self, write: Callable[[Any], None]) -> None:
        self._write = write
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="evaluation-write")
        self._pending: Future[None] | None = None

    def submit(self, rows: Any) -> None:
        self.wait()
        self._pending = self._pool.submit(self._write, rows)

    def wait(self) -> None:
        """Until the last write is done; raises what it raised."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def close(self) -> None:
        """Wait for the last write, then stop the thread."""
        try:
            self.wait()
        finally:
            self._pool.shutdown(wait=True)
