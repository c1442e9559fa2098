"""PUT /chunks/<hash>: what is kept, what is refused, and that refusals keep nothing.

Requests go straight to the ASGI application, so that bodies can be cut off,
longer than declared, or never read at all.
"""

import os
import tracemalloc

import pytest
from django.core.handlers import asgi as django_asgi

from chunks.models import Chunk, ChunkNamespace
from chunks.services import namespace_create
from market.rebac.services import rebac_tuple_write
from tests.chunks.asgi_calls import asgi_call, basic_auth
from tests.chunks.conftest import PASSWORD, chunk_hash, off_loop, stored_files

pytestmark = pytest.mark.django_db(transaction=True)

DATA = os.urandom(300_000)
HASH = chunk_hash(DATA)
MIB = 1 << 20


def pieces_of(data: bytes, size: int = 65_536) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


async def put(user, chunk, pieces, *, namespace="looms", headers=(), **options):
    auth = [basic_auth(user.username, PASSWORD)] if user is not None else []
    return await asgi_call(
        "PUT",
        f"/chunks/{chunk}",
        query=f"namespace={namespace}" if namespace is not None else "",
        headers=[*auth, *headers],
        pieces=pieces,
        **options,
    )


async def assert_nothing_kept(store_dir):
    assert stored_files(store_dir) == []
    assert not await off_loop(lambda: Chunk.objects.exists() or ChunkNamespace.objects.exists())


async def test_new_chunk_is_stored_under_its_hash_and_answers_201(store_dir, writer, namespace):
    answer = await put(writer, HASH, pieces_of(DATA))

    assert answer.status == 201, answer.body
    body = answer.json()
    assert body["hash"] == HASH and body["size"] == len(DATA)
    assert body["created"] is True and body["linked"] is True
    assert body["namespace"] == {"id": namespace.pk, "slug": "looms"}
    assert body["url"] == f"http://127.0.0.1/chunks/{HASH}"
    path = store_dir / HASH[:2] / HASH[2:4] / HASH
    assert path.read_bytes() == DATA
    assert stored_files(store_dir) == [path.relative_to(store_dir)]  # tmp/ is empty
    chunk = await off_loop(lambda: Chunk.objects.get(pk=HASH))
    assert chunk.size == len(DATA)
    linked = ChunkNamespace.objects.filter(chunk=chunk, namespace=namespace)
    assert await off_loop(linked.exists)


async def test_chunk_already_stored_answers_200_and_keeps_one_file(store_dir, writer, namespace):
    first = await put(writer, HASH, pieces_of(DATA))
    again = await put(writer, HASH, pieces_of(DATA))

    assert (first.status, again.status) == (201, 200)
    assert again.json()["created"] is False and again.json()["linked"] is False
    assert len(stored_files(store_dir)) == 1


async def test_namespace_may_be_named_by_id(store_dir, writer, namespace):
    answer = await put(writer, HASH, pieces_of(DATA), namespace=str(namespace.pk))

    assert answer.status == 201


async def test_body_with_another_hash_is_refused_and_nothing_is_kept(store_dir, writer, namespace):
    other = chunk_hash(b"something else")

    answer = await put(writer, other, pieces_of(DATA))

    assert answer.status == 400
    body = answer.json()
    assert body["error"] == "invalid"
    assert body["body_hash"] == HASH and body["hash"] == other
    assert "nothing was kept" in body["detail"]
    await assert_nothing_kept(store_dir)


MALFORMED = {
    "upper case": HASH.upper(),
    "63 characters": HASH[:63],
    "65 characters": HASH + "0",
    "not hex": "g" * 64,
    "trailing newline": HASH + "\n",
    "leading space": " " + HASH[1:],
}
PATH_TRICKS = {
    "dot dot": "../../etc/passwd",
    "dot dot then a hash": f"../{HASH}",
    "encoded dot dot, decoded once": "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "store layout": f"{HASH[:2]}/{HASH[2:4]}/{HASH}",
    "absolute": "/etc/passwd",
    "tmp folder": "tmp",
    "nul byte": HASH[:63] + "\x00",
}


