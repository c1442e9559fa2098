"""The summary watcher merges the zone workers' summaries; CPU readings come from /proc."""

import os
import subprocess
import sys
import time

import pytest

from zones.load.observe import (
    ProcessTreeCpu,
    SummaryWatcher,
    machine_busy_s,
    summary_url,
)

OFFSETS = iter(range(1, 10_000))


def frame(overruns: int, *zones: dict) -> dict:
    """A `market_summary` event as the summary socket sends it (docs/events.md)."""
    return {
        "type": "market_summary",
        "v": 1,
        "offset": next(OFFSETS),
        "tick": 1,
        "hlc": 1,
        "overruns": overruns,
        "zones": list(zones),
    }


def zone(index: int, entities: int, health: str = "ok", **extra) -> dict:
    return {
        "zone": index,
        "entities": entities,
        "in_flight": 0,
        "capacity": 1800,
        "health": health,
        "migrations_per_s": 2.0,
        **extra,
    }


def test_the_summary_socket_is_on_the_same_host_with_an_origin_the_validator_accepts():
    assert summary_url("http://127.0.0.1:8000/", 3) == (
        "ws://127.0.0.1:8000/ws/markets/3/summary/",
        "http://127.0.0.1:8000",
    )
    assert summary_url("https://market.example", 1)[0] == (
        "wss://market.example/ws/markets/1/summary/"
    )


def test_each_zone_keeps_its_newest_state_and_its_peak_until_taken():
    watcher = SummaryWatcher("http://127.0.0.1:1", 1)
    watcher.receive(frame(0, zone(0, 40), zone(1, 5)), now=1.0)
    watcher.receive(frame(0, zone(2, 9)), now=1.1)  # another worker
    watcher.receive(frame(0, zone(0, 12), zone(1, 6)), now=1.5)
    assert watcher.zones[0].latest["entities"] == 12
    assert watcher.take_peaks() == {0: (40, 0), 1: (6, 0), 2: (9, 0)}
    assert watcher.take_peaks()[0] == (12, 0)  # a new second starts from the newest state


def test_overruns_count_per_worker_from_the_first_summary_and_survive_a_restart():
    watcher = SummaryWatcher("http://127.0.0.1:1", 1)
    watcher.receive(frame(100, zone(0, 1), zone(1, 1)), now=1)  # worker A, 100 before we came
    watcher.receive(frame(7, zone(2, 1)), now=1)  # worker B
    watcher.receive(frame(103, zone(0, 1), zone(1, 1)), now=2)
    watcher.receive(frame(9, zone(2, 1)), now=2)
    assert watcher.overruns == 3 + 2
    watcher.receive(frame(1, zone(2, 1)), now=3)  # B restarted: its count starts again
    assert watcher.overruns == 3 + 2 + 1


def test_health_and_migration_windows_are_kept_with_fields_that_may_be_missing():
    watcher = SummaryWatcher("http://127.0.0.1:1", 1)
    watcher.receive(frame(0, zone(0, 1, "degraded", migration_ms_p50=80.0)), now=1)
    watcher.receive(frame(0, zone(0, 1, "restarting", migrations=3)), now=2)
    watcher.receive({"type": "something.else"}, now=3)
    track = watcher.zones[0]
    assert track.degraded_windows == 1 and track.health == {"degraded": 1, "restarting": 1}
    first, second = watcher.migrations
    assert (first.p50_ms, first.p99_ms, first.count) == (80.0, None, None)
    assert second.count == 3 and second.per_s == 2.0
    assert watcher.messages == 2


def test_health_reports_count_as_health_and_positions_follow_the_events():
    watcher = SummaryWatcher("http://127.0.0.1:1", 1)
    watcher.receive({"type": "snapshot", "offset": 4, "epoch": "e", "state": {}}, now=1)
    watcher.receive(
        {"type": "zone_health", "offset": 5, "zones": [2], "health": "quarantined"}, now=2
    )
    assert watcher.zones[2].health == {"quarantined": 1}
    assert watcher.position == (5, "e")  # a reconnect resumes after it


def test_splits_and_merges_are_kept_with_when_they_came_and_move_the_position():
    watcher = SummaryWatcher("http://127.0.0.1:1", 1)
    watcher.receive({"type": "snapshot", "offset": 4, "epoch": "e", "state": {}}, now=1)
    split = {"type": "zones_repartitioned", "offset": 6, "kind": "split", "phase": "done"}
    watcher.receive(split, now=2.5)
    assert watcher.repartitions == [(2.5, split)] and watcher.position == (6, "e")
    assert watcher.messages == 0 and not watcher.zones  # not a summary


def test_a_process_tree_counts_this_process_and_the_machine_is_busy_some_of_the_time():
    tree = ProcessTreeCpu(os.getpid())
    sum(i * i for i in range(200_000))
    reading = tree.seconds()
    assert reading["server"] >= reading["web"] > 0
    assert machine_busy_s() > 0


BURN = "import time\nend = time.process_time() + 0.4\nwhile time.process_time() < end: pass\ntime.sleep(30)"


def test_the_tree_is_scanned_every_rescan_s_and_a_process_started_between_is_found_then():
    tree = ProcessTreeCpu(os.getpid(), rescan_s=0.5)
    tree.seconds()
    child = subprocess.Popen([sys.executable, "-c", BURN, "zoneworker"])
    try:
        deadline = time.monotonic() + 20
        while tree.seen.get(child.pid, 0) < 0.35:  # found at a later scan, its CPU so far
            assert time.monotonic() < deadline, tree.seen
            tree.seconds()
            time.sleep(0.05)
        scans = tree.scans
        assert 2 <= scans <= (time.monotonic() - deadline + 20) / 0.5 + 2
        for _ in range(5):  # read straight away: the processes found, no scan
            tree.seconds()
        assert tree.scans == scans and child.pid in tree.members
        child.kill()
        child.wait()
        before = tree.seen[child.pid]
        tree.seconds()
        assert child.pid not in tree.members and tree.seen[child.pid] == before
        assert tree.seconds()["workers"] == pytest.approx(before)
    finally:
        child.kill()
        child.wait()


def test_zone_workers_count_as_workers_and_every_other_descendant_as_web():
    """A web process the main job started is the web's CPU, not the zone workers'."""
    web = subprocess.Popen([sys.executable, "-c", BURN, "webprocess"])
    worker = subprocess.Popen([sys.executable, "-c", BURN, "zoneworker"])
    try:
        tree = ProcessTreeCpu(os.getpid())
        deadline = time.monotonic() + 20
        while True:
            reading = tree.seconds()
            if min(tree.seen.get(web.pid, 0), tree.seen.get(worker.pid, 0)) >= 0.35:
                break
            assert time.monotonic() < deadline, reading
            time.sleep(0.1)
        mine = tree.seen[os.getpid()]
        assert reading["workers"] == pytest.approx(tree.seen[worker.pid])
        assert reading["web"] >= mine + tree.seen[web.pid] - 1e-6  # and any other child
        assert reading["server"] == pytest.approx(reading["web"] + reading["workers"])
    finally:
        for child in (web, worker):
            child.kill()
            child.wait()
