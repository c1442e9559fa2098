"""Fixtures of the chunk store tests: a store in a temporary folder, people and namespaces.

Permissions are real relation tuples, written through market.rebac.services.
"""

import asyncio

import blake3
import pytest

from chunks.models import Chunk, ChunkNamespace
from chunks.permissions import readable_chunks
from chunks.services import namespace_create
from chunks.storage import chunk_store
from market.models import Booth, Market
from market.rebac.services import rebac_tuple_write

PASSWORD = "correct horse"


def chunk_hash(data: bytes) -> str:
    return blake3.blake3(data).hexdigest()


@pytest.fixture(autouse=True)
def store_dir(settings, tmp_path):
    """Each test gets an empty store."""
    settings.CHUNK_STORE_DIR = tmp_path / "store"
    return settings.CHUNK_STORE_DIR


@pytest.fixture(autouse=True)
def nothing_known_readable():
    """Chunks found readable in one test must not be served in the next."""
    readable_chunks.clear()
    yield
    readable_chunks.clear()


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    """Basic authentication checks the password on every request; keep that cheap here."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def booth(db):
    market = Market.objects.create(name="Weavers' Row", slug="weavers-row")
    return Booth.objects.create(market=market, name="Looms", zone_index=0)


@pytest.fixture
def writer(django_user_model):
    return django_user_model.objects.create_user("weaver", password=PASSWORD)


@pytest.fixture
def stranger(django_user_model):
    return django_user_model.objects.create_user("stranger", password=PASSWORD)


@pytest.fixture
def namespace(booth, writer):
    """The booth's namespace: `writer` may write it, nobody else may read it."""
    created = namespace_create(slug="looms", name="Looms", booth=booth)
    rebac_tuple_write(object=created.rebac_object, relation="writer", user=f"user:{writer.pk}")
    return created


@pytest.fixture
def public_namespace(booth, writer):
    """A second namespace of the booth that the whole world may read."""
    created = namespace_create(slug="looms-public", name="Looms (public)", booth=booth)
    rebac_tuple_write(object=created.rebac_object, relation="writer", user=f"user:{writer.pk}")
    rebac_tuple_write(object=created.rebac_object, relation="reader", user="user:*")
    return created


def stored_files(store_dir):
    """Every file in the store, temporary ones included."""
    return sorted(p.relative_to(store_dir) for p in store_dir.rglob("*") if p.is_file())


def chunk_stored(data: bytes, *namespaces) -> str:
    """Put `data` in the store and in `namespaces` directly, as a finished upload leaves it."""
    digest = chunk_hash(data)
    path = chunk_store().path_for(digest)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    Chunk.objects.get_or_create(hash=digest, defaults={"size": len(data)})
    for namespace in namespaces:
        ChunkNamespace.objects.get_or_create(chunk_id=digest, namespace=namespace)
    return digest


async def off_loop(function, *args):
    """Run ORM code from an async test, in a thread that ends with the test's event loop.

    Not sync_to_async: its one long-lived worker thread would keep this test's
    database connection open (an in-memory SQLite connection never really closes)
    into later tests that are not allowed to use the database.
    """
    return await asyncio.to_thread(function, *args)
