"""API keys: each bound to one project, stored only as salted SHA-256 hashes in a JSON file.

The file lives next to the store (``.canarytrace/keys.json``), not in ClickHouse, so
``canarytrace keys create`` works while ``serve`` owns the embedded store; the server
re-reads the file when it changes. A key reads ``ct_<id>_<secret>``: the id finds the
entry, the secret is checked against its hash in constant time.
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
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from canarytrace.store.schema import DEFAULT_PROJECT

PREFIX = "ct"


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


def _digest(salt: str, secret: str) -> str:
    return hashlib.sha256(bytes.fromhex(salt) + secret.encode()).hexdigest()


class KeyRing:
    """The API keys in one file; safe to share between threads and processes."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._entries: dict[str, KeyEntry] = {}

    # --- reading --------------------------------------------------------------------------
    def entries(self) -> list[KeyEntry]:
        """The current keys (re-read from disk when the file changed)."""
        self._refresh()
        return list(self._entries.values())

    def project_for(self, authorization: str | None) -> str:
        """The project an ``Authorization`` header grants; 'default' when no keys exist.

        Raises Unauthorized when keys are configured and the header has none of them.
        """
        self._refresh()
        if not self._entries:
            return DEFAULT_PROJECT
        scheme, _, token = (authorization or "").strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("missing API key: send 'Authorization: Bearer <key>'")
        entry = self._verify(token.strip())
        if entry is None:
            raise Unauthorized("invalid API key")
        return entry.project

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
            self._stamp, self._entries = None, {}
            return
        stamp = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
        if stamp == self._stamp:
            return
        with self._lock:
            entries = self._read()
            self._entries = {e.id: e for e in entries}
            self._stamp = stamp

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
        return f"{PREFIX}_{key_id}_{secret}"

    def revoke(self, key_id: str) -> bool:
        """Remove the key with this id; False when there is none."""
        with self._locked_file():
            entries = self._read()
            kept = [e for e in entries if e.id != key_id]
            if len(kept) != len(entries):
                self._write(kept)
            return len(kept) != len(entries)

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
