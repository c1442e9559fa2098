"""A zone whose snapshot or input log cannot be written lives on, and loses nothing.

Two faults, each made real: the process runs out of file descriptors (a snapshot
needs new ones, the log's append does not), and the disk refuses the log's writes
part-way (no space left). In both the worker ticks on, counts the failures and
reports the zone degraded with the reason; once writes work again the zone reports
ok, and a worker killed afterwards resumes exactly where this one was.
"""

import errno
import os
import resource
from contextlib import contextmanager

import numpy as np
import pytest

from tests.zones.test_zone_restart import (
    T0,
    VISITOR,
    ZONE,
    kill,
    run_both,
    visitor_traffic,
    zone_hash,
    zone_worker,
)
from zones import inputlog as inputlog_module
from zones import worker as worker_module


@pytest.fixture(autouse=True)
def short_snapshots(monkeypatch):
    monkeypatch.setattr(worker_module, "SNAPSHOT_EVERY_TICKS", 40)


@contextmanager
def no_descriptor_left():
    """Every new file descriptor is refused (EMFILE) while inside; those open stay open."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    probe = os.open(os.devnull, os.O_RDONLY)  # the lowest free descriptor number
    os.close(probe)
    resource.setrlimit(resource.RLIMIT_NOFILE, (probe, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


class FullDisk:
    """`os` as zones/inputlog.py sees it, with writes that stop half-way: no space left."""

    def __init__(self) -> None:
        self.full = False
        self.refused = 0

    def __getattr__(self, name):
        return getattr(os, name)

    def write(self, fd: int, data: bytes) -> int:
        if not self.full:
            return os.write(fd, data)
        self.refused += 1
        if len(data) > 1:  # half of it lands, then the disk is full
            os.write(fd, bytes(data[: len(data) // 2]))
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def health(worker) -> dict:
    (zone,) = worker.summary()["zones"]
    return zone


async def test_a_snapshot_without_descriptors_does_not_end_the_worker(tmp_path):
    reference, worker = zone_worker(None, market_id=30), zone_worker(tmp_path)
    await run_both(39, 0, reference, worker)
    hz = worker.hosted[ZONE]
    snapshots = hz.store.written

    with no_descriptor_left():
        await run_both(10, 39, reference, worker)  # the snapshot of tick 40 is due

    assert hz.state.tick == 49  # the zone ticked on: its log needs no new descriptor
    assert zone_hash(worker) == zone_hash(reference)
    assert hz.store.written == snapshots
    report = health(worker)
    assert report["health"] == "degraded"
    assert "snapshot write fails" in report["health_reason"]
    assert "Too many open files" in report["health_reason"]
    assert report["io_failures"] >= 1

    await run_both(30, 49, reference, worker)  # descriptors again: the retry succeeds
    assert hz.store.written == snapshots + 1
    report = health(worker)
    assert (report["health"], report["health_reason"]) == ("ok", "")
    assert report["io_failures"] >= 1  # counted since the worker started

    kill(worker)
    resumed = zone_worker(tmp_path)
    assert resumed.hosted[ZONE].state.tick == 79
    assert zone_hash(resumed) == zone_hash(reference)
    kill(resumed)


async def test_a_log_that_cannot_be_written_holds_the_zone_and_loses_nothing(tmp_path, monkeypatch):
    disk = FullDisk()
    monkeypatch.setattr(inputlog_module, "os", disk)
    worker = zone_worker(tmp_path, walkers=0)
    hz = worker.hosted[ZONE]
    await run_both(20, 0, worker)  # the visitor joined at tick 0 and walks
    assert hz.state.tick == 20

    disk.full = True
    for t in range(20, 30):
        visitor_traffic(worker, t)
        await worker.tick(T0 + 50 * t)

    assert disk.refused >= 10
    assert hz.state.tick == 20  # no tick happened that its log does not hold
    report = health(worker)
    assert report["health"] == "degraded"
    assert "input log write fails: No space left on device" in report["health_reason"]
    assert len(hz.commands) == 10  # the gateway's inputs wait for the zone, none lost

    disk.full = False
    await worker.tick(T0 + 50 * 30)
    assert hz.state.tick == 21
    assert not hz.commands  # every waiting input went into that tick
    assert health(worker)["health"] == "ok"
    await run_both(30, 31, worker)
    expected = zone_hash(worker)

    kill(worker)
    resumed = zone_worker(tmp_path, walkers=0)  # the log reads whole: nothing torn inside
    assert resumed.hosted[ZONE].state.tick == hz.state.tick
    assert zone_hash(resumed) == expected
    assert VISITOR in resumed.hosted[ZONE].state.id[resumed.hosted[ZONE].state.status > 0]
    kill(resumed)


async def test_control_a_torn_record_left_in_the_log_would_stop_the_zone(tmp_path, monkeypatch):
    # Without cutting the half-written record back off, the next append buries it.
    disk = FullDisk()
    monkeypatch.setattr(inputlog_module, "os", disk)
    monkeypatch.setattr(disk, "ftruncate", lambda fd, size: None, raising=False)
    worker = zone_worker(tmp_path, walkers=0)
    await run_both(5, 0, worker)
    disk.full = True
    await run_both(1, 5, worker)
    disk.full = False
    await run_both(5, 6, worker)
    kill(worker)

    with pytest.raises(inputlog_module.InputLogError):
        zone_worker(tmp_path, walkers=0)


def test_waiting_inputs_are_bounded_while_a_zone_cannot_log(tmp_path, monkeypatch):
    import asyncio

    monkeypatch.setattr(worker_module, "MAX_WAITING", 5)
    disk = FullDisk()
    monkeypatch.setattr(inputlog_module, "os", disk)
    worker = zone_worker(tmp_path, walkers=0)
    hz = worker.hosted[ZONE]
    disk.full = True

    async def stalled() -> None:
        for t in range(12):
            visitor_traffic(worker, t)
            await worker.tick(T0 + 50 * t)

    asyncio.run(stalled())

    assert hz.state.tick == 0
    assert len(hz.commands) == 5  # the newest five batches wait
    newest = hz.commands[-1]["vec"][0]
    assert np.allclose(newest, (np.cos(11 / 7), 0.0, np.sin(11 / 7)))
    kill(worker)


async def test_a_step_that_fails_for_the_process_s_resources_is_tried_again(tmp_path, monkeypatch):
    reference, worker = zone_worker(None, market_id=30), zone_worker(tmp_path)
    await run_both(10, 0, reference, worker)
    real_step = worker_module.step

    def out_of_descriptors(*args):
        raise OSError(errno.EMFILE, os.strerror(errno.EMFILE))

    monkeypatch.setattr(worker_module, "step", out_of_descriptors)
    for t in range(10, 13):
        visitor_traffic(worker, t)
        await worker.tick(T0 + 50 * t)
    hz = worker.hosted[ZONE]
    assert hz.state.tick == 10
    report = health(worker)
    assert report["health"] == "degraded"
    assert "tick fails: Too many open files" in report["health_reason"]

    monkeypatch.setattr(worker_module, "step", real_step)
    await worker.tick(T0 + 50 * 13)
    assert hz.state.tick == 11
    assert health(worker)["health"] == "ok"
    kill(worker)
