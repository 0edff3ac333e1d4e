"""Acknowledged means durable: a SIGKILLed collector loses nothing it acknowledged; a store
whose disk is full fills the spool up to its limit (then 503 + Retry-After), and everything
drains once, with no duplicates, when space is freed."""

from __future__ import annotations

import threading
import time

import httpx

from tests.collector import otlp_payloads as P
from tests.collector.conftest import wait_for, wait_for_spans
from tests.support.collector import CollectorProcess
from tests.support.faults import (
    Streamer,
    assert_stored_once,
    fill,
    free,
    metric,
    tmpfs,
    wait_until,
)


def send_batch(http: httpx.Client, url: str, service: str,
               size: int) -> tuple[httpx.Response, list[str]]:
    """POST ``size`` new spans; returns the response and the span ids sent."""
    spans = [P.span(f"{service}-span") for _ in range(size)]
    response = http.post(f"{url}/v1/traces", content=P.protobuf_body(spans, service=service),
                         headers=P.PROTOBUF)
    return response, [s["span_id"].hex() for s in spans]


def test_sigkill_mid_stream_loses_no_acknowledged_span_and_stores_none_twice(new_collector):
    collector = new_collector(CANARYTRACE_FLUSH_INTERVAL_S="0.25", CANARYTRACE_FLUSH_ROWS="300")
    collector.start()
    acknowledged: list[str] = []
    stop = threading.Event()

    def stream() -> None:
        with httpx.Client(timeout=5) as http:
            while not stop.is_set():
                try:
                    response, ids = send_batch(http, collector.url, "stream", 40)
                except httpx.HTTPError:
                    time.sleep(0.02)  # the collector is gone: keep trying until told to stop
                    continue
                if response.status_code == 200:
                    acknowledged.extend(ids)

    clients = [threading.Thread(target=stream) for _ in range(3)]
    for client in clients:
        client.start()
    wait_for(lambda: len(acknowledged) >= 3000, timeout=60, what="3000 acknowledged spans")
    collector.kill()
    stop.set()
    for client in clients:
        client.join()
    unstored = [p for p in collector.spool_dir.glob("*.seg") if p.stat().st_size > 8]
    assert unstored, "the kill should leave acknowledged spans only in the spool"

    collector.start()  # replays the spool
    wait_for_spans(collector.url, len(acknowledged), timeout=60, service="stream")
    collector.stop()
    assert_stored_once(collector, "stream", acknowledged)


def test_store_disk_full_under_load_keeps_every_span_then_drains_once_space_is_freed(
        tmp_path):
    """The store's disk (a real tmpfs) fills up under load: ClickHouse refuses inserts with
    NOT_ENOUGH_SPACE. That is an outage, not poison: segments stay, /readyz turns not ready,
    the spool fills to its limit and then 503 + Retry-After; once space is freed, everything
    drains, once each, and nothing went to spool/dead."""
    with tmpfs(tmp_path / "store-disk", "48m") as disk:
        collector = CollectorProcess(tmp_path / "collector", store_dir=disk / "db", env={
            "CANARYTRACE_SPOOL_DIR": str(tmp_path / "spool"),  # on another disk
            "CANARYTRACE_SPOOL_MAX_BYTES": str(1_500_000)})
        collector.start()
        try:
            with httpx.Client(timeout=10) as probe:
                with Streamer(collector.url, "diskfull") as load:
                    load.wait_acked(600)
                    fill(disk)
                    wait_until(lambda: not ready(probe, collector.url)["store_accepts_inserts"],
                               what="the writer to report the full disk")
                    load.wait_status(503)  # the spool reached its limit: refused, never acked
                    assert load.retry_after == {"5"}
                    readiness = ready(probe, collector.url)
                    assert "NOT_ENOUGH_SPACE" in readiness["outage"]
                    assert not readiness["spool_has_room"]
                    acked_while_full = len(load.acked)
                    free(disk)
                    load.wait_acked(acked_while_full + 400)  # accepting again
                    wait_until(lambda: ready(probe, collector.url)["ready"], what="ready again")
                wait_until(lambda: metric(probe, collector.url, "canarytrace_spool_bytes") < 1000,
                           what="the spool to drain")
                assert metric(probe, collector.url, "canarytrace_spans_quarantined_total") == 0
            collector.stop()
            copies = assert_stored_once(collector, "diskfull", load.acked)
            assert set(copies) == set(load.acked)  # refused requests stored nothing
            assert not list((collector.spool_dir / "dead").glob("*.seg"))
        finally:
            collector.kill()


def ready(client: httpx.Client, url: str) -> dict:
    return client.get(f"{url}/readyz").json()
