"""Run ``canarytrace serve`` as a real subprocess for tests.

    with running_collector(tmp_path) as collector:      # waits for /readyz
        httpx.post(f"{collector.url}/v1/traces", ...)
        collector.kill()                                 # SIGKILL, like a crash
        collector.start()                                # same store, same spool, same port

The store is an embedded chDB directory under ``tmp_path`` that only the collector
process opens (chDB allows one process per directory). To read it directly, stop
the collector first and use ``collector.open_store()``.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import httpx

# Tests that want background evaluation turn it on themselves.
FAST_FLUSH = {"CANARYTRACE_FLUSH_INTERVAL_S": "0.1", "CANARYTRACE_EVAL_ENABLED": "false"}


def cli_env() -> dict[str, str]:
    """The environment for a ``canarytrace`` subprocess: wide output, and no store,
    collector or key inherited from the developer's shell."""
    env = {**os.environ, "COLUMNS": "160"}
    for name in ("CANARYTRACE_STORE", "CANARYTRACE_COLLECTOR", "CANARYTRACE_API_KEY"):
        env.pop(name, None)
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class CollectorProcess:
    """One ``canarytrace serve`` process on 127.0.0.1 with its own store, spool and keys."""

    def __init__(self, directory: Path, env: Mapping[str, str] | None = None,
                 args: tuple[str, ...] = (), store_dir: Path | None = None,
                 max_open_files: int | None = None) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._store_dir = Path(store_dir) if store_dir else self.directory / "db"
        self.max_open_files = max_open_files  # RLIMIT_NOFILE of the serve process
        self.port = free_port()
        self.args = args
        self.env = {**os.environ, **FAST_FLUSH, "CANARYTRACE_STORE": f"chdb://{self.store_dir}",
                    **(env or {})}
        self.env.pop("CANARYTRACE_COLLECTOR", None)
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = self.directory / "collector.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def store_dir(self) -> Path:
        return self._store_dir

    @property
    def state_dir(self) -> Path:
        """The store's own state folder (spool, keys, auth marker): ``<store>-state``."""
        return self.store_dir.with_name(f"{self.store_dir.name}-state")

    @property
    def keys_file(self) -> Path:
        return Path(self.env.get("CANARYTRACE_KEYS_FILE") or self.state_dir / "keys.json")

    @property
    def spool_dir(self) -> Path:
        return Path(self.env.get("CANARYTRACE_SPOOL_DIR") or self.state_dir / "spool")

    def start(self, timeout: float = 60.0) -> None:
        """Start serving and wait until ``/readyz`` says ready."""
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child process
        self.process = subprocess.Popen(
            [sys.executable, "-m", "canarytrace.cli", "serve", "--port", str(self.port),
             *self.args], env=self.env, stdout=log, stderr=subprocess.STDOUT,
            cwd=self.directory, preexec_fn=self._limit_files if self.max_open_files else None)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"collector exited with {self.process.returncode}:\n"
                                   f"{self.log_tail()}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.kill()
        raise RuntimeError(f"collector not ready after {timeout}s:\n{self.log_tail()}")

    def _limit_files(self) -> None:
        import resource

        resource.setrlimit(resource.RLIMIT_NOFILE, (self.max_open_files, self.max_open_files))

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM (graceful: last flush to the store) and wait; returns the exit code."""
        return self._end(signal.SIGTERM, timeout)

    def kill(self) -> int:
        """SIGKILL: the process dies at once, like a crash or an OOM kill."""
        return self._end(signal.SIGKILL, 10.0)

    def restart(self) -> None:
        self.stop()
        self.start()

    def _end(self, sig: signal.Signals, timeout: float) -> int:
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(sig)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(10)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"

    def open_store(self):  # -> canarytrace.store.client.Store
        """The collector's store, opened in this process; only while the collector is stopped."""
        from canarytrace.store.client import Store

        assert self.process is None or self.process.poll() is not None, "stop the collector first"
        return Store.from_url(f"chdb://{self.store_dir}")

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run ``canarytrace <args>`` with this collector's environment (same store)."""
        return subprocess.run([sys.executable, "-m", "canarytrace.cli", *args], env=self.env,
                              capture_output=True, text=True, timeout=120)

    def create_key(self, project: str) -> str:
        """``canarytrace keys create`` against this collector's keys file; returns the key."""
        out = subprocess.run(
            [sys.executable, "-m", "canarytrace.cli", "keys", "--keys-file", str(self.keys_file),
             "create", "--project", project], env=self.env, capture_output=True, text=True,
            check=True)
        return out.stdout.strip()


@contextmanager
def running_collector(directory: Path, env: Mapping[str, str] | None = None,
                      args: tuple[str, ...] = ()) -> Iterator[CollectorProcess]:
    """A started collector in ``directory``; stopped (SIGTERM) when the block exits."""
    collector = CollectorProcess(directory, env, args)
    collector.start()
    try:
        yield collector
    finally:
        collector.stop()