@pytest.mark.parametrize(
    "bad", [*MALFORMED.values(), *PATH_TRICKS.values()], ids=[*MALFORMED, *PATH_TRICKS]
)
async def test_malformed_hash_or_path_trick_is_refused_before_anything_is_written(
    store_dir, writer, namespace, bad
):
    answer = await put(writer, bad, pieces_of(DATA))

    assert answer.status == 400, answer.body
    body = answer.json()
    assert body["error"] == "invalid"
    assert "64 characters from 0-9 and a-f" in body["detail"]
    assert answer.unread_events > 0  # refused on the URL: the body was never read
    await assert_nothing_kept(store_dir)
    assert not (store_dir.parent / "etc").exists()


@pytest.mark.parametrize(
    "bad", [*MALFORMED.values(), *PATH_TRICKS.values()], ids=[*MALFORMED, *PATH_TRICKS]
)
async def test_malformed_hash_or_path_trick_is_refused_on_get_too(store_dir, bad):
    answer = await asgi_call("GET", f"/chunks/{bad}")

    assert answer.status == 400
    assert answer.json()["error"] == "invalid"


async def test_missing_content_length_answers_411(store_dir, writer, namespace):
    answer = await put(writer, HASH, pieces_of(DATA), content_length=None)

    assert answer.status == 411
    assert "Content-Length" in answer.json()["detail"]
    await assert_nothing_kept(store_dir)


@pytest.mark.parametrize("declared", [None, len(DATA)], ids=["no length", "with a length"])
async def test_chunked_transfer_encoding_answers_411(store_dir, writer, namespace, declared):
    answer = await put(
        writer,
        HASH,
        pieces_of(DATA),
        headers=[(b"transfer-encoding", b"chunked")],
        content_length=declared,
    )

    assert answer.status == 411
    await assert_nothing_kept(store_dir)


async def test_content_length_that_is_not_a_number_answers_400(store_dir, writer, namespace):
    answer = await put(
        writer, HASH, pieces_of(DATA), headers=[(b"content-length", b"lots")], content_length=None
    )

    assert answer.status == 400
    assert "not a number" in answer.json()["detail"]


async def test_body_longer_than_its_content_length_is_refused(store_dir, writer, namespace):
    answer = await put(writer, HASH, pieces_of(DATA), content_length=len(DATA) - 1)

    assert answer.status == 400
    assert "longer than its Content-Length" in answer.json()["detail"]
    await assert_nothing_kept(store_dir)


async def test_body_shorter_than_its_content_length_is_refused(store_dir, writer, namespace):
    answer = await put(writer, HASH, pieces_of(DATA), content_length=len(DATA) + 1)

    assert answer.status == 400
    assert f"ended after {len(DATA)} of the {len(DATA) + 1} bytes" in answer.json()["detail"]
    await assert_nothing_kept(store_dir)


async def test_upload_cut_off_mid_body_keeps_nothing(store_dir, writer, namespace):
    half = pieces_of(DATA)[:2]

    answer = await put(writer, HASH, half, content_length=len(DATA), cut_off=True)

    assert answer.status == 400
    assert "cut off after 131072 of 300000 bytes" in answer.json()["detail"]
    await assert_nothing_kept(store_dir)


async def test_oversized_upload_is_refused_on_its_header_without_reading_the_body(
    settings, store_dir, writer, namespace
):
    settings.CHUNK_MAX_BYTES = len(DATA) - 1

    answer = await put(writer, HASH, pieces_of(DATA))

    assert answer.status == 413
    assert answer.json()["max_bytes"] == len(DATA) - 1
    assert answer.unread_events == len(pieces_of(DATA)) + 1
    await assert_nothing_kept(store_dir)


async def test_upload_of_exactly_the_maximum_size_is_taken(settings, store_dir, writer, namespace):
    settings.CHUNK_MAX_BYTES = len(DATA)

    answer = await put(writer, HASH, pieces_of(DATA))

    assert answer.status == 201


async def test_unknown_namespace_answers_400_with_its_name(store_dir, writer, namespace):
    answer = await put(writer, HASH, pieces_of(DATA), namespace="no-such-place")

    assert answer.status == 400
    assert (
        answer.json()["detail"]
        == "There is no namespace 'no-such-place' (give its id or its slug)."
    )
    await assert_nothing_kept(store_dir)


