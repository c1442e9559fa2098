"""A child process's watch on the process that started it.

A supervisor killed outright (SIGKILL) cannot stop what it started: its zone workers
and web processes notice that their parent is gone and stop on their own.
"""

import asyncio
import os

PARENT_CHECK_S = 0.5


async def parent_gone(parent: int) -> None:
    """Return once the process with pid `parent` is no longer this process's parent."""
    while os.getppid() == parent:
        await asyncio.sleep(PARENT_CHECK_S)
