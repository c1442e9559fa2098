"""SIGTERM as Ctrl-C for a run on an event loop: its visitors leave, its market stops.

A CI job's timeout or a `kill` sends SIGTERM; a run that died of it would leave its
market (and the market's Redis keys and data folder) behind. Cancelling the run's task
instead unwinds every `finally` on the way out, as Ctrl-C does.
"""

import asyncio
import signal
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")


async def cancelled_by_sigterm(work: Awaitable[T]) -> T:
    """Await `work` with SIGTERM cancelling the current task; SIGTERM raises
    KeyboardInterrupt again once it is over."""
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        return await work
    finally:
        loop.remove_signal_handler(signal.SIGTERM)
        signal.signal(signal.SIGTERM, signal.default_int_handler)
