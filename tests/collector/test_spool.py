"""The spool on a real filesystem: what was acknowledged survives, torn tails are dropped."""

from __future__ import annotations

import asyncio
import threading

import pytest

from canarytrace.collector.spool import Spool, SpoolBroken, SpoolFull, SpoolLocked
from tests.support.faults import fill, free, tmpfs


def test_acknowledged_records_survive_a_crash_and_a_torn_tail_is_dropped(tmp_path):
    spool = Spool(tmp_path, max_bytes=1_000_000)
    for i in range(3):
        spool.wait_durable_sync(spool.append(f'{{"n": {i}}}'.encode(), rows=1))
    active = next(tmp_path.glob("*.seg"))
    with open(active, "ab") as handle:  # a crash in the middle of the next record
        handle.write(b"\x40\x00\x00\x00\x01\x00\x00\x00\xde\xad")
    spool.close()

    reopened = Spool(tmp_path, max_bytes=1_000_000)
    (segment,) = reopened.sealed()
    assert reopened.read(segment) == (b'{"n": 0}\n{"n": 1}\n{"n": 2}', 3)
    reopened.wait_durable_sync(reopened.append(b'{"n": 3}', rows=1))
    newer = reopened.seal()
    assert reopened.sealed() == [segment, newer]  # replay order: older segment first
    assert newer.token != segment.token
    reopened.close()


def test_the_byte_limit_refuses_what_does_not_fit(tmp_path):
    spool = Spool(tmp_path, max_bytes=300)
    spool.wait_durable_sync(spool.append(b"x" * 200, rows=1))
    with pytest.raises(SpoolFull):
        spool.append(b"y" * 200, rows=1)
    spool.wait_durable_sync(spool.append(b"z" * 50, rows=1))
    segment = spool.seal()
    spool.remove(segment)  # stored: the room comes back
    spool.wait_durable_sync(spool.append(b"y" * 200, rows=1))
    spool.close()


async def test_concurrent_appends_share_fsyncs_and_all_become_durable(tmp_path):
    spool = Spool(tmp_path, max_bytes=10_000_000)

    async def request(i: int) -> None:
        await spool.wait_durable(spool.append(f"record {i}".encode(), rows=1))

    await asyncio.gather(*(request(i) for i in range(200)))
    segment = spool.seal()
    payload, rows = spool.read(segment)
    assert rows == 200 and len(payload.split(b"\n")) == 200
    spool.close()


def test_one_collector_per_spool_directory(tmp_path):
    spool = Spool(tmp_path, max_bytes=1_000_000)
    with pytest.raises(SpoolLocked, match=r"is in use by another collector \(pid \d+\)"):
        Spool(tmp_path, max_bytes=1_000_000)
    spool.close()
    Spool(tmp_path, max_bytes=1_000_000).close()  # free again once closed


def test_a_full_disk_fails_only_the_write_that_did_not_fit_and_then_heals(tmp_path):
    """ENOSPC on the spool's disk (a real tmpfs filled with dd): the request that did not fit
    is refused (never acknowledged) and cut off again; a new segment cannot be started, so
    the current one stays; once space is freed the same Spool writes and seals again."""
    with tmpfs(tmp_path / "disk", "2m") as disk:
        spool = Spool(disk / "spool", max_bytes=100_000_000)
        spool.wait_durable_sync(spool.append(b"kept-1", rows=1))
        fill(disk)
        with pytest.raises(SpoolBroken, match="No space left"):
            spool.wait_durable_sync(spool.append(b"x" * 200_000, rows=1))
        assert spool.broken is not None and not spool.probe()
        with pytest.raises(SpoolBroken, match="cannot start a new spool segment"):
            spool.seal()
        free(disk)
        assert spool.probe() and spool.broken is None
        spool.wait_durable_sync(spool.append(b"kept-2", rows=1))
        segment = spool.seal()
        assert [r.payload for r in spool.contents(segment).records] == [b"kept-1", b"kept-2"]
        spool.close()


def test_a_segment_being_sealed_is_never_adopted_twice_by_the_replay_rescan(tmp_path,
                                                                            monkeypatch):
    """The writer rescans the directory once a second for replayed segments. A segment
    that is being sealed (its fsync still running) is neither active nor sealed: taking it
    for a replayed one listed it twice, so it was stored, deleted, and then looked for
    again forever, and everything spooled after it waited behind it."""
    import canarytrace.collector.spool as spool_module

    spool = Spool(tmp_path, max_bytes=1_000_000)
    spool.wait_durable_sync(spool.append(b"acked before the seal", rows=1))
    in_fsync, release = threading.Event(), threading.Event()
    real_fsync = spool_module.os.fsync

    def slow_fsync(fd: int) -> None:
        if threading.current_thread().name == "spool-syncer" and not release.is_set():
            in_fsync.set()
            release.wait(10)
        real_fsync(fd)

    monkeypatch.setattr(spool_module.os, "fsync", slow_fsync)
    sealing = threading.Thread(target=spool.seal)
    sealing.start()
    assert in_fsync.wait(10), "the seal never reached its fsync"
    adopted = spool.rescan()  # the writer's housekeeping, inside the window
    release.set()
    sealing.join(10)
    monkeypatch.setattr(spool_module.os, "fsync", real_fsync)

    assert adopted == 0
    (segment,) = spool.sealed()
    assert spool.read(segment) == (b"acked before the seal", 1)
    spool.remove(segment)
    spool.wait_durable_sync(spool.append(b"acked after the seal", rows=1))
    assert spool.rescan() == 0  # nor the new active segment
    assert spool.read(spool.seal()) == (b"acked after the seal", 1)
    assert len(spool.sealed()) == 1
    spool.close()


def test_a_segment_put_back_by_spool_replay_is_adopted_once(tmp_path):
    spool = Spool(tmp_path, max_bytes=1_000_000)
    spool.wait_durable_sync(spool.append(b"quarantined", rows=1))
    dead = spool.quarantine(spool.seal(), "refused")
    dead.rename(tmp_path / dead.name)  # what `canarytrace spool replay` does
    assert spool.rescan() == 1
    assert spool.rescan() == 0
    (segment,) = spool.sealed()
    assert spool.read(segment) == (b"quarantined", 1)
    spool.close()
