"""API keys: each bound to one project, stored only as salted SHA-256 hashes in a JSON file.

The file lives next to the store (``.canarytrace/keys.json``), not in ClickHouse, so
``canarytrace keys create`` works while ``serve`` owns the embedded store; the server
re-reads the file when it changes. A key reads ``ct_<id>_<secret>``: the id finds the
entry, the secret is checked against its hash in constant time.

Authentication is a mode (``--auth``), not a side effect of the file: ``keys`` always asks
for a key, ``none`` never does, and ``auto`` (the default) asks once keys were configured
for the store, i.e. the keys file exists or one of the store's auth markers does (written
beside the keys file and in the spool when a key is first created or seen). So revoking
the last key, or losing ``keys.json``, refuses every request until a key is created or
the collector runs with ``--auth none``.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import hmac
import json
import os
import secrets
import threading
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from canarytrace.store.schema import DEFAULT_PROJECT

PREFIX = "ct"
AUTH_MODES = ("auto", "keys", "none")
MARKER_TEXT = "keys\n"


class Unauthorized(Exception):
    """A missing or unknown API key (HTTP 401)."""


@dataclass(frozen=True)
class KeyEntry:
    id: str
    project: str
    salt: str
    hash: str
    created_at: str
    name: str = ""


def _bearer(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or None."""
    scheme, _, token = (authorization or "").strip().partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _digest(salt: str, secret: str) -> str:
    return hashlib.sha256(bytes.fromhex(salt) + secret.encode()).hexdigest()


class KeyRing:
    """The API keys in one file; safe to share between threads and processes."""

    def __init__(self, path: Path, mode: str = "auto", markers: Sequence[Path] = ()) -> None:
        if mode not in AUTH_MODES:
            raise ValueError(f"auth mode must be one of {', '.join(AUTH_MODES)}, not {mode!r}")
        self.path = Path(path)
        self.mode = mode
        self.markers = tuple(Path(m) for m in markers)
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._entries: dict[str, KeyEntry] = {}
        self._exists = False
        self._unreadable: str | None = None
        self._marked = False

    # --- reading --------------------------------------------------------------------------
    def entries(self) -> list[KeyEntry]:
        """The current keys (re-read from disk when the file changed)."""
        self._refresh()
        return list(self._entries.values())

    @property
    def required(self) -> bool:
        """Whether requests need a key: mode ``keys``, or ``auto`` once keys were configured."""
        self._refresh()
        if self.mode != "auto":
            return self.mode == "keys"
        return self._exists or self._entries != {} or self._marked_before()

    def project_for(self, authorization: str | None) -> str:
        """The project an ``Authorization`` header grants ('default' when none is required).

        Raises Unauthorized when a key is required and the header has no valid one.
        """
        if not self.required:
            entry = self._verify(_bearer(authorization) or "") if self._entries else None
            return entry.project if entry else DEFAULT_PROJECT
        if self._unreadable:
            raise Unauthorized(f"keys file {self.path} is unreadable ({self._unreadable}); "
                               "every request is refused until it is fixed")
        token = _bearer(authorization)
        if token is None:
            raise Unauthorized("missing API key: send 'Authorization: Bearer <key>'")
        if not self._entries:
            raise Unauthorized("no API keys are configured (the last was revoked or keys.json "
                               "is gone): create one with 'canarytrace keys create', or run "
                               "serve with --auth none")
        entry = self._verify(token)
        if entry is None:
            raise Unauthorized("invalid API key")
        return entry.project

    def _marked_before(self) -> bool:
        if not self._marked:
            self._marked = any(marker.exists() for marker in self.markers)
        return self._marked

    def mark(self) -> None:
        """Record that this store has keys, so losing them never opens it (idempotent; a
        read-only place, such as a mounted secret, is skipped)."""
        if self._marked and all(marker.exists() for marker in self.markers):
            return
        for marker in self.markers:
            with contextlib.suppress(OSError):
                if not marker.exists():
                    marker.parent.mkdir(parents=True, exist_ok=True)
                    tmp = marker.with_name(marker.name + ".tmp")
                    tmp.write_text(MARKER_TEXT)
                    os.replace(tmp, marker)
        self._marked = self._marked or any(marker.exists() for marker in self.markers)

    def _verify(self, token: str) -> KeyEntry | None:
        prefix, _, rest = token.partition("_")
        key_id, _, secret = rest.partition("_")
        entry = self._entries.get(key_id) if prefix == PREFIX else None
        if entry is None or not secret:
            return None
        return entry if hmac.compare_digest(_digest(entry.salt, secret), entry.hash) else None

    def _refresh(self) -> None:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            self._stamp, self._entries, self._exists, self._unreadable = None, {}, False, None
            return
        stamp = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
        if stamp == self._stamp:
            return
        with self._lock:
            try:
                entries, self._unreadable = self._read(), None
            except (OSError, ValueError, TypeError, AttributeError) as exc:
                entries, self._unreadable = [], str(exc) or type(exc).__name__
            self._entries = {e.id: e for e in entries}
            self._stamp, self._exists = stamp, True
        if self._entries and not self._marked:
            self.mark()

    def _read(self) -> list[KeyEntry]:
        try:
            document = json.loads(self.path.read_text())
        except FileNotFoundError:
            return []
        return [KeyEntry(**item) for item in document.get("keys", [])]

    # --- writing --------------------------------------------------------------------------
    def create(self, project: str, name: str = "") -> str:
        """Add a key for ``project`` and return it; only its hash is stored, so show it now."""
        key_id, secret = secrets.token_hex(6), secrets.token_urlsafe(24)
        salt = secrets.token_hex(16)
        entry = KeyEntry(id=key_id, project=project, salt=salt, hash=_digest(salt, secret),
                         created_at=datetime.now(UTC).isoformat(timespec="seconds"), name=name)
        with self._locked_file():
            self._write([*self._read(), entry])
        self.mark()
        return f"{PREFIX}_{key_id}_{secret}"

    def revoke(self, key_id: str) -> bool:
        """Remove the key with this id; False when there is none."""
        with self._locked_file():
            entries = self._read()
            kept = [e for e in entries if e.id != key_id]
            if len(kept) != len(entries):
                self._write(kept)
            return len(kept) != len(entries)

    def remaining(self) -> int:
        """How many keys the file holds now."""
        return len(self._read())

    @contextlib.contextmanager
    def _locked_file(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_suffix(".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def _write(self, entries: list[KeyEntry]) -> None:
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump({"version": 1, "keys": [asdict(e) for e in entries]}, handle, indent=2)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.path)
