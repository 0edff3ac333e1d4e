"""An operator's bad day, made real: each fault ends with every acknowledged span stored
exactly once (counted without FINAL), and nothing refused was stored.

Faults: a backfill over 150 days beside other clients (plus spans from 1970-1972 and events
at time 0), multi-member gzip, a sibling store in the same folder, idle sockets and then
EMFILE, ENOSPC on the spool's own disk, and a request ClickHouse refuses (a CHECK
constraint) that must be quarantined alone and can be replayed with ``canarytrace spool``.
"""

from __future__ import annotations

import gzip
import os
import resource
import socket
import threading
import time

import httpx
import orjson

from canarytrace.collector.keys import KeyRing
from canarytrace.collector.rows import Limits, RowBuilder
from canarytrace.collector.spool import MAGIC_JSON, Record, write_segment
from canarytrace.store.timestamps import format_ns
from tests.collector import otlp_payloads as P
from tests.collector.conftest import wait_for_spans
from tests.support.collector import CollectorProcess
from tests.support.faults import (
    Streamer,
    assert_stored_once,
    fill,
    free,
    metric,
    stored_copies,
    tmpfs,
    wait_until,
)

DAY_NS = 86_400 * 10**9


def post(client: httpx.Client, url: str, spans: list[dict], service: str, **headers: str):
    return client.post(f"{url}/v1/traces", content=P.protobuf_body(spans, service=service),
                       headers={**P.PROTOBUF, **headers})


def ids(spans: list[dict]) -> list[str]:
    return [s["span_id"].hex() for s in spans]


def test_backfill_old_timestamps_and_gzip_members_beside_other_clients(tmp_path):
    """One request over 150 days (ClickHouse refuses a block of over 100 partitions), with
    spans from 1970-1972 and events at time 0, lands in the same spool segment as other
    clients' requests: all of it is stored, with its exact timestamps, and nothing is
    quarantined. A multi-member gzip body is stored whole."""
    collector = CollectorProcess(tmp_path / "c", {"CANARYTRACE_FLUSH_INTERVAL_S": "0.5"})
    collector.start()
    try:
        backfill = [P.span("old", start_time_unix_nano=1_600_000_000 * 10**9 + d * DAY_NS,
                           end_time_unix_nano=1_600_000_000 * 10**9 + d * DAY_NS + 5)
                    for d in range(150)]
        ancient = [P.span("1970", start_time_unix_nano=1, end_time_unix_nano=2,
                          events=[{"time": 0, "name": "epoch"}]),
                   P.span("1972", start_time_unix_nano=63_000_000 * 10**9,
                          end_time_unix_nano=63_000_000 * 10**9 + 7,
                          events=[{"time": 0, "name": "zero"},
                                  {"time": 63_000_000 * 10**9, "name": "seventies"}])]
        others = [[P.span("live") for _ in range(20)] for _ in range(6)]
        statuses: list[int] = []
        with httpx.Client(timeout=30) as http:
            def send(spans: list[dict], service: str) -> None:
                statuses.append(post(http, collector.url, spans, service).status_code)

            threads = [threading.Thread(target=send, args=(backfill + ancient, "backfill"))]
            threads += [threading.Thread(target=send, args=(batch, "neighbour"))
                        for batch in others]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert statuses == [200] * 7
            members = [P.span("gz") for _ in range(30)]
            body = P.protobuf_body(members, service="gzip")
            cut = len(body) // 2
            multi = gzip.compress(body[:cut]) + gzip.compress(body[cut:])  # cat a.gz b.gz
            response = http.post(f"{collector.url}/v1/traces", content=multi,
                                 headers={**P.PROTOBUF, "Content-Encoding": "gzip"})
            assert response.status_code == 200
            stored = wait_for_spans(collector.url, 152, service="backfill", timeout=60)
            wait_for_spans(collector.url, 120, service="neighbour")
            wait_for_spans(collector.url, 30, service="gzip")
            assert metric(http, collector.url, "canarytrace_spans_quarantined_total") == 0
        by_name = {s["SpanName"]: s for s in stored if s["SpanName"] in ("1970", "1972")}
        assert by_name["1970"]["TimestampNs"] == 1
        assert [e["TimestampNs"] for e in by_name["1970"]["Events"]] == [0]
        assert by_name["1972"]["Timestamp"] == "1971-12-31T04:00:00.000000000Z"
        assert [e["Name"] for e in by_name["1972"]["Events"]] == ["zero", "seventies"]
        assert sorted(s["TimestampNs"] for s in stored if s["SpanName"] == "old") == sorted(
            s["start_time_unix_nano"] for s in backfill)
        collector.stop()
        assert_stored_once(collector, "backfill", ids(backfill + ancient))
        assert_stored_once(collector, "neighbour", [i for batch in others for i in ids(batch)])
        assert_stored_once(collector, "gzip", ids(members))
    finally:
        collector.kill()


