"""Writes to the chunk store: uploads, namespaces, assets and garbage collection.

An upload is proved before it is kept: its body is hashed while it streams to a
temporary file, and only a body whose BLAKE3 hash is the one in the URL is moved
into the store and linked to the namespace. Knowing a chunk's hash therefore
never grants access to it: linking an existing chunk into another namespace
takes its full bytes, exactly as storing a new one does.

The Chunk row doubles as the lock between uploads and garbage collection: an
upload first writes the row (touching `touched_at`), and collection deletes a
row only by a conditional write on it, so the two never interleave on the same
chunk (a row lock on PostgreSQL, the database write lock on SQLite). Assets
only use chunks their namespace holds, which collection never touches.
"""

import logging
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import Exists, F, OuterRef, QuerySet
from django.utils import timezone

from chunks.errors import ChunkError, ChunkErrorKind
from chunks.filetypes import MalformedAsset, ReadRange, asset_kind
from chunks.hashes import chunk_hash_validate
from chunks.models import Asset, AssetChunk, Chunk, ChunkNamespace, Namespace
from chunks.receiving import UploadSink
from chunks.selectors import booth_for_assets, namespace_for_writing
from chunks.storage import ChunkStore, chunk_store
from market.events.publish import event_publish_on_commit
from market.events.types import AssetChanged
from market.models import Booth, Market
from market.rebac.services import rebac_tuple_write

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ChunkUpload:
    """What an upload did: `created` if the chunk was new to the store, `linked` if new to
    the namespace."""

    hash: str
    size: int
    namespace: Namespace
    created: bool
    linked: bool


@dataclass(frozen=True)
class GarbageReport:
    """What one garbage collection removed."""

    chunks_deleted: int
    candidates: int
    temp_files_removed: int
    files_restored: int


def namespace_create(
    *, slug: str, name: str, booth: Booth | None = None, market: Market | None = None
) -> Namespace:
    """A new namespace, tied in the relation engine to its booth and market.

    Whoever may write the booth (its creator) or the market (its operators) may
    then write the namespace, and so read it; readers are granted separately.
    """
    with transaction.atomic():
        namespace = Namespace(slug=slug, name=name, booth=booth, market=market)
        namespace.full_clean()
        namespace.save()
        if booth is not None:
            rebac_tuple_write(
                object=namespace.rebac_object, relation="booth", user=f"booth:{booth.pk}"
            )
        if market is not None:
            rebac_tuple_write(
                object=namespace.rebac_object, relation="market", user=f"market:{market.pk}"
            )
    return namespace


def chunk_length_check(content_length: int | None) -> int:
    """The declared length of an upload, if the store will take that many bytes."""
    if content_length is None:
        raise ChunkError(
            ChunkErrorKind.LENGTH_REQUIRED,
            "A chunk upload must declare its size in Content-Length "
            "(chunked transfer encoding is not accepted).",
        )
    if content_length > settings.CHUNK_MAX_BYTES:
        raise ChunkError(
            ChunkErrorKind.TOO_LARGE,
            f"A chunk may hold at most {settings.CHUNK_MAX_BYTES} bytes; "
            f"Content-Length says {content_length}.",
            extra={"max_bytes": settings.CHUNK_MAX_BYTES},
        )
    return content_length


async def chunk_upload(
    *,
    user: AbstractBaseUser | AnonymousUser,
    chunk_hash: str,
    namespace_reference: str | None,
    content_length: int | None,
    body: AsyncIterator[bytes],
) -> ChunkUpload:
    """Store the chunk `chunk_hash` from `body` into a namespace `user` may write.

    Everything that can be refused on the request line and headers is refused
    before a byte of the body is read. The body is hashed while it is written
    to a temporary file; only a complete body with the right hash is flushed,
    renamed into place and linked to the namespace. On any failure the temporary
    file is removed and nothing is kept.
    """
    chunk_hash_validate(chunk_hash)
    namespace = await sync_to_async(namespace_for_writing)(user=user, reference=namespace_reference)
    expected = chunk_length_check(content_length)
    store = chunk_store()
    fd, temp = store.temp_create()
    # A chunk the store already has is still received and verified in full, but its
    # copy will be dropped: no point in starting to write it to disk.
    sink = UploadSink(fd, temp, write_to_disk=not store.exists(chunk_hash))
    try:
        await sink.receive(body, expected)
        actual = sink.hexdigest()
        if actual != chunk_hash:
            raise ChunkError(
                ChunkErrorKind.INVALID,
                f"The body's BLAKE3 hash is {actual}, not {chunk_hash}; nothing was kept.",
                extra={"hash": chunk_hash, "body_hash": actual},
            )
        created, linked = await sync_to_async(_chunk_commit)(
            store, sink, chunk_hash, expected, namespace
        )
    finally:
        await sink.discard()
    return ChunkUpload(chunk_hash, expected, namespace, created, linked)


