"""The background writer: seals spool segments and inserts them into ClickHouse, in order.

A segment is sealed when it holds ``flush_rows`` rows or its oldest record waited
``flush_interval_s``. Each insert carries the segment's deduplication token, so a
retry (after an error, or a replay after a crash) cannot store a span twice.

What the store says decides what happens to a segment (``store.errors``):
- an outage (unreachable, disk full, EMFILE, memory, too many parts, or an error we do
  not know): the segment stays, the writer backs off, ``outage`` says why (so /readyz is
  not ready) and the spool fills; it drains once inserts work again;
- a refusal of the data: the segment is split in halves, recursively, so that only the
  request(s) the store refuses go to ``spool/dead`` and every other one is stored (when it
  refuses every request of a segment, that is the store, not the data: an outage).
Every split and retry uses tokens derived from the segment, so nothing lands twice.
"""

from __future__ import annotations

import logging
import threading
import time

import orjson
import pyarrow as pa

from canarytrace.collector.metrics import CollectorMetrics
from canarytrace.collector.spool import MAGIC_ARROW, MAGIC_JSON, Record, Segment, Spool, SpoolBroken
from canarytrace.store import span_columns
from canarytrace.store.client import Store
from canarytrace.store.errors import Fault, classify, first_line

log = logging.getLogger(__name__)

IDLE_TICK_S = 0.02
HOUSEKEEPING_S = 1.0
MAX_BACKOFF_S = 2.0


class StoreOutage(Exception):
    """The store cannot take inserts now; the segment stays in the spool."""


def record_table(magic: bytes, record: Record) -> pa.Table:
    """One spool record as an Arrow table; ValueError when it cannot be read."""
    if magic == MAGIC_ARROW:
        return span_columns.from_ipc(record.payload)
    if magic == MAGIC_JSON:
        try:
            rows = [orjson.loads(line) for line in record.payload.split(b"\n") if line]
        except orjson.JSONDecodeError as exc:
            raise ValueError(f"not JSONEachRow: {exc}") from exc
        return span_columns.table(rows)
    raise ValueError(f"unknown spool segment format {magic!r}")


class Writer:
    """One thread that owns moving spooled spans into the store."""

    def __init__(self, spool: Spool, store: Store, metrics: CollectorMetrics, flush_rows: int,
                 flush_interval_s: float) -> None:
        self.spool = spool
        self.store = store
        self.metrics = metrics
        self.flush_rows = flush_rows
        self.flush_interval_s = flush_interval_s
        self.outage: str | None = None  # why inserts fail right now; None while they work
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="spool-writer", daemon=True)
        self._housekept = 0.0
        self._seal_retry_at = 0.0

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
                self._housekeeping()
                self._seal_if_due()
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
                self.outage = first_line(exc)
                self.metrics.store_outage.set(1)
                log.warning("insert from spool failed (attempt %d), kept for retry: %s",
                            failures, first_line(exc))
                self._stop.wait(min(MAX_BACKOFF_S, 0.05 * 2 ** min(failures, 10)))

    def _seal_if_due(self) -> None:
        """Seal the active segment when due; when the spool's disk refuses a new segment file,
        keep going (storing sealed segments is what frees the disk) and retry in a second."""
        if time.monotonic() < self._seal_retry_at:
            return
        if not self.spool.due(self.flush_rows, self.flush_interval_s):
            return
        try:
            self.spool.seal()
        except SpoolBroken as exc:
            log.warning("%s; retrying in %.0fs", exc, HOUSEKEEPING_S)
            self._seal_retry_at = time.monotonic() + HOUSEKEEPING_S

    def _housekeeping(self) -> None:
        """Once a second: adopt replayed segments, and see whether a broken spool recovered."""
        now = time.monotonic()
        if now - self._housekept < HOUSEKEEPING_S:
            return
        self._housekept = now
        try:
            self.spool.rescan()
            if self.spool.broken is not None:
                self.spool.probe()
        except OSError as exc:  # out of descriptors, say: the inserts will say so too
            log.warning("spool housekeeping failed: %s", exc)

    def _store(self, segment: Segment) -> None:
        """Insert one sealed segment, quarantining only records the store refuses."""
        try:
            contents = self.spool.contents(segment)
        except FileNotFoundError:  # not ours to lose, and waiting cannot bring it back
            log.error("spool segment %s was deleted before it was stored; its spans are "
                      "gone, the segments after it go on", segment.path.name)
            self.spool.forget(segment)
            return
        tables: dict[int, pa.Table] = {}
        bad: dict[int, str] = {}
        for index, record in enumerate(contents.records):
            try:
                tables[index] = record_table(contents.magic, record)
            except ValueError as exc:
                bad[index] = f"unreadable record: {exc}"
        started = time.perf_counter()
        stored = self._insert(segment, tables, sorted(tables), segment.token, bad)
        self.metrics.flush_seconds.observe(time.perf_counter() - started)
        if len(tables) > 1 and not stored:  # it refuses every request: the store, not the data
            raise StoreOutage(f"store refuses every request of segment {segment.path.name}: "
                              f"{next(iter(bad.values()))}")
        if self.outage is not None:  # inserts work again: ready while the backlog drains
            log.warning("store takes inserts again; draining %d spooled segment(s)",
                        len(self.spool.sealed()))
            self.outage = None
            self.metrics.store_outage.set(0)
        self.metrics.spans_stored.inc(stored)
        if bad and self._quarantine(segment, contents.records, bad):
            return  # the whole segment moved to dead/
        self.spool.remove(segment)

    def _insert(self, segment: Segment, tables: dict[int, pa.Table], indices: list[int],
                token: str, bad: dict[int, str]) -> int:
        """Insert records ``indices``; on a refusal split them to find the refused ones."""
        if not indices:
            return 0
        data = span_columns.concat(tables[i] for i in indices)
        try:
            self.store.insert_span_table(data, dedup_token=token)
            return data.num_rows
        except Exception as exc:  # noqa: BLE001 - classified below
            fault = classify(exc)
            if fault is not Fault.REFUSED:
                raise StoreOutage(f"store cannot take inserts ({fault.value}): "
                                  f"{first_line(exc)}") from exc
            if len(indices) == 1:
                bad[indices[0]] = first_line(exc)
                return 0
            log.warning("store refused %d records of spool segment %s (%s); splitting",
                        len(indices), segment.path.name, first_line(exc))
        middle = len(indices) // 2
        halves = (indices[:middle], indices[middle:])
        return sum(self._insert(segment, tables, half, f"{segment.token}:{half[0]}-{half[-1]}",
                                bad) for half in halves)

    def _quarantine(self, segment: Segment, records: list[Record], bad: dict[int, str]) -> bool:
        """Keep the refused records in ``dead/``; True when that was the whole segment."""
        indices = sorted(bad)
        reason = bad[indices[0]]
        spans = sum(records[i].rows for i in indices)
        whole = len(indices) == len(records)
        target = self.spool.quarantine(segment, reason, None if whole else indices)
        log.error("store refused %d of %d requests (%d spans) in spool segment %s; kept in %s "
                  "for 'canarytrace spool replay': %s", len(indices), len(records), spans,
                  segment.path.name, target, reason)
        self.metrics.segments_quarantined.inc()
        self.metrics.spans_quarantined.inc(spans)
        return whole
