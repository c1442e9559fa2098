"""Background jobs of the chunk store (Celery; run inline in the embedded default)."""

from dataclasses import asdict

from celery import shared_task

from chunks import services


@shared_task(name="chunks.tasks.chunk_collect_garbage")
def chunk_collect_garbage() -> dict[str, int]:
    """Delete unreferenced chunks past the grace period; returns what was removed."""
    return asdict(services.chunk_collect_garbage())
