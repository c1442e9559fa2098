"""A real market server for tests: `manage.py runmarket` on a free loopback port."""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.subprocesses import REPO_ROOT, embedded_environment, run_manage

STARTUP_TIMEOUT_S = 30


@contextmanager
def stopped(pid: int) -> Iterator[None]:
    """Process `pid` stopped (SIGSTOP) for the block, then continued.

    Web processes share one listening socket and the kernel gives a connection to
    whichever accepts first, so a test that needs a socket on a given process joins it
    while the others are stopped.
    """
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def http_get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.status, response.read().decode()


@dataclass
class LiveMarket:
    """A running market: its process, address and environment (for manage.py calls)."""

    process: subprocess.Popen[str]
    address: str
    env: dict[str, str]
    log_path: Path

    def log(self) -> str:
        """Everything the server has written so far."""
        return self.log_path.read_text(errors="replace")

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    def manage(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run another manage.py command against the same database."""
        return run_manage(*args, env=self.env)


def wait_until_healthy(market: LiveMarket) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if market.process.poll() is not None:
            raise AssertionError(
                f"runmarket exited with {market.process.returncode} before answering"
            )
        try:
            if http_get(market.url + "/healthz") == (200, '{"ok": true}'):
                return
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.2)
    raise AssertionError(
        f"runmarket did not answer {market.url}/healthz within {STARTUP_TIMEOUT_S} s"
    )


@contextmanager
def live_market(
    data_dir: Path,
    *,
    wait: bool = True,
    args: Sequence[str] = (),
    port: int | None = None,
    **env_overrides: str,
) -> Iterator[LiveMarket]:
    """Migrate a fresh database under `data_dir`, start runmarket, stop it afterwards.

    `args` go to runmarket; its output goes to `data_dir/runmarket.log` (a file, so a
    chatty server can never block on a full pipe). `port` (default: a free one) lets a
    test start the market again where its clients expect it.
    """
    env = embedded_environment(data_dir, PYTHONUNBUFFERED="1", **env_overrides)
    migrated = run_manage("migrate", "--noinput", env=env)
    assert migrated.returncode == 0, migrated.stderr
    port = port or free_port()
    log_path = data_dir / "runmarket.log"
    with log_path.open("a") as log_file:
        process = subprocess.Popen(
            [
                sys.executable,
                str(REPO_ROOT / "manage.py"),
                "runmarket",
                "--port",
                str(port),
                *args,
            ],
            cwd=REPO_ROOT,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            text=True,
        )
    market = LiveMarket(process=process, address=f"127.0.0.1:{port}", env=env, log_path=log_path)
    try:
        if wait:
            wait_until_healthy(market)
        yield market
    finally:
        if process.poll() is None:
            # SIGTERM first: the main job stops its zone worker processes on the way out
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def splitting_market(
    data_dir: Path, redis_url: str, prefix: str
) -> AbstractContextManager[LiveMarket]:
    """A distributed market of two booths and one spare zone, a worker process each, its
    thresholds lowered to a crowd of tens: split at 40 slots, merge under 10, a 3 s dwell."""
    return live_market(
        data_dir,
        args=["--booths", "2", "--walkers", "0", "--spare-zones", "1", "--zones-per-worker", "1"],
        REDIS_URL=redis_url,
        FABRIC_CHANNEL_PREFIX=prefix,
        FABRIC_SPLIT_SLOTS="40",
        FABRIC_MERGE_SLOTS="10",
        FABRIC_REPARTITION_DWELL_S="3",
    )
