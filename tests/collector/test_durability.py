"""Acknowledged means durable: a SIGKILLed collector loses nothing it acknowledged, a store
outage fills the spool up to its limit (then 503 + Retry-After), and everything drains once,
with no duplicates, when the store is back."""

from __future__ import annotations

import threading
import time

import httpx

from tests.collector import otlp_payloads as P
from tests.collector.conftest import spans_of, wait_for, wait_for_spans
from tests.support.collector import CollectorProcess


def send_batch(http: httpx.Client, url: str, service: str,
               size: int) -> tuple[httpx.Response, list[str]]:
    """POST ``size`` new spans; returns the response and the span ids sent."""
    spans = [P.span(f"{service}-span") for _ in range(size)]
    response = http.post(f"{url}/v1/traces", content=P.protobuf_body(spans, service=service),
                         headers=P.PROTOBUF)
    return response, [s["span_id"].hex() for s in spans]


def stored_copies(collector: CollectorProcess, service: str) -> dict[str, int]:
    """SpanId -> number of rows in otel_traces, read without FINAL (every physical copy)."""
    store = collector.open_store()
    try:
        rows = store.query(f"SELECT SpanId, count() AS n FROM {store.table('otel_traces')} "
                           "WHERE ServiceName = {s:String} GROUP BY SpanId", {"s": service})
    finally:
        store.close()
    return {row["SpanId"]: row["n"] for row in rows}


def metric(url: str, name: str) -> float:
    lines = httpx.get(f"{url}/metrics").text.splitlines()
    return float(next(line for line in lines if line.startswith(name + " ")).split()[-1])


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
    copies = stored_copies(collector, "stream")
    assert set(acknowledged) <= set(copies)
    assert max(copies.values()) == 1


def test_store_outage_fills_the_spool_then_503_then_drains_without_duplicates(tmp_path,
                                                                              new_collector):
    outage = tmp_path / "store-is-down"
    outage.touch()
    collector = new_collector(CANARYTRACE_WRITER_FAULT_FILE=str(outage),
                              CANARYTRACE_SPOOL_MAX_BYTES="400000")
    collector.start()
    acknowledged: list[str] = []
    with httpx.Client(timeout=10) as http:
        for _ in range(500):
            refused, ids = send_batch(http, collector.url, "outage", 25)
            if refused.status_code != 200:
                break
            acknowledged += ids
        again, _ = send_batch(http, collector.url, "outage", 25)
    assert len(acknowledged) >= 200 and again.status_code == 503
    assert refused.status_code == 503 and refused.headers["retry-after"] == "5"
    assert "spool" in refused.text
    readiness = httpx.get(f"{collector.url}/readyz")
    assert readiness.status_code == 503 and readiness.json()["spool_has_room"] is False
    assert metric(collector.url, "canarytrace_spool_bytes") > 300_000
    wait_for(lambda: metric(collector.url, "canarytrace_flush_failures_total") >= 1,
             what="the writer to hit the outage")
    assert spans_of(collector.url, service="outage") == []

    outage.unlink()  # the store is back
    wait_for_spans(collector.url, len(acknowledged), timeout=60, service="outage")
    wait_for(lambda: metric(collector.url, "canarytrace_spool_bytes") < 1000, what="drained")
    with httpx.Client(timeout=10) as http:
        response, late = send_batch(http, collector.url, "outage", 5)
    assert response.status_code == 200
    wait_for_spans(collector.url, len(acknowledged) + 5, service="outage")
    collector.stop()
    copies = stored_copies(collector, "outage")
    assert set(copies) == set(acknowledged) | set(late)
    assert max(copies.values()) == 1
