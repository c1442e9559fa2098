"""Garbage collection: only chunks nothing holds, and only once their grace period is over."""

import os
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from chunks import services
from chunks.models import Asset, AssetChunk, Chunk
from chunks.storage import chunk_store
from chunks.tasks import chunk_collect_garbage
from tests.chunks.conftest import chunk_stored, stored_files

pytestmark = pytest.mark.django_db

HOUR = 3600


def aged(digest, seconds):
    """Pretend the chunk was last uploaded `seconds` ago."""
    Chunk.objects.filter(pk=digest).update(touched_at=timezone.now() - timedelta(seconds=seconds))
    return digest


def is_stored(digest):
    return Chunk.objects.filter(pk=digest).exists() and chunk_store().exists(digest)


def test_old_unreferenced_chunk_is_deleted_with_its_file(settings, store_dir):
    settings.CHUNK_GC_GRACE_SECONDS = HOUR
    old = aged(chunk_stored(b"abandoned"), HOUR + 60)

    report = chunk_collect_garbage.delay().get()

    assert report["chunks_deleted"] == 1
    assert not Chunk.objects.filter(pk=old).exists()
    assert stored_files(store_dir) == []


def test_young_unreferenced_chunk_is_kept_for_an_upload_in_flight(settings):
    settings.CHUNK_GC_GRACE_SECONDS = HOUR
    young = aged(chunk_stored(b"just uploaded"), HOUR - 60)

    report = chunk_collect_garbage.delay().get()

    assert report["chunks_deleted"] == 0
    assert is_stored(young)


def test_old_chunks_held_by_a_namespace_or_an_asset_are_kept(settings, booth, namespace):
    settings.CHUNK_GC_GRACE_SECONDS = HOUR
    in_namespace = aged(chunk_stored(b"linked", namespace), 10 * HOUR)
    in_asset = aged(chunk_stored(b"in an asset only"), 10 * HOUR)
    asset = Asset.objects.create(booth=booth, namespace=namespace, name="a", size=16)
    AssetChunk.objects.create(asset=asset, index=0, chunk_id=in_asset, offset=0, size=16)

    report = chunk_collect_garbage.delay().get()

    assert report == {**report, "chunks_deleted": 0, "candidates": 0}
    assert is_stored(in_namespace) and is_stored(in_asset)


def test_collection_takes_only_what_qualifies_among_many(settings, namespace):
    settings.CHUNK_GC_GRACE_SECONDS = HOUR
    doomed = [aged(chunk_stored(f"old {i}".encode()), 2 * HOUR) for i in range(5)]
    kept = [
        aged(chunk_stored(b"young"), 10),
        aged(chunk_stored(b"held", namespace), 2 * HOUR),
    ]

    report = chunk_collect_garbage.delay().get()

    assert report["chunks_deleted"] == 5
    assert not any(chunk_store().exists(d) for d in doomed)
    assert all(is_stored(k) for k in kept)


def test_chunk_touched_after_it_was_listed_is_not_collected(settings, monkeypatch):
    """An upload that touches the row between listing and deletion wins."""
    settings.CHUNK_GC_GRACE_SECONDS = HOUR
    digest = aged(chunk_stored(b"re-uploaded just now"), 2 * HOUR)
    real_collect = services._chunk_collect

    def upload_arrives_first(store, chunk_hash, cutoff):
        Chunk.objects.filter(pk=chunk_hash).update(touched_at=timezone.now())
        return real_collect(store, chunk_hash, cutoff)

    monkeypatch.setattr(services, "_chunk_collect", upload_arrives_first)

    report = chunk_collect_garbage.delay().get()

    assert (report["candidates"], report["chunks_deleted"]) == (1, 0)
    assert is_stored(digest)


def test_upload_files_left_by_a_crash_are_removed_after_the_grace_period(settings, store_dir):
    settings.CHUNK_GC_GRACE_SECONDS = HOUR
    store = chunk_store()
    old_fd, old_temp = store.temp_create()
    new_fd, new_temp = store.temp_create()
    os.close(old_fd)
    os.close(new_fd)
    long_ago = time.time() - 2 * HOUR
    os.utime(old_temp, (long_ago, long_ago))

    report = chunk_collect_garbage.delay().get()

    assert report["temp_files_removed"] == 1
    assert not old_temp.exists() and new_temp.exists()


def test_file_moved_aside_by_an_interrupted_collection_is_put_back(settings, namespace):
    settings.CHUNK_GC_GRACE_SECONDS = HOUR
    digest = chunk_stored(b"collection crashed here", namespace)
    store = chunk_store()
    store.quarantine(digest)
    assert not store.exists(digest)

    report = chunk_collect_garbage.delay().get()

    assert report["files_restored"] == 1
    assert is_stored(digest)
