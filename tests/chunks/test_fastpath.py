"""Anonymous GETs of world-readable chunks answered in front of Django, and when they are not."""

import pytest

from chunks import views
from chunks.models import Chunk
from chunks.permissions import public_chunks
from chunks.storage import chunk_store
from market.rebac.services import rebac_tuple_delete
from tests.chunks.asgi_calls import asgi_call, basic_auth
from tests.chunks.conftest import PASSWORD, chunk_stored, off_loop
from tests.subprocesses import REPO_ROOT

pytestmark = pytest.mark.django_db(transaction=True)

DATA = bytes(range(200)) * 50
SAME_IN_BOTH = ("etag", "cache-control", "accept-ranges", "content-type", "content-length")


@pytest.fixture
def django_answers(monkeypatch):
    """How many chunk requests reached the Django view."""
    calls = []
    real = views.chunk_fetch_prepare

    def counted(request, chunk_hash):
        calls.append(chunk_hash)
        return real(request, chunk_hash)

    monkeypatch.setattr(views, "chunk_fetch_prepare", counted)
    return calls


@pytest.fixture
def public_chunk(public_namespace):
    return chunk_stored(DATA, public_namespace)


async def get(chunk, headers=(), method="GET"):
    return await asgi_call(method, f"/chunks/{chunk}", headers=headers, content_length=None)


def core(answer):
    return {name: answer.headers.get(name) for name in SAME_IN_BOTH}


@pytest.mark.parametrize(
    "headers",
    [
        [],
        [(b"range", b"bytes=100-199")],
        [(b"range", b"bytes=-7")],
        [(b"if-none-match", b"*")],
        [(b"range", b"bytes=0-9"), (b"if-range", b'"stale"')],
    ],
    ids=["whole", "range", "suffix", "304", "if-range"],
)
async def test_second_anonymous_get_skips_django_and_answers_the_same(
    django_answers, public_chunk, headers
):
    first = await get(public_chunk, headers)
    second = await get(public_chunk, headers)

    assert django_answers == [public_chunk]
    assert (second.status, second.body) == (first.status, first.body)
    assert core(second) == core(first)
    assert second.headers.get("content-range") == first.headers.get("content-range")
    assert second.headers["x-content-type-options"] == "nosniff"


async def test_head_is_answered_too(django_answers, public_chunk):
    await get(public_chunk)

    head = await get(public_chunk, method="HEAD")

    assert django_answers == [public_chunk]
    assert head.status == 200 and head.body == b""
    assert head.headers["content-length"] == str(len(DATA))


async def test_requests_with_credentials_always_go_to_django(django_answers, writer, public_chunk):
    await get(public_chunk)
    signed_in = [
        [(b"cookie", b"sessionid=abc; csrftoken=x")],
        [basic_auth(writer.username, PASSWORD)],
    ]

    for headers in signed_in:
        answer = await get(public_chunk, headers)
        assert answer.status == 200

    assert len(django_answers) == 3


async def test_other_cookies_do_not_matter(django_answers, public_chunk):
    await get(public_chunk)

    answer = await get(public_chunk, [(b"cookie", b"csrftoken=abc")])

    assert answer.status == 200
    assert django_answers == [public_chunk]


async def test_private_chunks_are_never_remembered(django_answers, writer, namespace):
    private = await off_loop(chunk_stored, b"private bytes", namespace)
    auth = [basic_auth(writer.username, PASSWORD)]

    await get(private, auth)
    await get(private, auth)
    anonymous = await get(private)

    assert len(django_answers) == 3
    assert anonymous.status == 403


async def test_revoked_grant_stops_the_fast_path_at_once(
    settings, django_answers, public_namespace, public_chunk
):
    settings.CHUNK_PUBLIC_CACHE_SECONDS = 10
    await get(public_chunk)
    await get(public_chunk)
    assert len(django_answers) == 1  # the second answer came from the fast path
    await off_loop(
        lambda: rebac_tuple_delete(
            object=public_namespace.rebac_object, relation="reader", user="user:*"
        )
    )

    after = await get(public_chunk)

    assert after.status == 403  # deleting the tuple cleared the memory of public chunks
    assert len(django_answers) == 2


async def test_a_remembered_public_chunk_is_asked_about_again_after_the_window(
    monkeypatch, settings, django_answers, public_chunk
):
    settings.CHUNK_PUBLIC_CACHE_SECONDS = 10
    now = [1000.0]
    monkeypatch.setattr("chunks.permissions.time.monotonic", lambda: now[0])
    await get(public_chunk)
    now[0] += 10
    await get(public_chunk)
    assert len(django_answers) == 2


def test_the_memory_is_off_when_several_web_processes_may_run():
    from tests.subprocesses import embedded_environment, run_python

    probe = "import django; django.setup(); from django.conf import settings; print(settings.CHUNK_PUBLIC_CACHE_SECONDS)"
    env = embedded_environment(
        REPO_ROOT / "var",
        REDIS_URL="redis://127.0.0.1:6379/15",
        DJANGO_SETTINGS_MODULE="fabric_site.settings",
    )
    assert run_python(probe, env=env).stdout.strip() == "0.0"


async def test_collected_chunk_falls_through_to_the_refusal(django_answers, public_chunk):
    await get(public_chunk)
    await off_loop(lambda: Chunk.objects.filter(pk=public_chunk).delete())
    chunk_store().path_for(public_chunk).unlink()

    answer = await get(public_chunk)

    assert answer.status == 403
    assert public_chunks.size_of(public_chunk) is None
    assert len(django_answers) == 2


async def test_unsatisfiable_range_is_left_to_django(django_answers, public_chunk):
    await get(public_chunk)

    answer = await get(public_chunk, [(b"range", b"bytes=999999-")])

    assert answer.status == 416
    assert answer.json()["error"] == "range_not_satisfiable"
    assert len(django_answers) == 2


async def test_zero_seconds_turns_the_fast_path_off(settings, django_answers, public_chunk):
    settings.CHUNK_PUBLIC_CACHE_SECONDS = 0

    await get(public_chunk)
    await get(public_chunk)

    assert len(django_answers) == 2
