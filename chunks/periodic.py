"""The chunk store's periodic work when there is no Celery beat: the embedded default.

Distributed deployments run `celery -A fabric_site beat`, which schedules the same
task from CELERY_BEAT_SCHEDULE; embedded, the main job calls it itself.
"""

import asyncio
import contextlib
import logging

from asgiref.sync import sync_to_async

from chunks.tasks import chunk_collect_garbage

log = logging.getLogger(__name__)


async def collect_garbage_periodically(stop: asyncio.Event, interval_s: float) -> None:
    """Run the garbage collection every `interval_s` seconds until `stop` is set."""
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval_s)
        if stop.is_set():
            return
        try:
            result = await sync_to_async(chunk_collect_garbage.delay)()
            log.info("chunk garbage collection: %s", result.get())
        except Exception:  # one failed round must not end the main job
            log.exception("chunk garbage collection failed; retrying in %s s", interval_s)
