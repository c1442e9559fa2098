"""GET and HEAD /chunks/<hash>: caching headers, ranges, 304, and no existence oracle."""

import os

import pytest

from chunks.views import INLINE_BYTES
from tests.chunks.asgi_calls import asgi_call, basic_auth
from tests.chunks.conftest import PASSWORD, chunk_hash, chunk_stored, off_loop

pytestmark = pytest.mark.django_db(transaction=True)

DATA = bytes(range(256)) * 40  # 10,240 bytes
SIZE = len(DATA)
BIG = os.urandom(INLINE_BYTES * 2 + 12_345)  # streamed in blocks, not read in one go
NOWHERE = chunk_hash(b"never uploaded")


@pytest.fixture
def public_chunk(public_namespace):
    return chunk_stored(DATA, public_namespace)


@pytest.fixture
def private_chunk(namespace):
    return chunk_stored(DATA + b"private", namespace)


async def get(chunk, *, user=None, method="GET", headers=()):
    auth = [basic_auth(user.username, PASSWORD)] if user is not None else []
    return await asgi_call(
        method, f"/chunks/{chunk}", headers=[*auth, *headers], content_length=None
    )


async def test_public_chunk_is_served_whole_with_immutable_public_caching(public_chunk):
    answer = await get(public_chunk)

    assert answer.status == 200
    assert answer.body == DATA
    assert answer.headers["etag"] == f'"{public_chunk}"'
    assert answer.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert answer.headers["accept-ranges"] == "bytes"
    assert answer.headers["content-length"] == str(SIZE)
    assert answer.headers["content-type"] == "application/octet-stream"


async def test_private_chunk_is_served_to_its_reader_with_private_caching(writer, private_chunk):
    answer = await get(private_chunk, user=writer)

    assert answer.status == 200
    assert answer.body == DATA + b"private"
    assert answer.headers["cache-control"] == "private, max-age=31536000, immutable"


async def test_chunk_in_a_private_and_a_public_namespace_is_public_to_everyone(
    writer, namespace, public_namespace
):
    both = await off_loop(chunk_stored, b"shared", namespace, public_namespace)

    for user in (None, writer):
        answer = await get(both, user=user)
        assert answer.headers["cache-control"].startswith("public, ")


async def test_head_sends_the_headers_of_a_get_without_the_body(public_chunk):
    answer = await get(public_chunk, method="HEAD")

    assert answer.status == 200
    assert answer.body == b""
    assert answer.headers["content-length"] == str(SIZE)
    assert answer.headers["etag"] == f'"{public_chunk}"'
    assert answer.headers["cache-control"] == "public, max-age=31536000, immutable"


@pytest.mark.parametrize(
    ("header", "start", "end"),
    [
        ("bytes=0-99", 0, 99),
        ("bytes=100-199", 100, 199),
        ("bytes=10000-", 10_000, SIZE - 1),  # open-ended
        ("bytes=-240", SIZE - 240, SIZE - 1),  # suffix
        ("bytes=-999999", 0, SIZE - 1),  # suffix longer than the chunk: all of it
        ("bytes=10200-999999", 10_200, SIZE - 1),  # end past the chunk: clipped
        ("bytes=5-5", 5, 5),
        (" bytes = 7 - 8 ", 7, 8),
    ],
)
async def test_single_range_answers_206_with_content_range(public_chunk, header, start, end):
    answer = await get(public_chunk, headers=[(b"range", header.encode())])

    assert answer.status == 206
    assert answer.body == DATA[start : end + 1]
    assert answer.headers["content-range"] == f"bytes {start}-{end}/{SIZE}"
    assert answer.headers["content-length"] == str(end - start + 1)
    assert answer.headers["etag"] == f'"{public_chunk}"'


@pytest.mark.parametrize("header", ["bytes=10240-", "bytes=20000-20100", "bytes=-0"])
async def test_unsatisfiable_range_answers_416_with_the_size(public_chunk, header):
    answer = await get(public_chunk, headers=[(b"range", header.encode())])

    assert answer.status == 416
    assert answer.headers["content-range"] == f"bytes */{SIZE}"
    assert answer.json()["error"] == "range_not_satisfiable"


@pytest.mark.parametrize(
    "header",
    [
        "bytes=0-9,20-29",  # several ranges: served whole (allowed by RFC 9110)
        "bytes=9-0",  # last before first: invalid, so ignored
        "items=0-9",  # another unit
        "bytes=-",
        "bytes=abc",
    ],
)
async def test_ranges_that_are_not_one_valid_byte_range_are_ignored(public_chunk, header):
    answer = await get(public_chunk, headers=[(b"range", header.encode())])

    assert answer.status == 200
    assert answer.body == DATA


