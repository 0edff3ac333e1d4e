"""Telemetry never raises into user code: SDK-side failures are logged once per kind and ignored."""

from __future__ import annotations

import logging
import threading

logger = logging.getLogger("canarytrace")

_seen: set[str] = set()
_lock = threading.Lock()


def log_once(kind: str, exc: BaseException | None = None) -> None:
    """Log an SDK failure of ``kind`` the first time it happens in this process; then stay quiet."""
    with _lock:
        if kind in _seen:
            return
        _seen.add(kind)
    if exc is None:
        logger.warning("canarytrace: %s (further occurrences are not logged)", kind)
    else:
        logger.warning("canarytrace: %s: %s: %s (further occurrences are not logged)",
                       kind, type(exc).__name__, exc)