def test_sibling_stores_in_one_folder_have_their_own_spool_keys_and_lock(tmp_path):
    """Two stores side by side: each collector has its own spool and keys (a key made for one
    does not lock the other, starting one never touches the other's segments), and a third
    collector told to use the first one's spool is refused with one line."""
    parent = tmp_path / "data"
    one = CollectorProcess(tmp_path / "one", store_dir=parent / "one")
    two = CollectorProcess(tmp_path / "two", store_dir=parent / "two")
    intruder = CollectorProcess(tmp_path / "three", store_dir=parent / "three",
                                env={"CANARYTRACE_SPOOL_DIR": str(one.spool_dir)})
    one.start()
    refused: list[Exception] = []

    def start_intruder() -> None:
        try:
            intruder.start()
        except RuntimeError as exc:
            refused.append(exc)

    beside = threading.Thread(target=start_intruder)  # while the sibling starts
    beside.start()
    two.start()
    beside.join()
    try:
        assert refused and "is in use by another collector" in str(refused[0])
        assert intruder.log_tail().strip().splitlines()[-1].startswith(
            f"canarytrace serve: spool {one.spool_dir} is in use by another collector (pid ")
        key = one.cli("keys", "create", "--project", "team-one").stdout.strip()
        assert httpx.get(f"{one.url}/api/spans").status_code == 401
        assert httpx.get(f"{two.url}/api/spans").status_code == 200
        auth = {"Authorization": f"Bearer {key}"}
        with Streamer(one.url, "first", headers=auth) as first, Streamer(two.url, "second") as sec:
            first.wait_acked(400)
            sec.wait_acked(400)
        assert one.spool_dir != two.spool_dir and one.spool_dir.parent.parent == parent
        wait_for_spans(one.url, len(first.acked), auth, timeout=60, service="first")
        wait_for_spans(two.url, len(sec.acked), timeout=60, service="second")
        one.stop()
        two.stop()
        assert_stored_once(one, "first", first.acked)
        assert_stored_once(two, "second", sec.acked)
        assert not stored_copies(one, "second") and not stored_copies(two, "first")
    finally:
        one.kill()
        two.kill()


def test_idle_sockets_cannot_starve_descriptors_and_emfile_is_an_outage(tmp_path):
    """With RLIMIT_NOFILE at 400, a flood of 1000 idle sockets is capped and timed out while a
    client keeps getting acks. Then the limit is cut to what is open, so every new file
    fails with EMFILE (inserts, new spool segments): spans are still acked into the open
    segment, /readyz says why it is not ready, and all of it is stored once the limit is
    back."""
    collector = CollectorProcess(tmp_path / "c", {"CANARYTRACE_HEADER_TIMEOUT_S": "1"},
                                 max_open_files=400)
    collector.start()
    sockets: list[socket.socket] = []
    try:
        with httpx.Client(timeout=10) as probe, Streamer(collector.url, "fds", clients=1) as load:
            load.wait_acked(100)
            for _ in range(1000):
                sock = socket.socket()
                sock.settimeout(1)
                try:
                    sock.connect(("127.0.0.1", collector.port))
                except OSError:
                    sock.close()
                    continue
                sockets.append(sock)
            flooded = len(load.acked)
            load.wait_acked(flooded + 200, timeout=30)  # served during the flood
            assert len(os.listdir(f"/proc/{collector.pid}/fd")) < 400

            def ask(check):  # a new connection is refused while the flood holds the cap
                try:
                    return check()
                except httpx.HTTPError:
                    return False

            wait_until(lambda: ask(lambda: metric(
                probe, collector.url, "canarytrace_connections_timed_out_total") > 0),
                what="idle connections to time out")
            assert metric(probe, collector.url, "canarytrace_connections_refused_total") > 0
            for sock in sockets:
                sock.close()

            in_use = len(os.listdir(f"/proc/{collector.pid}/fd"))
            resource.prlimit(collector.pid, resource.RLIMIT_NOFILE, (in_use, 400))
            wait_until(lambda: ask(lambda: "Too many open files" in probe.get(
                f"{collector.url}/readyz").text), what="/readyz to report EMFILE")
            during = len(load.acked)
            load.wait_acked(during + 100)  # still durable: the open segment takes them
            resource.prlimit(collector.pid, resource.RLIMIT_NOFILE, (400, 400))
            wait_until(lambda: ask(lambda: probe.get(f"{collector.url}/readyz").status_code
                                   == 200), what="ready again")
        collector.stop()
        assert_stored_once(collector, "fds", load.acked)
        assert not list((collector.spool_dir / "dead").glob("*.seg"))
    finally:
        for sock in sockets:
            sock.close()
        collector.kill()


