"""Background jobs of the chunk store (Celery; run inline in the embedded default)."""

from dataclasses import asdict

from celery import shared_task

from chunks import services


@shared_task(name="chunks.tasks.chunk_collect_garbage")
def chunk_collect_garbage() -> dict[str, int]:
    """Delete unreferenced chunks past the grace period; returns what was removed."""
    return asdict(services.chunk_collect_garbage())


@shared_task(name="chunks.tasks.asset_thumbnail_make")
def asset_thumbnail_make(asset_id: int) -> str:
    """Make an image asset's thumbnail; returns its state (`ready`, `failed`)."""
    from chunks.thumbnails import asset_thumbnail_make as make

    return make(asset_id)
