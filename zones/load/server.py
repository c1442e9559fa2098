"""A market server of the harness's own: `runmarket --booths N` on a fresh database.

Everything it needs lives in a temporary data folder that goes when the server
stops (SQLite database, zone snapshots, chunk store); its output goes to
`server.log` in the report folder. With REDIS_URL set the server is distributed,
as `runmarket` would be, under a channel prefix of this run's own, whose keys are
deleted afterwards. The server runs in a session of its own, so that whatever is
left of it after SIGTERM (a zone worker that would not stop) can be ended with it.
"""

import contextlib
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings

from market.rates import JOIN_LIMIT_DEFAULTS

STARTUP_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 10.0  # then the whole session is killed: its data goes anyway
LOG_TAIL_LINES = 25
# Settings that would point the server at someone else's database or store.
FOREIGN_VARIABLES = ("DATABASE_URL", "CHUNK_STORE_DIR", "FABRIC_MARKET_ID", "FABRIC_CHANNEL_PREFIX")
MARKET_LINE = re.compile(r"\(market (\d+)\)")


class ServerError(Exception):
    """The server could not be started; the message carries the end of its log."""


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def healthy(url: str, timeout: float = 2.0) -> bool:
    """Whether the site at `url` answers its health check."""
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/healthz", timeout=timeout) as answer:
            return bool(answer.status == 200)
    except (urllib.error.URLError, OSError):
        return False


@dataclass
class OwnServer:
    """One `runmarket` process and its zone workers."""

    log_path: Path
    booths: int
    walkers: int = 0
    spares: int = 0  # spare zones beside the booths', for splits
    zones_per_worker: int = 1
    web_processes: int = 1
    redis_url: str | None = None
    port: int = field(default_factory=free_port)
    market_id: int = 0
    process: subprocess.Popen[bytes] | None = None
    data_dir: Path | None = None
    prefix: str = ""
    settings: dict[str, str] = field(default_factory=dict)  # environment for the market

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def describe(self) -> dict[str, object]:
        return {
            "kind": "started by the harness",
            "mode": "distributed (Redis)" if self.redis_url else "embedded",
            "zones_per_worker": self.zones_per_worker if self.redis_url else None,
            "web_processes": self.web_processes,
            "walkers": self.walkers,
            "spare_zones": self.spares,
            "pid": self.process.pid if self.process else None,
        }

    def environment(self) -> dict[str, str]:
        assert self.data_dir is not None
        env = {k: v for k, v in os.environ.items() if k not in FOREIGN_VARIABLES}
        env.pop("REDIS_URL", None)
        env.update(FABRIC_DATA_DIR=str(self.data_dir), PYTHONUNBUFFERED="1")
        # Every visitor of a run joins from 127.0.0.1, far beyond the join limits meant for
        # one caller (docs/protocol.md §1): the harness's own market has none.
        env.update(dict.fromkeys(JOIN_LIMIT_DEFAULTS, "off"))
        env.update(self.settings)
        if self.redis_url:
            self.prefix = f"load{secrets.token_hex(4)}"
            env.update(REDIS_URL=self.redis_url, FABRIC_CHANNEL_PREFIX=self.prefix)
        return env

    def start(self) -> None:
        """Migrate a fresh database, start runmarket, wait until its market takes visitors."""
        self.data_dir = Path(tempfile.mkdtemp(prefix="fabric-load-"))
        env = self.environment()
        manage = [sys.executable, str(Path(settings.BASE_DIR) / "manage.py")]
        migrated = subprocess.run(
            [*manage, "migrate", "--noinput"], env=env, capture_output=True, text=True
        )
        if migrated.returncode != 0:
            raise ServerError(f"migrate failed:\n{migrated.stdout}{migrated.stderr}")
        argv = [
            *manage,
            "runmarket",
            "--port",
            str(self.port),
            "--booths",
            str(self.booths),
            "--walkers",
            str(self.walkers),
            "--zones-per-worker",
            str(self.zones_per_worker),
            "--web-processes",
            str(self.web_processes),
            "--spare-zones",
            str(self.spares),
        ]
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                argv,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._wait_until_up()

    def _wait_until_up(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServerError(
                    f"runmarket exited with {self.process.returncode}:\n{self.tail()}"
                )
            found = MARKET_LINE.search(self.log())
            if found and healthy(self.url):
                self.market_id = int(found[1])
                return
            time.sleep(0.2)
        raise ServerError(
            f"runmarket did not answer within {STARTUP_TIMEOUT_S:g} s:\n{self.tail()}"
        )

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def tail(self) -> str:
        return "\n".join(self.log().rstrip().splitlines()[-LOG_TAIL_LINES:])

    def stop(self) -> None:
        """SIGTERM, then SIGKILL to its whole session; delete its data and Redis keys."""
        process = self.process
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)  # anything of it still running
        if self.redis_url and self.prefix:
            with contextlib.suppress(Exception):
                self._forget_redis_keys()
        if self.data_dir is not None:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            self.data_dir = None

    def _forget_redis_keys(self) -> None:
        import redis

        assert self.redis_url is not None
        client = redis.Redis.from_url(self.redis_url, socket_timeout=5)
        keys = list(client.scan_iter(match=f"{self.prefix}*", count=1000))
        if keys:
            client.delete(*keys)
