"""The official BLAKE3 test vectors, uploaded and fetched back through the chunk endpoint.

Each case is `input_len` bytes of the repeating pattern 0, 1, …, 250 and the
expected `hash` (an extended output: its first 64 hex digits are the default hash).
"""

import json
from pathlib import Path

import pytest

from tests.chunks.asgi_calls import asgi_call, basic_auth
from tests.chunks.conftest import PASSWORD
from tests.conftest import service_missing

VECTORS = Path(__file__).parents[2] / ".." / "shared" / "data" / "blake3_test_vectors.json"

pytestmark = pytest.mark.django_db(transaction=True)


def vector_input(length: int) -> bytes:
    return bytes(i % 251 for i in range(length))


@pytest.fixture(scope="module")
def cases():
    if not VECTORS.is_file():
        service_missing(
            f"the BLAKE3 test vectors are not at {VECTORS.resolve()}; they are the official "
            "test_vectors.json of the BLAKE3 repository"
        )
    return json.loads(VECTORS.read_text())["cases"]


async def test_every_official_vector_round_trips_under_its_hash(cases, writer, public_namespace):
    assert len(cases) >= 30
    auth = basic_auth(writer.username, PASSWORD)
    for case in cases:
        data = vector_input(case["input_len"])
        expected = case["hash"][:64]
        pieces = [data[i : i + 4096] for i in range(0, len(data), 4096)]

        put = await asgi_call(
            "PUT",
            f"/chunks/{expected}",
            query="namespace=looms-public",
            headers=[auth],
            pieces=pieces,
        )
        got = await asgi_call("GET", f"/chunks/{expected}", content_length=None)

        assert put.status == 201, (case["input_len"], put.body)
        assert put.json()["size"] == case["input_len"]
        assert got.status == 200 and got.body == data
        assert got.headers["etag"] == f'"{expected}"'


async def test_a_vector_under_a_neighbouring_hash_is_refused(cases, writer, public_namespace):
    case = next(c for c in cases if c["input_len"] == 1025)
    expected = case["hash"][:64]
    wrong = expected[:-1] + ("0" if expected[-1] != "0" else "1")

    answer = await asgi_call(
        "PUT",
        f"/chunks/{wrong}",
        query="namespace=looms-public",
        headers=[basic_auth(writer.username, PASSWORD)],
        pieces=[vector_input(1025)],
    )

    assert answer.status == 400
    assert answer.json()["body_hash"] == expected
