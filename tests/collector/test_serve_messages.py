"""What ``canarytrace serve`` says: a start-up line naming where to send spans, the store and
the dashboard; one line, no chDB dump, for a store another process holds or a URL it cannot
read."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from canarytrace.store.location import StoreInUse, StoreURLError, check_not_in_use
from tests.support.collector import running_collector

SERVE = [sys.executable, "-m", "canarytrace.cli", "serve", "--host", "127.0.0.1"]


def serve(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*SERVE, *args], capture_output=True, text=True, timeout=timeout)


def test_serve_says_where_it_listens_and_a_second_serve_on_its_store_is_one_line(tmp_path):
    with running_collector(tmp_path) as collector:
        deadline = time.monotonic() + 10
        while "listening on" not in collector.log_tail() and time.monotonic() < deadline:
            time.sleep(0.1)
        started = [line for line in collector.log_tail().splitlines() if "listening on" in line]
        second = serve("--port", "0", "--store", f"chdb://{collector.store_dir}")
        pid = collector.process.pid
    assert started == [f"canarytrace serve: listening on {collector.url} (OTLP/HTTP "
                       f"{collector.url}/v1/traces), store chdb://{collector.store_dir}, "
                       f"dashboard {collector.url}/"]
    assert second.returncode == 2
    assert second.stderr.count("\n") == 1, second.stderr
    assert f"the store at {collector.store_dir} is in use by process {pid}" in second.stderr
    assert "--collector" in second.stderr
    assert "Cannot lock file" not in second.stderr and "Code: 76" not in second.stderr


def test_an_unknown_store_scheme_is_one_line_without_a_network_lookup():
    started = time.monotonic()
    done = serve("--port", "0", "--store", "bogus://x")
    assert done.returncode == 2
    assert done.stderr == ("canarytrace serve: unknown store URL scheme 'bogus://' in "
                           "'bogus://x': use chdb:///path/to/dir (embedded) or "
                           "http(s)://user:pass@host:8123[/db]\n")
    assert time.monotonic() - started < 30  # no DNS lookup of host "x", no connect retries


def test_a_store_this_process_holds_is_not_in_use_by_another(tmp_path):
    from canarytrace.store.client import Store

    store = Store.from_url(f"chdb://{tmp_path / 'db'}")
    try:
        store.migrate()
        check_not_in_use(tmp_path / "db")  # chDB shares a folder within one process
        again = Store.from_url(f"chdb://{tmp_path / 'db'}")
        assert again.query("SELECT 1 AS one") == [{"one": 1}]
    finally:
        store.close()


def test_store_url_errors_are_value_errors_and_lock_errors_name_the_folder(tmp_path):
    from canarytrace.store.location import resolve_store_url

    with pytest.raises(StoreURLError, match="unknown store URL scheme 'ftp://'"):
        resolve_store_url("ftp://example.com/db")
    assert resolve_store_url("HTTPS://ch:8443/db") == "HTTPS://ch:8443/db"
    assert issubclass(StoreURLError, ValueError) and issubclass(StoreInUse, RuntimeError)
    check_not_in_use(tmp_path / "never-opened")  # nothing to hold: no error
