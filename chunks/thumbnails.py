"""Thumbnails of image assets: a PNG of at most 256 × 256 pixels, stored as a chunk.

The thumbnail goes into the asset's own namespace, so exactly the readers of the asset
may fetch it, by hash, like any chunk. It is made in the background (chunks/tasks.py;
inline in the embedded default) and the asset's `thumbnail_state` says how far it got:
`pending` until it is stored, then `ready`, or `failed` when the bytes do not decode.
"""

import io
import logging
import os

import blake3
from django.db import transaction
from PIL import Image, ImageOps

from chunks.models import Asset, Chunk, ChunkNamespace
from chunks.storage import chunk_store

log = logging.getLogger(__name__)

THUMBNAIL_PIXELS = 256
IMAGE_MAX_PIXELS = 64_000_000
"""Images larger than this are not decoded (Pillow refuses them as decompression bombs)."""


def thumbnail_png(data: bytes) -> bytes:
    """A PNG of the image `data`, fitted into THUMBNAIL_PIXELS square; ValueError if it is none."""
    Image.MAX_IMAGE_PIXELS = IMAGE_MAX_PIXELS
    try:
        with Image.open(io.BytesIO(data)) as image:
            image = ImageOps.exif_transpose(image)
            image.thumbnail((THUMBNAIL_PIXELS, THUMBNAIL_PIXELS))
            out = io.BytesIO()
            image.convert("RGBA").save(out, format="PNG", optimize=True)
    except (OSError, Image.DecompressionBombError, SyntaxError) as error:
        raise ValueError(f"the image does not decode: {error}") from error
    return out.getvalue()


def asset_thumbnail_make(asset_id: int) -> str:
    """Make and store the asset's thumbnail; its state afterwards (`ready` or `failed`)."""
    from chunks.services import asset_bytes_reader

    asset = Asset.objects.filter(pk=asset_id).first()
    if asset is None:
        return "gone"
    parts = list(asset.parts.order_by("index").values_list("chunk_id", "offset", "size"))
    try:
        png = thumbnail_png(asset_bytes_reader(parts)(0, asset.size))
    except ValueError as error:
        log.info("asset %s: no thumbnail, %s", asset_id, error)
        Asset.objects.filter(pk=asset_id).update(thumbnail="", thumbnail_state="failed")
        return "failed"
    digest = _store(png)
    with transaction.atomic():
        Chunk.objects.get_or_create(hash=digest, defaults={"size": len(png)})
        ChunkNamespace.objects.get_or_create(chunk_id=digest, namespace_id=asset.namespace_id)
        Asset.objects.filter(pk=asset_id).update(thumbnail=digest, thumbnail_state="ready")
    return "ready"


def _store(data: bytes) -> str:
    """Put `data` into the chunk store under its hash (flushed before it is renamed in)."""
    digest = blake3.blake3(data).hexdigest()
    store = chunk_store()
    if store.exists(digest):
        return digest
    fd, temp = store.temp_create()
    with os.fdopen(fd, "wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())
    store.place(temp, digest)
    return digest
