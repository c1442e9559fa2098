"""`manage.py soak`: what it reads, what it refuses, and a short run that catches a planted leak."""

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time

import pytest
from django.core.management import CommandError, call_command

from tests.own_redis import own_redis  # noqa: F401  (fixture)
from tests.subprocesses import REPO_ROOT, embedded_environment
from zones.load.resources import (
    market_processes,
    process_reading,
    process_role,
    redis_pid,
    redis_reading,
    table_rows,
)

# says when its interpreter is up: read before that, a process just exec'd holds a few
# hundred KiB and no Python yet. Every line goes out in one write(2), so lines written by
# the three processes to the one pipe cannot interleave (print may write a line in pieces
# when Python runs unbuffered)
SLEEPER = "import os, time; os.write(1, b'up\\n'); time.sleep(30)"


@pytest.fixture
def family():
    """A process with two children, named as a zone worker and a web process are."""
    code = (
        "import os, subprocess, sys, time\n"
        f"a = subprocess.Popen([sys.executable, '-c', {SLEEPER!r}, 'zoneworker', '--zones', '0,1'])\n"
        f"b = subprocess.Popen([sys.executable, '-c', {SLEEPER!r}, 'webprocess', '--fd', '3'])\n"
        "os.write(1, f'{a.pid} {b.pid}\\n'.encode())\n"
        "time.sleep(30)\n"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", code, "runmarket"], stdout=subprocess.PIPE, text=True
    )
    assert parent.stdout is not None
    lines = [parent.stdout.readline().strip() for _ in range(3)]  # the pids, and two 'up's
    assert sorted(lines)[-2:] == ["up", "up"], lines
    children = [int(pid) for pid in min(lines).split()]
    yield parent.pid, children
    parent.kill()
    parent.wait()
    for pid in children:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def test_market_processes_are_read_by_role_with_their_memory_and_descriptors(family):
    root, (worker, web) = family
    assert process_role(worker) == "zoneworker 0,1"
    assert process_role(web) == "webprocess"
    found = market_processes(root)
    assert set(found) == {"runmarket", "zoneworker 0,1", "webprocess"}
    assert found["zoneworker 0,1"].pid == worker and found["runmarket"].pid == root
    for reading in found.values():
        assert reading.rss_kib > 1_000 and reading.fds >= 3
    assert process_reading(2**22 + 12_345) is None  # no such process


def test_rows_are_counted_per_table_of_the_database(tmp_path):
    database = tmp_path / "fabric.sqlite3"
    with sqlite3.connect(database) as connection:
        connection.execute("CREATE TABLE market_booth (id INTEGER)")
        connection.execute("CREATE TABLE chunks_chunk (id INTEGER)")
        connection.executemany("INSERT INTO market_booth VALUES (?)", [(i,) for i in range(3)])
    connection.close()
    assert table_rows(database) == {"chunks_chunk": 0, "market_booth": 3}


def test_redis_is_read_for_memory_keys_clients_and_its_process(own_redis):  # noqa: F811
    client = own_redis.client()
    client.set("soak-test", "x")
    reading = redis_reading(client)
    assert reading is not None
    assert reading["keys"] == 1 and reading["clients"] >= 1 and reading["used_memory"] > 0
    assert redis_pid(client) == own_redis.pid
    own_redis.stop()
    assert redis_reading(client) is None


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"booths": 1}, "--booths must be 2 to 32"),
        ({"duration": 0}, "--duration must be above 0"),
        ({"warm_up": 100, "duration": 60}, "--warm-up must be 0 or more and shorter"),
        ({"visitors": 0}, "--visitors must be at least 1"),
        ({"regulars": -1}, "--regulars cannot be negative"),
        ({"event_log_len": 0}, "--event-log-len must be at least 1"),
        ({"outbox_keep": 0}, "--outbox-keep must be above 0"),
    ],
)
def test_values_that_cannot_make_a_soak_are_refused(options, message, tmp_path):
    with pytest.raises(CommandError, match=message):
        call_command("soak", "--short", out=str(tmp_path), **options)


def test_a_short_soak_reports_every_figure_and_finds_the_leak_planted_in_its_redis(
    tmp_path,
    own_redis,  # noqa: F811
):
    """The control: while the soak runs, this test keeps opening connections to the soak's
    Redis and never closes them, so redis-server's descriptors grow; the report must say so."""
    out = tmp_path / "soak"
    soak = subprocess.Popen(
        [sys.executable, str(REPO_ROOT / "manage.py"), "soak", "--short"]
        + ["--redis-url", own_redis.url, "--out", str(out)],
        cwd=REPO_ROOT,
        env=embedded_environment(tmp_path / "data"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    held = []

    def leak():
        while not (out / "report.json").exists() and soak.poll() is None:
            time.sleep(0.2)
        while soak.poll() is None:
            client = own_redis.client()
            client.ping()  # opens its connection, kept until the test ends
            held.append(client)
            time.sleep(0.5)

    leaker = threading.Thread(target=leak)
    leaker.start()
    try:
        output, _ = soak.communicate(timeout=300)
    finally:
        soak.kill()
        leaker.join()
    assert soak.returncode == 0, output
    report = json.loads((out / "report.json").read_text())
    assert len(report["samples"]) == 90 // 5 + 1  # a reading every 5 s of 90, and one at 0
    roles = set(report["samples"][-1]["processes"])
    assert {"runmarket", "zoneworker 0,1,2", "redis-server"} <= roles
    assert {"market_booth", "market_visitoridentity", "chunks_chunk"} <= set(
        report["samples"][-1]["rows"]
    )
    assert report["run"]["server"]["settings"] == {
        "FABRIC_EVENTS_MAX_LEN": "1000",
        "FABRIC_OUTBOX_KEEP_S": "10.0",
    }
    load = report["load"]
    assert load["newcomers"] >= 90 and load["regular_visits"] >= 1 and load["left"] >= 50
    assert load["join_failures"] == {}
    assert load["zone_changes"] > 0  # the visitors were handed across booths
    assert load["uploads"] >= 5 and load["grants"] >= 2 and load["revokes"] >= 2
    assert len(held) > 60
    verdict = next(v for v in report["verdicts"] if v["name"] == "redis-server descriptors")
    assert verdict["flat"] is False and verdict["growth"] > 30
    assert report["flat"] is False and "redis-server descriptors" in report["grew"]
    assert "grew: redis-server descriptors" in output
    assert (out / "soak.svg").read_text().startswith("<svg")
    assert {p.name for p in (out / "charts").iterdir()} == {
        "rss.svg",
        "descriptors.svg",
        "redis.svg",
        "rows.svg",
    }