def _chunk_commit(
    store: ChunkStore, sink: UploadSink, chunk_hash: str, size: int, namespace: Namespace
) -> tuple[bool, bool]:
    """Record the verified chunk and move its file into place, in one transaction.

    The file is flushed to disk first, outside the transaction, unless the store
    already holds the chunk: that copy is then dropped, never synced.
    """
    if not store.exists(chunk_hash):
        sink.flush()
    with transaction.atomic():
        _chunk_touch(chunk_hash, size)
        if sink.fd is not None and not store.exists(chunk_hash):
            sink.flush()  # collected since the check above: this copy takes its place
        created = store.place(sink.path, chunk_hash)
        sink.placed = True
        _, linked = ChunkNamespace.objects.get_or_create(chunk_id=chunk_hash, namespace=namespace)
    return created, linked


def _chunk_touch(chunk_hash: str, size: int) -> None:
    """Create or touch the chunk's row; its first statement is a write, which takes the lock."""
    now = timezone.now()
    if Chunk.objects.filter(pk=chunk_hash).update(touched_at=now):
        return
    try:
        with transaction.atomic():
            Chunk.objects.create(hash=chunk_hash, size=size, created_at=now, touched_at=now)
    except IntegrityError:
        # A concurrent upload of the same chunk created it first; this one waited for it.
        Chunk.objects.filter(pk=chunk_hash).update(touched_at=now)


def asset_create(**fields: Any) -> Asset:
    """A new asset of the booth: `asset_record` with the same keyword arguments, without
    saying whether it was made now."""
    asset, _ = asset_record(**fields)
    return asset


def asset_record(
    *,
    user: AbstractBaseUser | AnonymousUser,
    booth_id: int,
    namespace_reference: str | None,
    name: str,
    content_type: str,
    hashes: list[str],
    upload_key: str | None = None,
) -> tuple[Asset, bool]:
    """A new asset of the booth, made of `hashes` in order, all held by the namespace;
    (the asset, whether it was made now).

    Its type is read from its bytes (chunks/filetypes.py), whatever `content_type` says;
    a malformed GLB model is refused. With an `upload_key` that already recorded an asset
    of this booth (the same upload recorded again, say after a reload), that asset is
    answered and nothing is made; a ChunkError (conflict) if it has another namespace, name
    or chunks.
    """
    booth = booth_for_assets(booth_id)
    namespace = _asset_namespace(user, booth, namespace_reference)
    if upload_key is not None:
        recorded = _asset_of_upload(booth, namespace, upload_key, name, hashes)
        if recorded is not None:
            return recorded, False
    try:
        with transaction.atomic():
            asset = Asset.objects.create(
                booth=booth,
                namespace=namespace,
                name=name,
                content_type=content_type,
                upload_key=upload_key or "",
            )
            _asset_parts_replace(asset, hashes)
            _asset_type_set(asset)
            _asset_announce(booth, asset, "published")
    except IntegrityError:
        # The same upload, recorded by a concurrent request that committed first.
        if upload_key is None:
            raise
        recorded = _asset_of_upload(booth, namespace, upload_key, name, hashes)
        if recorded is None:
            raise
        return recorded, False
    return asset, True