def test_enospc_on_the_spool_refuses_with_503_then_recovers_without_restart(tmp_path):
    """The spool's own disk (a tmpfs) fills: appends and new segments fail with ENOSPC, so
    requests get 503 + Retry-After and /readyz says the spool is not writable; once space is
    freed the same process accepts again, and every acknowledged span is stored once."""
    with tmpfs(tmp_path / "spool-disk", "8m") as disk:
        collector = CollectorProcess(tmp_path / "c", {"CANARYTRACE_SPOOL_DIR": str(disk / "spool"),
                                                      "CANARYTRACE_FLUSH_INTERVAL_S": "0.3"})
        collector.start()
        try:
            with httpx.Client(timeout=10) as probe, Streamer(collector.url, "enospc") as load:
                load.wait_acked(300)
                fill(disk)
                load.wait_status(503)
                wait_until(lambda: not probe.get(f"{collector.url}/readyz").json()[
                    "spool_writable"], what="the spool to report ENOSPC")
                assert load.retry_after == {"5"}
                refused = load.statuses[503]
                time.sleep(0.5)
                assert load.statuses[503] > refused  # still refusing while the disk is full
                free(disk)
                acked = len(load.acked)
                load.wait_acked(acked + 300)
                wait_until(lambda: probe.get(f"{collector.url}/readyz").status_code == 200,
                           what="ready again without a restart")
            collector.stop()
            copies = assert_stored_once(collector, "enospc", load.acked)
            assert set(copies) == set(load.acked)
        finally:
            collector.kill()


def test_a_refused_request_is_quarantined_alone_and_replayed_with_the_spool_command(tmp_path):
    """ClickHouse refuses one request (a CHECK constraint the operator added): the writer
    splits its segment until only that request is left, stores every other one, and puts
    it in spool/dead. ``spool list`` shows it with the reason; after the constraint is
    dropped, ``spool replay`` brings it back and it is stored, once."""
    collector = CollectorProcess(tmp_path / "c", {"CANARYTRACE_FLUSH_INTERVAL_S": "1"})
    store = collector.open_store()
    store.migrate()
    store.client.command(f"ALTER TABLE {store.table('otel_traces')} "
                         "ADD CONSTRAINT no_poison CHECK SpanName != 'poison'")
    store.close()
    collector.start()
    try:
        batches = [[P.span("fine") for _ in range(10)] for _ in range(7)]
        batches[3] = [P.span("fine") for _ in range(9)] + [P.span("poison")]
        with httpx.Client(timeout=10) as http:
            assert [post(http, collector.url, b, "mixed").status_code
                    for b in batches] == [200] * 7
            wait_until(lambda: metric(http, collector.url,
                                      "canarytrace_spans_quarantined_total") == 10,
                       what="the refused request in spool/dead")
            wait_for_spans(collector.url, 60, service="mixed")
        listing = collector.cli("spool", "list").stdout
        (dead,) = [line for line in listing.splitlines() if "\tquarantined\t" in line]
        assert "\t1 requests\t10 spans\t" in dead and "VIOLATED_CONSTRAINT" in dead
        collector.stop()
        assert_stored_once(collector, "mixed", [i for n, b in enumerate(batches) if n != 3
                                                for i in ids(b)])
        store = collector.open_store()
        store.client.command(f"ALTER TABLE {store.table('otel_traces')} DROP CONSTRAINT no_poison")
        store.close()
        replayed = collector.cli("spool", "replay")
        assert replayed.returncode == 0 and "moved 1 segment(s), 10 span(s)" in replayed.stdout
        collector.start()
        wait_for_spans(collector.url, 70, service="mixed", timeout=30)
        collector.stop()
        assert_stored_once(collector, "mixed", [i for b in batches for i in ids(b)])
    finally:
        collector.kill()


def test_an_upgrade_adopts_the_old_shared_spool_and_keys(tmp_path):
    """Spans an older version acknowledged into the shared ``spool/`` next to the store (as
    JSONEachRow text, one from 1971 among them) are stored by the new version, and the old
    ``keys.json`` keeps guarding the store."""
    old_rows = RowBuilder(Limits()).convert(P.request(
        [P.span("old-version") for _ in range(5)]
        + [P.span("old-1971", start_time_unix_nano=10**15, end_time_unix_nano=10**15 + 1)],
        service="legacy"), "legacy").rows
    for row in old_rows:  # what the old writer spooled: text timestamps
        row["Timestamp"] = format_ns(row["Timestamp"])
    (tmp_path / "spool").mkdir()
    write_segment(tmp_path / "spool" / "000000000007-0123456789ab.seg", MAGIC_JSON,
                  [Record(b"\n".join(orjson.dumps(r) for r in old_rows), len(old_rows))])
    key = KeyRing(tmp_path / "keys.json").create("legacy")
    collector = CollectorProcess(tmp_path)
    collector.start()
    try:
        assert httpx.get(f"{collector.url}/api/spans").status_code == 401
        auth = {"Authorization": f"Bearer {key}"}
        stored = wait_for_spans(collector.url, 6, auth, service="legacy")
        assert min(s["TimestampNs"] for s in stored) == 10**15
        assert not list((tmp_path / "spool").glob("*.seg"))
        collector.stop()
        assert_stored_once(collector, "legacy", [r["SpanId"] for r in old_rows])
    finally:
        collector.kill()
