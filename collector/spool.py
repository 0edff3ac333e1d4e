"""The spool: an append-only log on disk that makes acknowledged spans durable.

Requests append one record each to the *active* segment file; a syncer thread
fsyncs it, covering every record written so far in one call (group commit), and only
then are the requests acknowledged. The writer *seals* the active segment (a new one
takes its place), inserts the sealed segment into ClickHouse with the segment's name
as deduplication token, and deletes it. Segments found at start are replayed the same
way, so a crash at any point neither loses an acknowledged span nor stores one twice.

Segment: ``CTSPOOL2`` (records are Arrow IPC streams; ``CTSPOOL1``, JSONEachRow, is
still read) then records ``<payload length u32><rows u32><crc32 u32><payload>``. A torn
record at the end of a segment (a crash mid-write, never acknowledged) is ignored.

A failed write or fsync (disk full, EMFILE, I/O error) fails only the requests not yet
durable: their records are cut off again and they get 503, and the spool keeps working
once the disk has room. One collector owns a spool directory (an exclusive lock);
segments the store refused as poison wait in ``dead/`` for ``canarytrace spool replay``.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import secrets
import struct
import threading
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

MAGIC_JSON = b"CTSPOOL1"  # records are JSONEachRow text (written by older versions)
MAGIC_ARROW = b"CTSPOOL2"  # records are Arrow IPC streams
MAGIC = MAGIC_ARROW
MAGIC_SIZE = len(MAGIC)
HEADER = struct.Struct("<III")
SUFFIX = ".seg"
DEAD = "dead"
LOCK_FILE = ".lock"
_FAILED_RANGES_KEPT = 1000


class SpoolFull(Exception):
    """The spool holds its byte limit; the store must catch up before more is accepted."""


class SpoolBroken(Exception):
    """Writing or syncing the spool failed (disk full, I/O error); retry later."""


class SpoolLocked(ValueError):
    """Another collector owns this spool directory (a setting to change: ValueError)."""


@dataclass(frozen=True)
class Segment:
    path: Path

    @property
    def token(self) -> str:
        """The insert deduplication token: unique per segment, identical on replay."""
        return f"canarytrace-spool-{self.path.stem}"


@dataclass(frozen=True)
class Record:
    payload: bytes
    rows: int


@dataclass(frozen=True)
class Contents:
    """What a segment file holds: its format (magic) and its intact records."""

    magic: bytes
    records: list[Record]

    @property
    def rows(self) -> int:
        return sum(record.rows for record in self.records)


@dataclass
class _Active:
    segment: Segment
    fd: int
    bytes: int = MAGIC_SIZE
    rows: int = 0
    first_append: float = 0.0
    synced_bytes: int = MAGIC_SIZE
    synced_rows: int = 0
    needs_repair: bool = False


def read_contents(path: Path) -> Contents:
    """The intact records of a segment file (a torn or corrupt tail is left out)."""
    data = path.read_bytes()
    magic = data[:MAGIC_SIZE]
    records: list[Record] = []
    offset = MAGIC_SIZE if magic in (MAGIC_JSON, MAGIC_ARROW) else len(data)
    while offset + HEADER.size <= len(data):
        length, count, crc = HEADER.unpack_from(data, offset)
        payload = data[offset + HEADER.size: offset + HEADER.size + length]
        if len(payload) != length or zlib.crc32(payload) != crc:
            log.warning("spool segment %s: torn or corrupt record at byte %d ignored",
                        path.name, offset)
            break
        records.append(Record(payload, count))
        offset += HEADER.size + length
    return Contents(magic, records)


def encode_record(payload: bytes, rows: int) -> bytes:
    return HEADER.pack(len(payload), rows, zlib.crc32(payload)) + payload


def write_segment(path: Path, magic: bytes, records: list[Record]) -> None:
    """Write a whole segment file durably (temp file, fsync, rename, fsync directory)."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as handle:
        handle.write(magic + b"".join(encode_record(r.payload, r.rows) for r in records))
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    fsync_directory(path.parent)


def fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def dead_reason(path: Path) -> dict[str, object]:
    """Why a quarantined segment is in ``dead/`` (empty when no note was written)."""
    try:
        return json.loads(path.with_suffix(".json").read_text())
    except (OSError, ValueError):
        return {}


@dataclass
class _Failures:
    """Ticket ranges whose records were cut off after a failed write or fsync."""

    ranges: list[tuple[int, int]] = field(default_factory=list)

    def add(self, after: int, through: int) -> None:
        if through > after:
            self.ranges = [*self.ranges[-_FAILED_RANGES_KEPT:], (after, through)]

    def __contains__(self, ticket: int) -> bool:
        return any(after < ticket <= through for after, through in self.ranges)


class Spool:
    """Durable, size-limited append log of span payloads, in segment files under ``directory``."""

    def __init__(self, directory: Path, max_bytes: int) -> None:
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self._cond = threading.Condition()
        self._sealed: list[Segment] = []
        self._sealed_bytes = 0
        self._owned: set[str] = set()  # names of every segment file this spool made or adopted
        self._next_seq = 1
        self._written = 0
        self._synced = 0
        self._failed = _Failures()
        self._seal_requested = False
        self.seal_error: OSError | None = None  # the last failed seal, until one works
        self._closing = False
        self.broken: OSError | None = None  # the last write/sync failure, until one succeeds
        self._waiters: list[tuple[int, asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock_fd = _lock(self.directory)
        try:
            self._recover()
            self._active = self._open_segment()
        except BaseException:
            os.close(self._lock_fd)
            raise
        self._syncer = threading.Thread(target=self._sync_loop, name="spool-syncer", daemon=True)
        self._syncer.start()

    # --- state ----------------------------------------------------------------------------
    @property
    def size_bytes(self) -> int:
        return self._sealed_bytes + self._active.bytes

    @property
    def pending_segments(self) -> int:
        return len(self._sealed) + (1 if self._active.rows else 0)

    @property
    def dead_directory(self) -> Path:
        return self.directory / DEAD

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
        record = encode_record(payload, rows)
        with self._cond:
            if self.full(len(record)):
                raise SpoolFull(f"spool holds {self.size_bytes} of {self.max_bytes} bytes")
            active = self._active
            try:
                if active.needs_repair:
                    self._repair(active)
                _write_all(active.fd, record)
            except OSError as exc:
                self.broken = exc
                with contextlib.suppress(OSError):
                    self._repair(active, needed=True)
                raise SpoolBroken(f"cannot write to the spool: {exc}") from exc
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
            if ticket in self._failed:
                raise SpoolBroken(f"spool write failed: {self.broken}")
            if ticket <= self._synced:
                return
            self._waiters.append((ticket, loop, future))
        await future

    def wait_durable_sync(self, ticket: int, timeout: float | None = None) -> None:
        """Blocking form of ``wait_durable`` for threads."""
        with self._cond:
            settled = self._cond.wait_for(
                lambda: ticket <= self._synced or ticket in self._failed, timeout)
            if not settled:
                raise SpoolBroken("timed out waiting for fsync")
            if ticket in self._failed:
                raise SpoolBroken(f"spool write failed: {self.broken}")

    # --- sealing and removal (writer path) ------------------------------------------------
    def seal(self, timeout: float = 30.0) -> Segment | None:
        """Close the active segment (fsynced) and start a new one; None when it was empty.

        Raises SpoolBroken when no new segment file can be made now (the active one stays).
        """
        with self._cond:
            if not self._active.rows:
                return None
            target = self._active.segment
            self._seal_requested = True
            self._cond.notify_all()
            self._cond.wait_for(lambda: not self._seal_requested, timeout)
            if target in self._sealed:
                self.seal_error = None
                return target
            if self.seal_error is not None:
                raise SpoolBroken(f"cannot start a new spool segment: {self.seal_error}")
            return None

    def contents(self, segment: Segment) -> Contents:
        return read_contents(segment.path)

    def read(self, segment: Segment) -> tuple[bytes, int]:
        """The payloads of a segment joined by newlines, and their row count."""
        contents = read_contents(segment.path)
        return b"\n".join(r.payload for r in contents.records), contents.rows

    def remove(self, segment: Segment) -> None:
        """Forget a stored segment."""
        size = segment.path.stat().st_size
        segment.path.unlink()
        with self._cond:
            self._release(segment, size)

    def forget(self, segment: Segment) -> None:
        """Drop a sealed segment whose file is gone (deleted by hand) from the queue."""
        with self._cond:
            self._release(segment, 0)  # its size is gone with it: count the others again
            self._sealed_bytes = sum(s.path.stat().st_size for s in self._sealed
                                     if s.path.exists())

    def _release(self, segment: Segment, size: int) -> None:
        """Take a sealed segment of ``size`` bytes off the queue (lock held)."""
        self._sealed.remove(segment)
        self._sealed_bytes -= size
        self._owned.discard(segment.path.name)

    def quarantine(self, segment: Segment, reason: str, records: list[int] | None = None) -> Path:
        """Move a segment the store refuses as poison to ``dead/`` (or, with ``records``,
        copy just those records there); returns the dead segment's path.

        With ``records`` the caller removes ``segment`` once its other records are stored.
        """
        dead = self.dead_directory
        dead.mkdir(exist_ok=True)
        contents = read_contents(segment.path)
        if records is None:
            target = dead / segment.path.name
            kept = contents.records
            os.replace(segment.path, target)
            fsync_directory(dead)
            with self._cond:
                self._release(segment, target.stat().st_size)
        else:
            target = dead / f"{segment.path.stem}-r{records[0]}{SUFFIX}"
            kept = [contents.records[i] for i in records]
            write_segment(target, contents.magic, kept)
        note = {"reason": reason, "quarantined_at": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                  time.gmtime()),
                "records": len(kept), "spans": sum(r.rows for r in kept),
                "from_segment": segment.path.name}
        target.with_suffix(".json").write_text(json.dumps(note) + "\n")
        return target

    def probe(self) -> bool:
        """After a failure: whether the spool's disk takes a write again (clears ``broken``)."""
        if self.broken is None:
            return True
        probe = self.directory / f".probe-{secrets.token_hex(4)}"
        try:
            with self._cond:
                if self._active.needs_repair:
                    self._repair(self._active)
            with open(probe, "wb") as handle:
                handle.write(bytes(64 * 1024))
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as exc:
            log.debug("spool still not writable: %s", exc)
            return False
        finally:
            with contextlib.suppress(OSError):
                probe.unlink()
        with self._cond:
            self.broken = None
        return True

    def rescan(self) -> int:
        """Adopt segment files put into the directory from outside (``canarytrace spool
        replay``); returns how many were added. Listed under the lock, so a segment being
        sealed right now (neither active nor sealed yet) is never mistaken for one."""
        added = 0
        with self._cond:
            for path in sorted(self.directory.glob(f"*{SUFFIX}")):
                if path.name not in self._owned:
                    with contextlib.suppress(FileNotFoundError):  # moved away meanwhile
                        self._adopt(path)
                        added += 1
        return added

    def _adopt(self, path: Path) -> None:
        """Take a segment file on as sealed (lock held, or not yet shared)."""
        size = path.stat().st_size
        self._sealed.append(Segment(path))
        self._sealed_bytes += size
        self._owned.add(path.name)

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
        with contextlib.suppress(OSError):
            os.close(self._lock_fd)

    # --- internals --------------------------------------------------------------------------
    def _recover(self) -> None:
        """Treat every segment left by an earlier run as sealed, to be replayed in order."""
        for path in sorted(self.directory.glob(f"*{SUFFIX}")):
            seq = path.stem.partition("-")[0]
            if seq.isdigit():
                self._next_seq = max(self._next_seq, int(seq) + 1)
            if path.stat().st_size <= MAGIC_SIZE:
                path.unlink()
                continue
            self._adopt(path)
        for tmp in self.directory.glob(f"*{SUFFIX}.tmp"):
            tmp.unlink()

    def _open_segment(self) -> _Active:
        """A new, empty active segment file (OSError when the disk has no room or no fds)."""
        path = self.directory / f"{self._next_seq:012d}-{secrets.token_hex(6)}{SUFFIX}"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
        try:
            _write_all(fd, MAGIC)
            fsync_directory(self.directory)
        except OSError:
            os.close(fd)
            path.unlink(missing_ok=True)
            raise
        self._next_seq += 1
        self._owned.add(path.name)
        return _Active(Segment(path), fd)

    def _repair(self, active: _Active, needed: bool = False) -> None:
        """Cut the file back to its last whole record (after a failed write or fsync)."""
        active.needs_repair = True if needed else active.needs_repair
        os.ftruncate(active.fd, active.bytes)
        active.needs_repair = False

    def _sync_loop(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(self._has_work)
                if self._closing and self._written <= self._settled:
                    return
                target, active, retiring = self._written, self._active, False
                if self._seal_requested:
                    retiring = self._start_new_segment()
                size, rows = active.bytes, active.rows
            try:
                os.fsync(active.fd)
                if retiring:
                    os.close(active.fd)
            except OSError as exc:
                with self._cond:
                    self._sync_failed(active, target if retiring else None, exc)
                continue
            with self._cond:
                self._synced = max(self._synced, target)
                active.synced_bytes, active.synced_rows = size, rows
                if retiring:
                    self._sealed.append(active.segment)
                    self._sealed_bytes += active.bytes
                    self._seal_requested = False
                self.broken = None
                self._wake()
                self._cond.notify_all()

    @property
    def _settled(self) -> int:
        """The highest ticket that is durable or failed."""
        failed = self._failed.ranges[-1][1] if self._failed.ranges else 0
        return max(self._synced, failed)

    def _has_work(self) -> bool:
        return self._written > self._settled or self._seal_requested or self._closing

    def _start_new_segment(self) -> bool:
        """Swap in a new active segment (lock held); False, with the error noted, if none."""
        try:
            self._active = self._open_segment()
        except OSError as exc:
            log.warning("cannot start a new spool segment, keeping the current one: %s", exc)
            self._seal_requested, self.seal_error = False, exc
            self._cond.notify_all()
            return False
        return True

    def _sync_failed(self, active: _Active, retired_at: int | None, exc: OSError) -> None:
        """An fsync failed (lock held): fail the records it covered and cut them off again.

        ``retired_at`` is the last ticket of a segment being sealed (later records are in
        the new segment); else every record not yet durable was in ``active``.
        """
        log.error("spool fsync failed; requests not yet durable get 503: %s", exc)
        self.broken = exc
        retired = retired_at is not None
        self._failed.add(self._synced, retired_at if retired else self._written)
        active.bytes, active.rows = active.synced_bytes, active.synced_rows
        try:
            self._repair(active, needed=True)
            os.fsync(active.fd)
        except OSError as again:
            log.error("spool segment %s could not be cut back: %s", active.segment.path, again)
        if retired:
            with contextlib.suppress(OSError):
                os.close(active.fd)
            if active.rows:
                self._sealed.append(active.segment)
                self._sealed_bytes += active.bytes
            else:
                active.segment.path.unlink(missing_ok=True)
                self._owned.discard(active.segment.path.name)
            self._seal_requested = False
        self._wake()
        self._cond.notify_all()

    def _wake(self) -> None:
        remaining = []
        for ticket, loop, future in self._waiters:
            if ticket in self._failed:
                _resolve_soon(loop, future, SpoolBroken(f"spool write failed: {self.broken}"))
            elif ticket <= self._synced:
                _resolve_soon(loop, future, None)
            else:
                remaining.append((ticket, loop, future))
        self._waiters = remaining


def _lock(directory: Path) -> int:
    """Take the spool's exclusive lock (held while the Spool lives) or raise SpoolLocked."""
    fd = os.open(directory / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
        os.close(fd)
        raise SpoolLocked(f"spool {directory} is in use by another collector (pid {holder}); "
                          "give this one its own --spool-dir or store") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


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
