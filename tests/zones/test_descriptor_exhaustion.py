"""The main job outlives running out of file descriptors.

The embedded market runs under an open-file limit of 256 with its connection cap lifted
(FABRIC_MAX_CONNECTIONS above the limit), and silent connections take every descriptor it
has left. Its zones' snapshots, due every 5 s, then fail with "too many open files": the
zones go on, report it, and the process keeps serving. The header deadline then closes
the silent connections, the snapshots are written again, and the market answers as before.
"""

import asyncio
import contextlib
import subprocess
import sys
import time
from pathlib import Path

from tests.live import LiveMarket, free_port, http_get, wait_until_healthy
from tests.subprocesses import REPO_ROOT, embedded_environment, run_manage
from zones.web_limits import HEADER_TIMEOUT_S

OPEN_FILES = 256
SILENT = 400  # more than the server can hold
WAIT_S = 60.0


def start_market(data_dir: Path) -> LiveMarket:
    env = embedded_environment(data_dir, PYTHONUNBUFFERED="1", FABRIC_MAX_CONNECTIONS="100000")
    assert run_manage("migrate", "--noinput", env=env).returncode == 0
    port = free_port()
    log_path = data_dir / "runmarket.log"
    with log_path.open("a") as log:
        process = subprocess.Popen(
            ["prlimit", f"--nofile={OPEN_FILES}", "--", sys.executable, "manage.py"]
            + ["runmarket", "--port", str(port)],
            cwd=REPO_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )
    return LiveMarket(process=process, address=f"127.0.0.1:{port}", env=env, log_path=log_path)


async def hold_silent_connections(port: int) -> list[asyncio.StreamWriter]:
    held = []
    for _ in range(SILENT):
        with contextlib.suppress(OSError):
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            held.append(writer)
    return held


def test_zones_survive_a_process_out_of_descriptors(tmp_path):
    market = start_market(tmp_path)
    try:
        wait_until_healthy(market)
        port = int(market.address.rsplit(":", 1)[1])

        async def scenario() -> None:
            held = await hold_silent_connections(port)
            deadline = time.monotonic() + WAIT_S
            while "snapshot write failed" not in market.log():
                assert market.process.poll() is None, market.log()
                assert time.monotonic() < deadline, market.log()
                await asyncio.sleep(0.5)
            # Out of descriptors for a while: the process stays, until the silent ones go.
            await asyncio.sleep(HEADER_TIMEOUT_S + 5)
            for writer in held:
                writer.close()

        asyncio.run(scenario())

        assert market.process.poll() is None, market.log()
        deadline = time.monotonic() + WAIT_S
        while "snapshot write works again" not in market.log():
            assert time.monotonic() < deadline, market.log()
            time.sleep(0.5)
        assert http_get(market.url + "/healthz")[0] == 200
        assert "Traceback" not in market.log()
        assert "tick failed" not in market.log()  # the zones stepped on all along
    finally:
        market.process.terminate()
        try:
            market.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            market.process.kill()
            market.process.wait()
