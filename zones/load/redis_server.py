"""A Redis of a run's own: `redis-server` on a free loopback port, with its own folder.

A soak measures Redis's memory and the market's keys in it, which only means something
when nothing else uses that Redis; a fault run kills its Redis and starts it again on the
same port. Neither may touch a Redis that others share, so each starts its own here.
"""

import contextlib
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis

from .server import free_port

STARTUP_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 5.0


class RedisServerError(Exception):
    """redis-server is missing or did not answer; the message says what to do."""


@dataclass
class OwnRedis:
    """One redis-server process serving `folder` on `port`; start again after a stop or kill.

    `appendonly` keeps every write in an append-only file in `folder`, so a Redis killed
    and started again comes back with its data, as a production Redis with persistence
    does; without it a restart comes back empty.
    """

    folder: Path
    port: int = field(default_factory=free_port)
    appendonly: bool = False
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def client(self) -> "redis.Redis[bytes]":
        return redis.Redis.from_url(self.url, socket_timeout=2, socket_connect_timeout=2)

    def start(self) -> None:
        """Start redis-server and wait until it answers PING; RedisServerError if it cannot."""
        executable = shutil.which("redis-server")
        if executable is None:
            raise RedisServerError(
                "redis-server is not installed; on Debian: apt-get install -y redis-server"
            )
        self.folder.mkdir(parents=True, exist_ok=True)
        argv = [
            executable,
            "--bind",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--dir",
            str(self.folder),
            "--save",
            "",
            "--appendonly",
            "yes" if self.appendonly else "no",
            "--appendfsync",
            "always",
            "--daemonize",
            "no",
            "--logfile",
            str(self.folder / "redis.log"),
        ]
        self.process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RedisServerError(
                    f"redis-server exited with {self.process.returncode}: {self._log_tail()}"
                )
            with contextlib.suppress(redis.RedisError):
                if self.client().ping():
                    return
            time.sleep(0.05)
        raise RedisServerError(f"redis-server did not answer on port {self.port}")

    def kill(self) -> None:
        """SIGKILL, as a crash would: nothing is saved on the way out."""
        self._end(signal.SIGKILL)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it has not gone after STOP_TIMEOUT_S."""
        self._end(signal.SIGTERM)

    def _end(self, how: signal.Signals) -> None:
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.send_signal(how)
        try:
            process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def _log_tail(self) -> str:
        with contextlib.suppress(OSError):
            return " / ".join((self.folder / "redis.log").read_text().splitlines()[-5:])
        return "no log"
