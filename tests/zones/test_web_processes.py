"""`runmarket --web-processes N`: N processes serve one port, the same zones and events.

A distributed market (real Redis, a channel prefix of the test's own) runs two web
processes: the main job and one `manage.py webprocess` child sharing its listening
socket. Visitors who join land on both processes, and every one of them sees every
other: the zones' rows reach both. A child killed outright is started again; the
children stop with the main job, and on their own when it is killed outright. An
embedded market refuses more than one web process, and a port in use is refused
with a clear message.
"""

import asyncio
import os
import re
import signal
import socket
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from tests.live import free_port, live_market, stopped
from tests.subprocesses import embedded_environment, run_manage
from tests.zones.test_topology import until
from zones.client.burst import connect_retrying
from zones.client.layout import Layout

VISITORS = 16
STANDING_M = 1.5  # the visitors stand within this of one another: each sees all others
START_TIMEOUT_S = 60
CHILD_STARTED = re.compile(r"web process 2 started \(pid (\d+)\)")


def established_sockets_by_pid(port: int, pids: list[int]) -> Counter[int]:
    """How many established TCP connections on local `port` each of `pids` holds."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
            if local_port == port and fields[3] == "01":  # 01: ESTABLISHED
                inodes.add(fields[9])
    held: Counter[int] = Counter()
    for pid in pids:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:[") and target[8:-1] in inodes:
                held[pid] += 1
    return held


def child_pids(market) -> list[int]:
    return [int(pid) for pid in CHILD_STARTED.findall(market.log())]


def wait_for(predicate, what: str, timeout: float = START_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"{what} within {timeout} s"
        time.sleep(0.1)


def gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state == "Z"


def middle_of_zone(layout: Layout, zone: int) -> np.ndarray:
    """A floor point of `zone` with the zone all around it for 3 m."""
    points = layout.floor_points(step=1.0)
    around = [np.array([dx, 0.0, dz]) for dx in (-3, 0, 3) for dz in (-3, 0, 3)]
    inside = np.all([layout.zone_at(points + d) == zone for d in around], axis=0) & np.all(
        (points[:, [0, 2]] > 4.0) & (points[:, [0, 2]] < layout.hi[[0, 2]] - 4.0), axis=1
    )
    return points[np.flatnonzero(inside)[0]]


@pytest.fixture
def two_web_processes(tmp_path, redis_url, channel_prefix):
    with live_market(
        tmp_path,
        args=["--booths", "2", "--walkers", "0", "--web-processes", "2"],
        REDIS_URL=redis_url,
        FABRIC_CHANNEL_PREFIX=channel_prefix,
    ) as market:
        wait_for(lambda: child_pids(market), "the second web process did not start")
        yield market


async def test_visitors_of_both_web_processes_see_one_another(two_web_processes):
    market = two_web_processes
    probe = await connect_retrying(market.url, 1, retry_s=START_TIMEOUT_S)
    await probe.leave()
    centre = middle_of_zone(probe.layout, 0)
    rng = np.random.default_rng(3)
    offsets = rng.uniform(-STANDING_M / 2, STANDING_M / 2, (VISITORS, 3)) * [1.0, 0.0, 1.0]
    spots = centre + offsets
    # The kernel gives a connection to whichever process accepts it first, so one process
    # may take every one: half the visitors join while the other process is stopped.
    half = VISITORS // 2
    (child,) = child_pids(market)

    async def join_through(at, stopped_pid):
        with stopped(stopped_pid):
            return await asyncio.gather(
                *(
                    connect_retrying(market.url, 1, retry_s=START_TIMEOUT_S, at=s.tolist())
                    for s in at
                )
            )

    visitors = list(await join_through(spots[:half], stopped_pid=child))
    visitors += await join_through(spots[half:], stopped_pid=market.process.pid)
    try:
        port = int(market.address.rsplit(":", 1)[1])
        held = established_sockets_by_pid(port, [market.process.pid, *child_pids(market)])
        assert held == {market.process.pid: half, child: VISITORS - half}, dict(held)
        ids = {v.entity for v in visitors}
        for visitor in visitors:
            others = ids - {visitor.entity}
            await until(
                visitor,
                lambda v, others=others: others <= set(v.rows["id"].tolist()),
                f"did not see all {len(others)} others",
            )
    finally:
        await asyncio.gather(*(v.leave() for v in visitors), return_exceptions=True)


def test_a_killed_web_process_is_started_again_and_all_stop_with_the_main_job(two_web_processes):
    market = two_web_processes
    (first,) = child_pids(market)
    os.kill(first, signal.SIGKILL)
    wait_for(lambda: len(child_pids(market)) == 2, "the killed web process was not started again")
    assert "exited with -9; starting it again" in market.log()
    second = child_pids(market)[1]
    assert not gone(second)
    market.process.send_signal(signal.SIGTERM)
    assert market.process.wait(timeout=20) == 0, market.log()
    wait_for(lambda: gone(second), "the web process outlived the main job", timeout=10)
    assert "Traceback" not in market.log()


def test_web_processes_stop_on_their_own_when_the_main_job_is_killed(two_web_processes):
    market = two_web_processes
    (child,) = child_pids(market)
    market.process.send_signal(signal.SIGKILL)
    market.process.wait(timeout=10)
    wait_for(lambda: gone(child), "an orphaned web process kept running", timeout=15)


def test_an_embedded_market_refuses_more_than_one_web_process(tmp_path):
    env = embedded_environment(tmp_path)
    assert run_manage("migrate", "--noinput", env=env).returncode == 0
    refused = run_manage("runmarket", "--port", str(free_port()), "--web-processes", "2", env=env)
    assert refused.returncode != 0
    assert "--web-processes above 1 needs REDIS_URL" in refused.stderr
    zero = run_manage("runmarket", "--port", str(free_port()), "--web-processes", "0", env=env)
    assert zero.returncode != 0 and "--web-processes must be at least 1" in zero.stderr


def test_a_port_in_use_is_refused_with_a_clear_message(tmp_path):
    env = embedded_environment(tmp_path)
    assert run_manage("migrate", "--noinput", env=env).returncode == 0
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        refused = run_manage("runmarket", "--port", str(port), env=env, timeout=60)
    assert refused.returncode != 0
    assert f"cannot listen on 127.0.0.1:{port}" in refused.stderr
    assert "Traceback" not in refused.stderr
