"""``canarytrace serve`` as a child process that owns a store, for commands that need one.

``replay --store`` and ``demo`` send their spans the way production does (SDK -> OTLP/HTTP ->
collector -> ClickHouse) through a collector they start on a free loopback port.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

READY_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 60.0
DRAIN_TIMEOUT_S = 60.0
_SPOOL_SEGMENTS = re.compile(r"^canarytrace_spool_segments (\S+)$", re.MULTILINE)


class CollectorProcessError(RuntimeError):
    """The child collector would not start, store or stop; the message says why."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LocalCollector:
    """``canarytrace serve --store URL`` on a free loopback port, for the length of a block."""

    def __init__(self, store_url: str, log_path: Path, env: Mapping[str, str] | None = None,
                 port: int = 0) -> None:
        self.store_url, self.log_path = store_url, log_path
        self.port = port or free_port()
        self.env = dict(env or {})
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> LocalCollector:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = {key: value for key, value in os.environ.items()
               if key not in ("CANARYTRACE_HOST", "CANARYTRACE_PORT", "CANARYTRACE_STORE")}
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "canarytrace.cli", "serve", "--store", self.store_url,
                 "--host", "127.0.0.1", "--port", str(self.port)],
                env={**env, **self.env}, stdout=log, stderr=subprocess.STDOUT)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise CollectorProcessError(
                    f"canarytrace serve --store {self.store_url} exited: {self.last_log_line()} "
                    "(if a 'canarytrace serve' owns this store, go through it with --collector)")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise CollectorProcessError(f"canarytrace serve --store {self.store_url} was not ready "
                                    f"after {READY_TIMEOUT_S:.0f}s: {self.last_log_line()}")

    def wait_drained(self) -> None:
        """Wait until every acknowledged span has left the spool for ClickHouse."""
        deadline = time.monotonic() + DRAIN_TIMEOUT_S
        while time.monotonic() < deadline:
            match = _SPOOL_SEGMENTS.search(httpx.get(f"{self.url}/metrics", timeout=5).text)
            if match and float(match.group(1)) == 0:
                return
            time.sleep(0.2)
        raise CollectorProcessError(f"the collector did not store its spool within "
                                    f"{DRAIN_TIMEOUT_S:.0f}s: {self.last_log_line()}")

    def stop(self) -> None:
        """SIGTERM and wait: the collector's last flush writes every spooled span."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
            raise CollectorProcessError(
                "the collector did not stop in time; its spool keeps the spans and the next "
                "'canarytrace serve' on this store writes them") from None

    def last_log_line(self) -> str:
        try:
            lines = [line for line in self.log_path.read_text(errors="replace").splitlines()
                     if line.strip()]
        except FileNotFoundError:
            lines = []
        return lines[-1] if lines else f"(no output; see {self.log_path})"
