"""Where a store lives: ``chdb:///dir`` (embedded) or ``http(s)://…:8123`` (a server)."""

from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path

DEFAULT_STORE = "chdb://./.canarytrace/db"
SCHEMES = ("chdb", "http", "https")
CHDB_LOCK_FILE = "status"
"""The file an embedded ClickHouse holds an exclusive flock on while it has the folder open."""


class StoreURLError(ValueError):
    """A store URL this build cannot open (an unknown scheme)."""


class StoreInUse(RuntimeError):
    """Another process has the embedded store open (chDB lets one process open a folder)."""


def resolve_store_url(url: str) -> str:
    """Make a store URL absolute: ``chdb://rel/dir`` and bare paths become ``chdb:///abs/dir``.

    StoreURLError for a scheme other than chdb, http or https.
    """
    if "://" not in url:
        url = f"chdb://{url}"
    scheme, _, rest = url.partition("://")
    if scheme.lower() not in SCHEMES:
        raise StoreURLError(f"unknown store URL scheme {scheme + '://'!r} in {url!r}: use "
                            "chdb:///path/to/dir (embedded) or http(s)://user:pass@host:8123[/db]")
    if scheme != "chdb" or rest in ("", "memory", ":memory:"):
        return url
    return f"chdb://{os.path.abspath(rest)}"


def chdb_path(url: str) -> Path | None:
    """The directory of an embedded (chDB) store, or None for a ClickHouse server URL."""
    url = resolve_store_url(url)
    if not url.startswith("chdb://") or url in ("chdb://memory", "chdb://:memory:"):
        return None
    return Path(url.removeprefix("chdb://"))


def check_not_in_use(directory: Path) -> None:
    """StoreInUse when another process holds the embedded store in ``directory`` open.

    Tried before opening, so the user gets this one line instead of chDB's own error printed
    to stderr ("Code: 76 ... Cannot lock file").
    """
    try:
        handle = os.open(directory / CHDB_LOCK_FILE, os.O_RDONLY)
    except OSError:
        return  # a new store, or one never opened: nothing holds it
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(handle, fcntl.LOCK_UN)
        return
    except OSError as exc:
        if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return
        holder = _holder_pid(os.read(handle, 200).decode(errors="replace"))
    finally:
        os.close(handle)
    if holder == os.getpid():
        return  # this process has it open already; chDB shares it within a process
    who = f"process {holder}" if holder else "another process"
    raise StoreInUse(f"the store at {directory} is in use by {who} (chDB opens a folder in one "
                     "process only): stop it, or reach the data through the running "
                     "'canarytrace serve' with --collector URL")


def _holder_pid(status: str) -> int | None:
    """The PID in chDB's status file (``PID: 1234``), None when it cannot be read."""
    for line in status.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "PID" and value.strip().isdigit():
            return int(value.strip())
    return None
