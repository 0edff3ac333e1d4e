"""Real faults for durability tests: a small tmpfs filled with dd, clients streaming spans
that record what was acknowledged, and counting what the store holds afterwards.

    with tmpfs(tmp_path / "disk", "64m") as disk:       # skips where mounting is not allowed
        with Streamer(collector.url, "svc") as load:    # threads POSTing batches
            fill(disk)                                  # dd until ENOSPC
            ...
            free(disk)
    assert_stored_once(collector, "svc", load.acked)
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.collector import otlp_payloads as P

FILL = "dd-fill"


@contextmanager
def tmpfs(directory: Path, size: str) -> Iterator[Path]:
    """Mount a tmpfs of ``size`` (e.g. ``"64m"``) at ``directory``; skip the test if we can't."""
    directory.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs",
                              str(directory)], capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs for the disk-full fault (needs root and a kernel "
                    f"that allows it): {mounted.stderr.strip() or mounted.returncode}")
    try:
        yield directory
    finally:
        subprocess.run(["umount", "-l", str(directory)], capture_output=True)


def fill(directory: Path) -> None:
    """Fill the filesystem of ``directory`` to the last byte with dd (which then fails)."""
    subprocess.run(["dd", "if=/dev/zero", f"of={directory / FILL}", "bs=64k"],
                   capture_output=True)


def free(directory: Path) -> None:
    (directory / FILL).unlink()


def metric(client: httpx.Client, url: str, name: str) -> float:
    """One unlabelled sample of ``/metrics`` (0 when absent)."""
    for line in client.get(f"{url}/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return 0.0


class Streamer:
    """Client threads that POST ``batch``-span requests until stopped, on keep-alive
    connections, and remember every span id of an acknowledged (200) request."""

    def __init__(self, url: str, service: str, clients: int = 2, batch: int = 40,
                 headers: dict[str, str] | None = None, pause_s: float = 0.0) -> None:
        self.url, self.service, self.batch, self.pause_s = url, service, batch, pause_s
        self.headers = {**P.PROTOBUF, **(headers or {})}
        self.acked: list[str] = []
        self.statuses: Counter[int | str] = Counter()
        self.retry_after: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(clients)]

    def __enter__(self) -> Streamer:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)

    def _run(self) -> None:
        with httpx.Client(timeout=10) as http:
            while not self._stop.is_set():
                spans = [P.span(f"{self.service}-span") for _ in range(self.batch)]
                body = P.protobuf_body(spans, service=self.service)
                try:
                    response = http.post(f"{self.url}/v1/traces", content=body,
                                         headers=self.headers)
                except httpx.HTTPError as exc:
                    with self._lock:
                        self.statuses[type(exc).__name__] += 1
                    time.sleep(0.05)
                    continue
                with self._lock:
                    self.statuses[response.status_code] += 1
                    if response.status_code == 200:
                        self.acked += [s["span_id"].hex() for s in spans]
                    elif "retry-after" in response.headers:
                        self.retry_after.add(response.headers["retry-after"])
                if response.status_code != 200 or self.pause_s:
                    time.sleep(max(self.pause_s, 0.05 if response.status_code != 200 else 0))

    def wait_acked(self, count: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while len(self.acked) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"only {len(self.acked)} of {count} spans acknowledged: "
                                     f"{dict(self.statuses)}")
            time.sleep(0.05)

    def wait_status(self, status: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not self.statuses[status]:
            if time.monotonic() > deadline:
                raise AssertionError(f"no {status} response in {timeout}s: {dict(self.statuses)}")
            time.sleep(0.05)


def stored_copies(collector, service: str) -> Counter[str]:
    """SpanId -> physical rows in otel_traces (no FINAL), read once the collector stopped."""
    store = collector.open_store()
    try:
        rows = store.query(f"SELECT SpanId, count() AS n FROM {store.table('otel_traces')} "
                           "WHERE ServiceName = {s:String} GROUP BY SpanId", {"s": service})
    finally:
        store.close()
    return Counter({row["SpanId"]: row["n"] for row in rows})


def assert_stored_once(collector, service: str, acked: list[str]) -> Counter[str]:
    """Every acknowledged span is stored, exactly once (checked without FINAL)."""
    copies = stored_copies(collector, service)
    missing = set(acked) - set(copies)
    assert not missing, f"{len(missing)} of {len(acked)} acknowledged spans lost"
    twice = {span for span, n in copies.items() if n > 1}
    print(f"[fault figures] {service}: {len(acked)} acknowledged, {len(missing)} lost, "
          f"{len(twice)} stored twice")  # shown by pytest -s; the README's figures
    assert not twice, f"{len(twice)} spans stored more than once"
    return copies


def wait_until(check, timeout: float = 60, what: str = "condition"):
    """Poll ``check`` until truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)
