"""More web processes for one market: `runmarket --web-processes N`.

A web process writes each tick's frames to its visitors one after another, so the
last visitor of a tick waits for every frame before its own. With N web processes
accepting from the one listening socket of the main job, each serves the visitors
whose connections it accepted first (a busy process takes fewer; the split is not
even), on as many cores as there are. They share the zones and the events
through Redis, which is why only a distributed market (REDIS_URL set) can have
more than one: the embedded in-memory layer lives inside one process.

The main job is the first web process; the other N - 1 are `manage.py webprocess`
children holding the listening socket's descriptor. A child that exits is started
again after a backoff that doubles with each exit in a row (reset after a minute up);
the children stop with the main job, and on their own if it is killed outright.
"""

import asyncio
import contextlib
import logging
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings

from zones.parent import children_stop

log = logging.getLogger(__name__)

RESTART_FIRST_S = 0.5
RESTART_MAX_S = 10.0
HEALTHY_AFTER_S = 60.0
POLL_S = 0.1


def web_process_argv(fd: int) -> list[str]:
    """The command line of a web process serving the listening socket `fd`."""
    return [
        sys.executable,
        str(Path(settings.BASE_DIR) / "manage.py"),
        "webprocess",
        "--fd",
        str(fd),
        "--parent",
        str(os.getpid()),
    ]


@dataclass
class WebSlot:
    """One extra web process, and when it may be started again."""

    index: int
    process: asyncio.subprocess.Process | None = None
    started_at: float = 0.0
    restart_at: float = 0.0
    backoff_s: float = RESTART_FIRST_S
    exits: int = 0


@dataclass
class WebProcesses:
    """Keeps `count` web processes serving the listening socket `fd`, started with `env`."""

    count: int
    fd: int
    env: dict[str, str]
    slots: list[WebSlot] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.slots = [WebSlot(index=i) for i in range(self.count)]

    def pids(self) -> list[int]:
        """Process ids of the web processes running now."""
        return [s.process.pid for s in self.slots if s.process and s.process.returncode is None]

    async def run(self, stop: asyncio.Event) -> None:
        """Start them, restart any that exits, until `stop`; then stop them all."""
        try:
            while not stop.is_set():
                for slot in self.slots:
                    await self._watch(slot)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), POLL_S)
        finally:
            await self._stop_all()

    async def _watch(self, slot: WebSlot) -> None:
        now = time.monotonic()
        process = slot.process
        if process is not None and process.returncode is None:
            if now - slot.started_at >= HEALTHY_AFTER_S:
                slot.backoff_s = RESTART_FIRST_S
            return
        if process is not None:  # it exited on its own
            slot.process = None
            slot.exits += 1
            slot.restart_at = now + slot.backoff_s
            log.warning(
                "web process %d (pid %d) exited with %s; starting it again in %.1f s",
                slot.index + 2,
                process.pid,
                process.returncode,
                slot.backoff_s,
            )
            slot.backoff_s = min(slot.backoff_s * 2, RESTART_MAX_S)
        if now >= slot.restart_at:
            slot.process = await asyncio.create_subprocess_exec(
                *web_process_argv(self.fd), env=self.env, pass_fds=(self.fd,)
            )
            slot.started_at = now
            log.info("web process %d started (pid %d)", slot.index + 2, slot.process.pid)

    async def _stop_all(self) -> None:
        await children_stop([s.process for s in self.slots if s.process], "web process", log)
