"""Fixtures for collector tests: a real ``canarytrace serve`` process and polling helpers."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.support.collector import CollectorProcess, running_collector


@pytest.fixture(scope="module")
def collector(tmp_path_factory):
    """One collector process for the test module, on loopback with a tmp store."""
    with running_collector(tmp_path_factory.mktemp("collector")) as process:
        yield process


@pytest.fixture
def new_collector(tmp_path):
    """Make collectors (not started) that are stopped after the test, pass or fail."""
    made: list[CollectorProcess] = []

    def make(name: str = "collector", **env: str) -> CollectorProcess:
        made.append(CollectorProcess(tmp_path / name, env))
        return made[-1]

    yield make
    for process in made:
        process.kill()


def wait_for(check: Callable[[], Any], timeout: float = 20.0, what: str = "condition") -> Any:
    """Poll ``check`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def spans_of(url: str, headers: dict[str, str] | None = None, **filters: Any) -> list[dict]:
    """Every span the API returns for ``filters``, following cursors."""
    spans, cursor = [], None
    while True:
        params = {**filters, "limit": 1000, **({"cursor": cursor} if cursor else {})}
        response = httpx.get(f"{url}/api/spans", params=params, headers=headers, timeout=30)
        response.raise_for_status()
        body = response.json()
        spans += body["spans"]
        cursor = body["next_cursor"]
        if cursor is None:
            return spans


def wait_for_spans(url: str, count: int, headers: dict[str, str] | None = None,
                   timeout: float = 20.0, **filters: Any) -> list[dict]:
    """Poll the API until ``count`` spans match ``filters`` (the writer flushes in background)."""
    def enough() -> list[dict] | None:
        found = spans_of(url, headers, **filters)
        return found if len(found) >= count else None

    return wait_for(enough, timeout, f"{count} spans matching {filters}")
