"""The limits uvicorn's HTTP protocol lacks: header and read timeouts, a connection cap, and
bounded request headers.

Without them an idle or slow client holds its socket forever, and enough of them use up
the process's file descriptors (then inserts and spool files fail with EMFILE). Each
connection must send its request line and headers within ``header_timeout_s`` of its
first byte (or of connecting), may pause at most ``read_timeout_s`` while sending a body,
and gets 431 past ``max_header_bytes``; connections over ``max_connections`` are closed
as soon as they are accepted. Idle keep-alive connections are uvicorn's
``timeout_keep_alive``.
"""

from __future__ import annotations

import asyncio
import os
import resource
from collections.abc import Callable
from dataclasses import dataclass

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

DESCRIPTOR_RESERVE = 128  # for the store, spool, workers and logs, beyond half the limit


@dataclass(frozen=True)
class ConnectionLimits:
    max_connections: int
    header_timeout_s: float
    read_timeout_s: float
    max_header_bytes: int
    on_refused: Callable[[], None] = lambda: None
    on_timed_out: Callable[[], None] = lambda: None


def raise_descriptor_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit; returns the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if target > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return soft


def connection_cap(wanted: int, descriptor_limit: int, in_use: int) -> int:
    """At most ``wanted`` connections, and never more than half the descriptors left."""
    spare = descriptor_limit - in_use - DESCRIPTOR_RESERVE
    return max(8, min(wanted, spare // 2))


class _ClosedAtOnce(Exception):
    """Raised from a parser callback to stop parsing a request that is refused."""


def protocol_class(limits: ConnectionLimits) -> type[asyncio.Protocol]:
    """An httptools protocol class for uvicorn (``Config(http=...)``) enforcing ``limits``."""

    class LimitedHttpToolsProtocol(HttpToolsProtocol):
        _limits = limits

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            self._refused = len(self.connections) >= self._limits.max_connections
            self._timer: asyncio.TimerHandle | None = None
            self._in_body = self._too_large = False
            self._header_bytes = 0
            if self._refused:
                self.transport = transport
                self._limits.on_refused()
                transport.abort()
                return
            super().connection_made(transport)
            self._arm(self._limits.header_timeout_s)

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            if not self._refused:
                super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            if self._refused:
                return
            super().data_received(data)
            if self._in_body and self._timer is not None:
                self._arm(self._limits.read_timeout_s)

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._header_bytes, self._in_body = 0, False
            if self._timer is None:
                self._arm(self._limits.header_timeout_s)

        def on_url(self, url: bytes) -> None:
            self._count_header_bytes(len(url))
            super().on_url(url)

        def on_header(self, name: bytes, value: bytes) -> None:
            self._count_header_bytes(len(name) + len(value) + 4)
            super().on_header(name, value)

        def on_headers_complete(self) -> None:
            super().on_headers_complete()
            self._in_body = True
            self._arm(self._limits.read_timeout_s)

        def on_message_complete(self) -> None:
            super().on_message_complete()
            self._in_body = False
            self._disarm()

        def send_400_response(self, msg: str) -> None:
            if not self._too_large:
                super().send_400_response(msg)
                return
            text = f"request headers exceed {self._limits.max_header_bytes} bytes"
            self.transport.write(b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
                                 b"content-type: text/plain; charset=utf-8\r\n"
                                 b"connection: close\r\n"
                                 + f"content-length: {len(text)}\r\n\r\n{text}".encode())
            self.transport.close()

        def _count_header_bytes(self, size: int) -> None:
            self._header_bytes += size
            if self._header_bytes > self._limits.max_header_bytes:
                self._too_large = True
                raise _ClosedAtOnce()

        def _arm(self, seconds: float) -> None:
            self._disarm()
            self._timer = self.loop.call_later(seconds, self._expired)

        def _disarm(self) -> None:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

        def _expired(self) -> None:
            self._timer = None
            if self.transport.is_closing():
                return
            if self._in_body and self.flow.read_paused:  # we stopped reading, not the client
                self._arm(self._limits.read_timeout_s)
                return
            self._limits.on_timed_out()
            if self.cycle is None or self.cycle.response_complete:
                self.transport.write(b"HTTP/1.1 408 Request Timeout\r\nconnection: close\r\n"
                                     b"content-length: 0\r\n\r\n")
            self.transport.close()

    return LimitedHttpToolsProtocol


def open_descriptors() -> int:
    """How many file descriptors this process has open (0 where /proc is missing)."""
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return 0
