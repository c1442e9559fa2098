"""A child process's watch on the process that started it, and the parent's stop of its children.

A supervisor killed outright (SIGKILL) cannot stop what it started: its zone workers
and web processes notice that their parent is gone and stop on their own.
"""

import asyncio
import contextlib
import logging
import os
import signal

PARENT_CHECK_S = 0.5


async def parent_gone(parent: int) -> None:
    """Return once the process with pid `parent` is no longer this process's parent."""
    while os.getppid() == parent:
        await asyncio.sleep(PARENT_CHECK_S)


STOP_GRACE_S = 5.0


async def children_stop(
    children: list[asyncio.subprocess.Process], what: str, log: logging.Logger
) -> None:
    """SIGTERM every child still running, then SIGKILL any not gone within STOP_GRACE_S."""
    running = [child for child in children if child.returncode is None]
    for child in running:
        with contextlib.suppress(ProcessLookupError):
            child.send_signal(signal.SIGTERM)
    for child in running:
        try:
            await asyncio.wait_for(child.wait(), STOP_GRACE_S)
        except TimeoutError:
            log.error("%s pid %d ignored SIGTERM; killing it", what, child.pid)
            child.kill()
            await child.wait()