async def test_upload_without_a_namespace_answers_400(store_dir, writer, namespace):
    answer = await put(writer, HASH, pieces_of(DATA), namespace=None)

    assert answer.status == 400
    assert "?namespace=" in answer.json()["detail"]


async def test_writer_of_another_namespace_is_refused_with_403(store_dir, stranger, namespace):
    answer = await put(stranger, HASH, pieces_of(DATA))

    assert answer.status == 403
    assert answer.json() == {
        "error": "forbidden",
        "detail": "You may not write to namespace 'looms'.",
    }
    assert answer.unread_events > 0
    await assert_nothing_kept(store_dir)


async def test_anonymous_upload_is_refused_with_403_under_session_first_authentication(
    store_dir, namespace
):
    answer = await put(None, HASH, pieces_of(DATA))

    assert answer.status == 403
    assert answer.json()["error"] == "not_authenticated"
    assert "www-authenticate" not in answer.headers
    await assert_nothing_kept(store_dir)


async def test_anonymous_upload_gets_401_and_a_challenge_when_basic_authentication_comes_first(
    settings, store_dir, namespace
):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_AUTHENTICATION_CLASSES": [
            "rest_framework.authentication.BasicAuthentication",
            "rest_framework.authentication.SessionAuthentication",
        ],
    }

    answer = await put(None, HASH, pieces_of(DATA))

    assert answer.status == 401
    assert answer.headers["www-authenticate"] == 'Basic realm="api"'


async def test_wrong_password_is_refused(store_dir, writer, namespace):
    answer = await asgi_call(
        "PUT",
        f"/chunks/{HASH}",
        query="namespace=looms",
        headers=[basic_auth(writer.username, "wrong")],
        pieces=pieces_of(DATA),
    )

    assert answer.status in (401, 403)
    assert answer.json()["error"] == "authentication_failed"
    await assert_nothing_kept(store_dir)


async def test_existing_chunk_is_linked_to_another_namespace_only_with_its_bytes(
    store_dir, writer, stranger, namespace
):
    await put(writer, HASH, pieces_of(DATA))
    elsewhere = await _namespace_for(stranger, "elsewhere")

    guessed = await put(stranger, HASH, [b"I only know the hash"], namespace="elsewhere")
    proved = await put(stranger, HASH, pieces_of(DATA), namespace="elsewhere")

    assert guessed.status == 400
    assert proved.status == 200
    assert proved.json()["linked"] is True and proved.json()["created"] is False
    linked = ChunkNamespace.objects.filter(chunk_id=HASH).values_list("namespace_id", flat=True)
    assert sorted(await off_loop(list, linked)) == sorted([namespace.pk, elsewhere.pk])


async def _namespace_for(user, slug):
    def create():
        created = namespace_create(slug=slug, name=slug)
        rebac_tuple_write(object=created.rebac_object, relation="writer", user=f"user:{user.pk}")
        return created

    return await off_loop(create)


async def test_empty_chunk_is_a_chunk(store_dir, writer, namespace):
    empty = chunk_hash(b"")

    answer = await put(writer, empty, [])

    assert answer.status == 201
    assert (store_dir / empty[:2] / empty[2:4] / empty).read_bytes() == b""


async def test_upload_is_streamed_without_django_spooling_the_body(
    monkeypatch, store_dir, writer, namespace
):
    def no_spooling(*args, **kwargs):
        raise AssertionError("Django spooled the upload body")

    monkeypatch.setattr(django_asgi.tempfile, "SpooledTemporaryFile", no_spooling)

    answer = await put(writer, HASH, pieces_of(DATA))

    assert answer.status == 201


async def test_large_upload_never_holds_its_body_in_memory(settings, store_dir, writer, namespace):
    piece = os.urandom(MIB)
    total = 48 * MIB
    expected = chunk_hash(piece * 48)
    tracemalloc.start()
    try:
        answer = await put(
            writer, expected, (piece for _ in range(48)), content_length=total, timeout=120
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert answer.status == 201, answer.body
    assert peak < 8 * MIB, (
        f"peak traced memory {peak / MIB:.1f} MiB for a {total // MIB} MiB upload"
    )
    assert (store_dir / expected[:2] / expected[2:4] / expected).stat().st_size == total