async def test_head_ignores_range(public_chunk):
    answer = await get(public_chunk, method="HEAD", headers=[(b"range", b"bytes=0-9")])

    assert answer.status == 200
    assert answer.headers["content-length"] == str(SIZE)


async def test_any_range_of_an_empty_chunk_is_unsatisfiable(public_namespace):
    empty = await off_loop(chunk_stored, b"", public_namespace)

    whole = await get(empty)
    ranged = await get(empty, headers=[(b"range", b"bytes=0-")])

    assert (whole.status, whole.body) == (200, b"")
    assert ranged.status == 416
    assert ranged.headers["content-range"] == "bytes */0"


async def test_ranges_of_a_large_chunk_are_streamed_exactly(public_namespace):
    big = await off_loop(chunk_stored, BIG, public_namespace)

    whole = await get(big)
    tail = await get(big, headers=[(b"range", f"bytes={INLINE_BYTES - 5}-".encode())])

    assert whole.status == 200 and whole.body == BIG
    assert whole.headers["content-length"] == str(len(BIG))
    assert tail.status == 206 and tail.body == BIG[INLINE_BYTES - 5 :]


@pytest.mark.parametrize(
    "tags",
    ['"{h}"', 'W/"{h}"', '"0000", "{h}"', "*"],
    ids=["exact", "weak", "in a list", "any"],
)
async def test_if_none_match_naming_the_chunk_answers_304_without_a_body(public_chunk, tags):
    header = tags.format(h=public_chunk).encode()

    answer = await get(public_chunk, headers=[(b"if-none-match", header)])

    assert answer.status == 304
    assert answer.body == b""
    assert answer.headers["etag"] == f'"{public_chunk}"'
    assert answer.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert "content-length" not in answer.headers


async def test_if_none_match_with_another_tag_sends_the_chunk(public_chunk):
    answer = await get(public_chunk, headers=[(b"if-none-match", b'"something-else"')])

    assert answer.status == 200
    assert answer.body == DATA


@pytest.mark.parametrize(
    ("if_range", "status"),
    [
        ('"{h}"', 206),
        ('W/"{h}"', 200),  # weak tags never match If-Range
        ('"another"', 200),
        ("Sat, 21 Nov 2026 06:00:00 GMT", 200),  # chunks carry no Last-Modified
    ],
)
async def test_if_range_keeps_the_range_only_for_the_chunks_own_tag(public_chunk, if_range, status):
    answer = await get(
        public_chunk,
        headers=[(b"range", b"bytes=0-9"), (b"if-range", if_range.format(h=public_chunk).encode())],
    )

    assert answer.status == status
    assert answer.body == (DATA[:10] if status == 206 else DATA)


async def test_missing_and_forbidden_chunks_get_the_same_403(stranger, private_chunk):
    for user in (None, stranger):
        for method in ("GET", "HEAD"):
            forbidden = await get(private_chunk, user=user, method=method)
            missing = await get(NOWHERE, user=user, method=method)

            assert forbidden.status == missing.status == 403
            assert forbidden.raw_headers == missing.raw_headers
            assert forbidden.body == missing.body
            if method == "GET":
                assert forbidden.json() == {
                    "error": "forbidden",
                    "detail": "You may not read this chunk.",
                }


async def test_forbidden_chunk_reveals_nothing_to_conditional_or_range_requests(
    stranger, private_chunk
):
    for headers in (
        [(b"if-none-match", f'"{private_chunk}"'.encode())],
        [(b"range", b"bytes=0-0")],
    ):
        forbidden = await get(private_chunk, user=stranger, headers=headers)
        missing = await get(NOWHERE, user=stranger, headers=headers)

        assert forbidden.status == missing.status == 403
        assert forbidden.raw_headers == missing.raw_headers


async def test_stored_chunk_in_no_namespace_is_forbidden_even_to_writers(writer, namespace):
    orphan = await off_loop(chunk_stored, b"in no namespace")

    answer = await get(orphan, user=writer)

    assert answer.status == 403


async def test_put_and_get_are_the_only_methods(public_chunk):
    answer = await asgi_call("DELETE", f"/chunks/{public_chunk}")

    assert answer.status == 405
    assert answer.headers["allow"] == "GET, HEAD, PUT"