def _asset_of_upload(
    booth: Booth, namespace: Namespace, upload_key: str, name: str, hashes: list[str]
) -> Asset | None:
    """The asset `upload_key` already recorded in the booth, if the same one is asked for."""
    asset = Asset.objects.filter(booth=booth, upload_key=upload_key).first()
    if asset is None:
        return None
    chunks = list(asset.parts.order_by("index").values_list("chunk_id", flat=True))
    if (asset.namespace_id, asset.name, chunks) != (namespace.pk, name, hashes):
        raise ChunkError(
            ChunkErrorKind.CONFLICT,
            f"This upload_key already recorded asset {asset.pk} ({asset.name!r}) with another "
            "namespace, name or chunks; choose a new key for a new upload.",
            extra={"asset": asset.pk},
        )
    return asset


def asset_update(
    *,
    user: AbstractBaseUser | AnonymousUser,
    booth_id: int,
    asset_id: int,
    name: str,
    content_type: str,
    hashes: list[str],
) -> Asset:
    """Replace an asset's name, type and chunks; the writer needs its namespace."""
    booth = booth_for_assets(booth_id)
    asset = Asset.objects.filter(booth=booth, pk=asset_id).select_related("namespace").first()
    if asset is None:
        raise ChunkError(
            ChunkErrorKind.FORBIDDEN, "You may not change this asset, or it does not exist."
        )
    namespace = _asset_namespace(user, booth, str(asset.namespace_id))
    with transaction.atomic():
        asset.name, asset.content_type, asset.namespace = name, content_type, namespace
        _asset_parts_replace(asset, hashes)
        _asset_type_set(asset)
        _asset_announce(booth, asset, "changed")
    return asset


def _asset_type_set(asset: Asset) -> None:
    """Type the asset by its bytes and, for an image, have its thumbnail made after commit."""
    parts = list(asset.parts.order_by("index").values_list("chunk_id", "offset", "size"))
    try:
        kind = asset_kind(asset.size, asset_bytes_reader(parts))
    except MalformedAsset as error:
        raise ChunkError(
            ChunkErrorKind.INVALID,
            f"{asset.name[:80]!r} was refused: {error}",
            extra={"reason": "malformed_model"},
        ) from error
    asset.content_type = kind.content_type
    asset.thumbnail = ""
    asset.thumbnail_state = "pending" if kind.is_image else "none"
    asset.save(update_fields=["content_type", "thumbnail", "thumbnail_state"])
    if kind.is_image:
        from chunks.tasks import asset_thumbnail_make  # the tasks module imports this one

        asset_id = asset.pk
        transaction.on_commit(lambda: asset_thumbnail_make.delay(asset_id))


def asset_bytes_reader(parts: list[tuple[str, int, int]]) -> ReadRange:
    """A reader of an asset's bytes across its chunk files: parts are (hash, offset, size)."""
    store = chunk_store()

    def read(start: int, length: int) -> bytes:
        end = start + length
        out = bytearray()
        for chunk_hash, offset, size in parts:
            if offset + size <= start or offset >= end:
                continue
            low, high = max(start, offset) - offset, min(end, offset + size) - offset
            fd = os.open(store.path_for(chunk_hash), os.O_RDONLY)
            try:
                out += os.pread(fd, high - low, low)
            finally:
                os.close(fd)
        return bytes(out)

    return read


def _asset_announce(booth: Booth, asset: Asset, change: str) -> None:
    """The booth's manifest changed: its visitors hear it after the commit."""
    event_publish_on_commit(
        booth.market_id,
        AssetChanged(
            zone=booth.zone_index, booth=booth.pk, asset=asset.pk, name=asset.name, change=change
        ),
    )


def _asset_namespace(
    user: AbstractBaseUser | AnonymousUser, booth: Booth, reference: str | None
) -> Namespace:
    """The booth's namespace an asset goes in: the one named, or the booth's only one."""
    if reference is None:
        namespaces = list(booth.chunk_namespaces.all()[:2])
        if len(namespaces) != 1:
            raise ChunkError(
                ChunkErrorKind.INVALID,
                f"Booth {booth.pk} has {len(namespaces) or 'no'} namespaces"
                f"{' or more' if len(namespaces) == 2 else ''}: name one in `namespace`.",
            )
        reference = str(namespaces[0].pk)
    namespace = namespace_for_writing(user=user, reference=reference)
    if namespace.booth_id != booth.pk:
        raise ChunkError(
            ChunkErrorKind.INVALID,
            f"Namespace {namespace.slug!r} does not belong to booth {booth.pk}.",
        )
    return namespace


