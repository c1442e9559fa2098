"""Waiting for something to happen, for tests that must not bet on how fast a loaded
machine makes it happen: poll until true, fail with what was awaited after a deadline
far beyond the expected time."""

import asyncio
import time
from collections.abc import Callable


async def until(
    predicate: Callable[[], bool], what: str = "the awaited condition", timeout: float = 10.0
) -> None:
    """Return as soon as `predicate()` is true; AssertionError naming `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:g} s")
        await asyncio.sleep(0.005)
