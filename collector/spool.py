"""The spool: an append-only log on disk that makes acknowledged spans durable.

Requests append one record each to the *active* segment file; a syncer thread
fsyncs it, covering every record written so far in one call (group commit), and only
then are the requests acknowledged. The writer *seals* the active segment (a new one
takes its place), inserts the sealed segment into ClickHouse with the segment's name
as deduplication token, and deletes it. Segments found at start are replayed the same
way, so a crash at any point neither loses an acknowledged span nor stores one twice.

Record: ``<payload length u32><rows u32><crc32 u32>`` then the payload. A torn record
at the end of a segment (a crash mid-write, never acknowledged) is ignored.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import struct
import threading
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

MAGIC = b"CTSPOOL1"
HEADER = struct.Struct("<III")
SUFFIX = ".seg"


class SpoolFull(Exception):
    """The spool holds its byte limit; the store must catch up before more is accepted."""


class SpoolBroken(Exception):
    """Writing or syncing the spool failed (disk full, I/O error)."""


@dataclass(frozen=True)
class Segment:
    path: Path

    @property
    def token(self) -> str:
        """The insert deduplication token: unique per segment, identical on replay."""
        return f"canarytrace-spool-{self.path.stem}"


@dataclass
class _Active:
    segment: Segment
    fd: int
    bytes: int = len(MAGIC)
    rows: int = 0
    first_append: float = 0.0


class Spool:
    """Durable, size-limited append log of span payloads, in segment files under ``directory``."""

    def __init__(self, directory: Path, max_bytes: int) -> None:
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self._cond = threading.Condition()
        self._sealed: list[Segment] = []
        self._sealed_bytes = 0
        self._next_seq = 1
        self._written = 0
        self._synced = 0
        self._seal_requested = False
        self._closing = False
        self._error: OSError | None = None
        self._waiters: list[tuple[int, asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self.directory.mkdir(parents=True, exist_ok=True)
        self._recover()
        self._active = self._new_active()
        self._syncer = threading.Thread(target=self._sync_loop, name="spool-syncer", daemon=True)
        self._syncer.start()

    # --- state ----------------------------------------------------------------------------
    @property
    def size_bytes(self) -> int:
        return self._sealed_bytes + self._active.bytes

    @property
    def pending_segments(self) -> int:
        return len(self._sealed) + (1 if self._active.rows else 0)

    def full(self, extra: int = 0) -> bool:
        return self.size_bytes + extra > self.max_bytes

    @property
    def usage(self) -> float:
        """The fraction of ``max_bytes`` in use."""
        return self.size_bytes / self.max_bytes

    def due(self, max_rows: int, max_age_s: float) -> bool:
        """Whether the active segment should be sealed: enough rows, or its oldest is old enough."""
        active = self._active
        return active.rows >= max_rows or (
            active.rows > 0 and time.monotonic() - active.first_append >= max_age_s)

    def sealed(self) -> list[Segment]:
        """Sealed segments not yet stored, oldest first."""
        with self._cond:
            return list(self._sealed)

    # --- appending (request path) --------------------------------------------------------
    def append(self, payload: bytes, rows: int) -> int:
        """Write one record; returns a ticket to wait on. Raises SpoolFull or SpoolBroken."""
        record = HEADER.pack(len(payload), rows, zlib.crc32(payload)) + payload
        with self._cond:
            if self._error is not None:
                raise SpoolBroken(f"spool is not writable: {self._error}")
            if self.full(len(record)):
                raise SpoolFull(f"spool holds {self.size_bytes} of {self.max_bytes} bytes")
            try:
                _write_all(self._active.fd, record)
            except OSError as exc:
                self._undo_partial_write()
                raise SpoolBroken(f"cannot write to the spool: {exc}") from exc
            active = self._active
            if not active.rows:
                active.first_append = time.monotonic()
            active.bytes += len(record)
            active.rows += rows
            self._written += 1
            self._cond.notify_all()
            return self._written

    async def wait_durable(self, ticket: int) -> None:
        """Return once the record behind ``ticket`` is fsynced; SpoolBroken if it cannot be."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        with self._cond:
            if self._error is not None:
                raise SpoolBroken(f"spool is not writable: {self._error}")
            if ticket <= self._synced:
                return
            self._waiters.append((ticket, loop, future))
        await future

    def wait_durable_sync(self, ticket: int, timeout: float | None = None) -> None:
        """Blocking form of ``wait_durable`` for threads."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._synced >= ticket or self._error, timeout):
                raise SpoolBroken("timed out waiting for fsync")
            if self._synced < ticket:
                raise SpoolBroken(f"spool is not writable: {self._error}")

    # --- sealing and removal (writer path) ------------------------------------------------
    def seal(self, timeout: float = 30.0) -> Segment | None:
        """Close the active segment (fsynced) and start a new one; None when it was empty."""
        with self._cond:
            if not self._active.rows:
                return None
            target = self._active.segment
            self._seal_requested = True
            self._cond.notify_all()
            self._cond.wait_for(lambda: not self._seal_requested or self._error, timeout)
            if self._error is not None:
                raise SpoolBroken(f"spool is not writable: {self._error}")
            return target if target in self._sealed else None

    def read(self, segment: Segment) -> tuple[bytes, int]:
        """The payloads of a segment joined by newlines, and their row count."""
        payloads, rows = [], 0
        data = segment.path.read_bytes()
        offset = len(MAGIC) if data.startswith(MAGIC) else len(data)
        while offset + HEADER.size <= len(data):
            length, count, crc = HEADER.unpack_from(data, offset)
            payload = data[offset + HEADER.size: offset + HEADER.size + length]
            if len(payload) != length or zlib.crc32(payload) != crc:
                log.warning("spool segment %s: torn or corrupt record at byte %d ignored",
                            segment.path.name, offset)
                break
            payloads.append(payload)
            rows += count
            offset += HEADER.size + length
        return b"\n".join(payloads), rows

    def remove(self, segment: Segment, quarantine: bool = False) -> None:
        """Forget a stored segment (or move it to ``dead/`` when ClickHouse refuses it)."""
        size = segment.path.stat().st_size
        if quarantine:
            dead = self.directory / "dead"
            dead.mkdir(exist_ok=True)
            segment.path.rename(dead / segment.path.name)
        else:
            segment.path.unlink()
        with self._cond:
            self._sealed.remove(segment)
            self._sealed_bytes -= size

    def close(self) -> None:
        """Stop the syncer after a final fsync; unsealed records stay on disk for replay."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._syncer.join(timeout=10)
        with contextlib.suppress(OSError):
            os.close(self._active.fd)
        if not self._active.rows:
            self._active.segment.path.unlink(missing_ok=True)

    # --- internals --------------------------------------------------------------------------
    def _recover(self) -> None:
        """Treat every segment left by an earlier run as sealed, to be replayed in order."""
        for path in sorted(self.directory.glob(f"*{SUFFIX}")):
            seq = path.stem.partition("-")[0]
            if seq.isdigit():
                self._next_seq = max(self._next_seq, int(seq) + 1)
            if path.stat().st_size <= len(MAGIC):
                path.unlink()
                continue
            self._sealed.append(Segment(path))
            self._sealed_bytes += path.stat().st_size

    def _new_active(self) -> _Active:
        path = self.directory / f"{self._next_seq:012d}-{secrets.token_hex(6)}{SUFFIX}"
        self._next_seq += 1
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
        os.write(fd, MAGIC)
        self._fsync_directory()
        return _Active(Segment(path), fd)

    def _undo_partial_write(self) -> None:
        """Cut a half-written record off, so later records stay readable; else stop appending."""
        try:
            os.ftruncate(self._active.fd, self._active.bytes)
        except OSError as exc:
            self._fail(exc)

    def _fsync_directory(self) -> None:
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def _sync_loop(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._written > self._synced
                                    or self._seal_requested or self._closing)
                if self._closing and self._written == self._synced:
                    return
                target, active, sealing = self._written, self._active, self._seal_requested
                if sealing:
                    try:
                        self._active = self._new_active()
                    except OSError as exc:
                        self._fail(exc)
                        return
            try:
                os.fsync(active.fd)
                if sealing:
                    os.close(active.fd)
            except OSError as exc:
                with self._cond:
                    self._fail(exc)
                return
            with self._cond:
                self._synced = target
                if sealing:
                    self._sealed.append(active.segment)
                    self._sealed_bytes += active.bytes
                    self._seal_requested = False
                self._wake(target)
                self._cond.notify_all()

    def _wake(self, synced: int) -> None:
        remaining = []
        for ticket, loop, future in self._waiters:
            if ticket <= synced:
                _resolve_soon(loop, future, None)
            else:
                remaining.append((ticket, loop, future))
        self._waiters = remaining

    def _fail(self, exc: OSError) -> None:
        log.error("spool failed: %s", exc)
        self._error = exc
        for _, loop, future in self._waiters:
            _resolve_soon(loop, future, SpoolBroken(f"spool failed: {exc}"))
        self._waiters = []
        self._cond.notify_all()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _resolve_soon(loop: asyncio.AbstractEventLoop, future: asyncio.Future[None],
                  error: Exception | None) -> None:
    """Complete ``future`` on its own loop (a loop already closed has nobody waiting)."""
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(_resolve, future, error)


def _resolve(future: asyncio.Future[None], error: Exception | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)