def _asset_parts_replace(asset: Asset, hashes: list[str]) -> None:
    """Make `hashes` the asset's chunks, in order; every one must be in its namespace."""
    if not hashes:
        raise ChunkError(ChunkErrorKind.INVALID, "An asset needs at least one chunk.")
    for chunk_hash in hashes:
        chunk_hash_validate(chunk_hash)
    # Chunks held by the namespace are never collected, so nothing here races collection.
    sizes = dict(
        ChunkNamespace.objects.filter(namespace=asset.namespace, chunk_id__in=hashes).values_list(
            "chunk_id", "chunk__size"
        )
    )
    missing = list(dict.fromkeys(h for h in hashes if h not in sizes))
    if missing:
        raise ChunkError(
            ChunkErrorKind.INVALID,
            f"{len(missing)} of the asset's chunks are not in namespace "
            f"{asset.namespace.slug!r}: upload them first.",
            extra={"missing": missing},
        )
    AssetChunk.objects.filter(asset=asset).delete()
    offset = 0
    parts = []
    for index, chunk_hash in enumerate(hashes):
        size = sizes[chunk_hash]
        parts.append(
            AssetChunk(asset=asset, index=index, chunk_id=chunk_hash, offset=offset, size=size)
        )
        offset += size
    AssetChunk.objects.bulk_create(parts)
    asset.size = offset
    asset.updated_at = timezone.now()
    asset.save()


def chunk_collect_garbage(*, grace_seconds: float | None = None) -> GarbageReport:
    """Delete chunks that no namespace or asset holds and no upload touched lately.

    The grace period (CHUNK_GC_GRACE_SECONDS by default) keeps chunks an upload
    or an asset edit is about to link. Upload files left by crashed processes
    are removed after the same period, and files an interrupted collection had
    moved aside are put back if their chunk is still recorded.
    """
    grace = settings.CHUNK_GC_GRACE_SECONDS if grace_seconds is None else grace_seconds
    cutoff = timezone.now() - timedelta(seconds=grace)
    store = chunk_store()
    restored = _quarantine_recover(store)
    candidates = list(
        _unreferenced(Chunk.objects.filter(touched_at__lt=cutoff)).values_list("hash", flat=True)
    )
    deleted = sum(_chunk_collect(store, chunk_hash, cutoff) for chunk_hash in candidates)
    swept = store.temp_sweep(older_than_seconds=grace)
    return GarbageReport(
        chunks_deleted=deleted,
        candidates=len(candidates),
        temp_files_removed=swept,
        files_restored=restored,
    )


def _unreferenced(chunks: QuerySet[Chunk]) -> QuerySet[Chunk]:
    """`chunks` that no namespace and no asset holds."""
    links = ChunkNamespace.objects.filter(chunk=OuterRef("pk"))
    parts = AssetChunk.objects.filter(chunk=OuterRef("pk"))
    return chunks.filter(~Exists(links), ~Exists(parts))


def _chunk_collect(store: ChunkStore, chunk_hash: str, cutoff: datetime) -> bool:
    """Delete one chunk if it is still unreferenced and untouched; whether it was."""
    aside = None
    try:
        with transaction.atomic():
            # One conditional write claims the row: an upload that touched it meanwhile wins.
            claimed = _unreferenced(Chunk.objects.filter(pk=chunk_hash, touched_at__lt=cutoff))
            if not claimed.update(touched_at=F("touched_at")):
                return False
            aside = store.quarantine(chunk_hash)
            Chunk.objects.filter(pk=chunk_hash).delete()
    except DatabaseError:
        log.exception("chunk %s: garbage collection gave up; it is kept", chunk_hash)
        if aside is not None:
            store.restore(aside, chunk_hash)
        return False
    if aside is not None:
        aside.unlink(missing_ok=True)
    return True


def _quarantine_recover(store: ChunkStore) -> int:
    """Finish what an interrupted collection started; the number of files put back."""
    restored = 0
    for aside, chunk_hash in store.quarantined():
        if Chunk.objects.filter(pk=chunk_hash).exists():
            store.restore(aside, chunk_hash)
            restored += 1
        else:
            aside.unlink(missing_ok=True)
    return restored
