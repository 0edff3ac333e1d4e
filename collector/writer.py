"""The background writer: seals spool segments and inserts them into ClickHouse, in order.

A segment is sealed when it holds ``flush_rows`` rows or its oldest record waited
``flush_interval_s``. Each insert carries the segment's deduplication token, so a
retry (after an error, or a replay after a crash) cannot store a span twice. While
ClickHouse is unreachable the writer backs off and the spool grows.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

from clickhouse_connect.driver.exceptions import DatabaseError

from canarytrace.collector.metrics import CollectorMetrics
from canarytrace.collector.spool import Segment, Spool
from canarytrace.store.client import Store

log = logging.getLogger(__name__)

IDLE_TICK_S = 0.02
MAX_BACKOFF_S = 2.0
REFUSALS_BEFORE_QUARANTINE = 5


class StoreUnavailable(Exception):
    """The store cannot take an insert right now (also raised by the fault-injection hook)."""


class Writer:
    """One thread that owns moving spooled spans into the store."""

    def __init__(self, spool: Spool, store: Store, metrics: CollectorMetrics, flush_rows: int,
                 flush_interval_s: float, fault_file: Path | None = None) -> None:
        self.spool = spool
        self.store = store
        self.metrics = metrics
        self.flush_rows = flush_rows
        self.flush_interval_s = flush_interval_s
        self.fault_file = fault_file
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="spool-writer", daemon=True)
        self._refusals: dict[Segment, int] = {}

    def start(self) -> None:
        self._thread.start()

    def stop(self, drain: bool = True) -> None:
        """Stop the thread; with ``drain``, make one last attempt to store what is spooled."""
        self._stop.set()
        self._thread.join(timeout=30)
        if drain:
            try:
                self.spool.seal()
                for segment in self.spool.sealed():
                    self._store(segment)
            except Exception as exc:  # noqa: BLE001 - whatever is left replays at next start
                log.warning("spooled spans left for the next start: %s", exc)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                if self.spool.due(self.flush_rows, self.flush_interval_s):
                    self.spool.seal()
                segments = self.spool.sealed()
                if not segments:
                    self._stop.wait(IDLE_TICK_S)
                    continue
                for segment in segments:
                    self._store(segment)
                failures = 0
            except Exception as exc:  # noqa: BLE001 - the writer must outlive any failure
                failures += 1
                self.metrics.flush_failures.inc()
                log.warning("insert from spool failed (attempt %d): %s", failures, exc)
                self._stop.wait(min(MAX_BACKOFF_S, 0.05 * 2 ** failures))

    def _store(self, segment: Segment) -> None:
        payload, rows = self.spool.read(segment)
        if self.fault_file is not None and self.fault_file.exists():
            raise StoreUnavailable(f"store marked unavailable by {self.fault_file}")
        started = time.perf_counter()
        try:
            if rows:
                self.store.insert_span_payload(payload, dedup_token=segment.token)
        except DatabaseError:
            self._count_refusal(segment)
            raise
        self.metrics.flush_seconds.observe(time.perf_counter() - started)
        self.metrics.spans_stored.inc(rows)
        self._refusals.pop(segment, None)
        self.spool.remove(segment)

    def _count_refusal(self, segment: Segment) -> None:
        """Quarantine a segment the (reachable) store keeps refusing, so the rest can flow.

        Failures while the store does not answer are an outage, not a refusal: not counted.
        """
        if not self.store.ping():
            return
        self._refusals[segment] = self._refusals.get(segment, 0) + 1
        if self._refusals[segment] >= REFUSALS_BEFORE_QUARANTINE:
            log.error("ClickHouse refused spool segment %s %d times; moved to spool/dead",
                      segment.path.name, self._refusals.pop(segment))
            self.spool.remove(segment, quarantine=True)
            self.metrics.segments_quarantined.inc()
