"""GETs of readable chunks by anonymous visitors and asset-token visitors, answered in front of
Django, and when they are not."""

import threading

import pytest
from django.db import OperationalError, connection

from chunks import fastpath, views
from chunks.access import namespace_reader_grant
from chunks.models import Chunk
from chunks.permissions import WORLD, readable_chunks
from chunks.storage import chunk_store
from market.asset_tokens import asset_token_issue, visitor_subject
from market.booth_visitors import booth_visitor_set
from market.rebac.models import RelationTuple
from market.rebac.services import rebac_tuple_delete
from tests.chunks.asgi_calls import asgi_call, basic_auth
from tests.chunks.conftest import PASSWORD, chunk_stored, off_loop
from zones.logthrottle import LogThrottle

pytestmark = pytest.mark.django_db(transaction=True)

DATA = bytes(range(200)) * 50
VISITORS_DATA = bytes(reversed(DATA))
SAME_IN_BOTH = ("etag", "cache-control", "accept-ranges", "content-type", "content-length")
ENTITY = 1099511627777
# A session cookie naming no session: Django answers, as for an anonymous visitor.
NO_SESSION = (b"cookie", b"sessionid=none")


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
def now(monkeypatch, settings):
    """The memory's clock, in seconds, moved by the test; the memory lasts 2 s."""
    settings.CHUNK_READ_CACHE_SECONDS = 2
    clock = [1000.0]
    monkeypatch.setattr(readable_chunks, "clock", lambda: clock[0])
    return clock


@pytest.fixture
def public_chunk(public_namespace):
    return chunk_stored(DATA, public_namespace)


@pytest.fixture
def visitors_chunk(booth, namespace):
    """A chunk of a namespace that the visitors of its booth may read, and the visitor's
    Authorization header, standing in that booth."""
    namespace_reader_grant(namespace=namespace, spec={"kind": "visitors"})
    booth_visitor_set(market_id=booth.market_id, entity=ENTITY, zone=booth.zone_index)
    token = asset_token_issue(booth.market_id, ENTITY)
    return chunk_stored(VISITORS_DATA, namespace), (b"authorization", f"Bearer {token}".encode())


async def get(chunk, headers=(), method="GET"):
    return await asgi_call(method, f"/chunks/{chunk}", headers=headers, content_length=None)


def core(answer):
    return {name: answer.headers.get(name) for name in SAME_IN_BOTH}


def world_revoked_elsewhere(namespace):
    """Delete the namespace's grant to the world as another process would: no signal
    reaches this one."""
    table = connection.ops.quote_name(RelationTuple._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"DELETE FROM {table} WHERE object_type = 'namespace' AND object_id = %s "
            "AND relation = 'reader' AND subject_type = 'user' AND subject_id = '*'",
            [str(namespace.pk)],
        )


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
async def test_anonymous_get_skips_django_and_answers_as_django_does(
    django_answers, public_chunk, headers
):
    through_django = await get(public_chunk, [*headers, NO_SESSION])
    fast = await get(public_chunk, headers)

    assert django_answers == [public_chunk]
    assert (fast.status, fast.body) == (through_django.status, through_django.body)
    assert core(fast) == core(through_django)
    assert fast.headers.get("content-range") == through_django.headers.get("content-range")
    assert fast.headers["x-content-type-options"] == "nosniff"


async def test_head_is_answered_too(django_answers, public_chunk):
    head = await get(public_chunk, method="HEAD")

    assert django_answers == []
    assert head.status == 200 and head.body == b""
    assert head.headers["content-length"] == str(len(DATA))


async def test_a_visitor_token_reads_what_the_visitor_may_without_django(
    django_answers, booth, visitors_chunk
):
    digest, authorization = visitors_chunk

    first = await get(digest, [authorization])
    second = await get(digest, [authorization, (b"range", b"bytes=10-19")])

    assert django_answers == []
    assert (first.status, first.body) == (200, VISITORS_DATA)
    assert first.headers["cache-control"].startswith("private,")
    assert (second.status, second.body) == (206, VISITORS_DATA[10:20])
    other_market = visitor_subject(booth.market_id + 1, ENTITY)
    assert readable_chunks.lookup(other_market, digest) is None
    assert len(readable_chunks) == 1


@pytest.mark.parametrize("entity", [ENTITY + 1, None], ids=["not-in-the-booth", "anonymous"])
async def test_whom_the_relation_engine_refuses_gets_django_s_refusal(
    django_answers, booth, visitors_chunk, entity
):
    digest, _ = visitors_chunk
    headers = []
    if entity is not None:
        token = asset_token_issue(booth.market_id, entity)
        headers = [(b"authorization", f"Bearer {token}".encode())]

    answer = await get(digest, headers)

    assert answer.status == 403
    assert answer.json()["error"] == "forbidden"
    assert django_answers == [digest]
    assert len(readable_chunks) == 0


@pytest.mark.parametrize(
    "authorization",
    [b"Bearer 1.2.3.abc", b"Bearer", b"Bearer a b", b"Basic Zm9vOmJhcg==", b"bearer \xff"],
    ids=["malformed", "empty", "two-words", "basic", "not-ascii"],
)
async def test_a_bad_or_other_authorization_goes_to_django(
    django_answers, public_chunk, authorization
):
    answer = await get(public_chunk, [(b"authorization", authorization)])

    assert answer.status in (401, 403)
    assert django_answers == [public_chunk]


async def test_an_expired_token_is_refused_with_its_reason(django_answers, booth, visitors_chunk):
    digest, _ = visitors_chunk
    expired = asset_token_issue(booth.market_id, ENTITY, now_s=1_000_000_000)

    answer = await get(digest, [(b"authorization", f"Bearer {expired}".encode())])

    assert answer.status == 403
    assert "expired" in answer.json()["detail"]
    assert django_answers == [digest]


async def test_requests_with_a_session_or_a_password_always_go_to_django(
    django_answers, writer, public_chunk
):
    signed_in = [
        [(b"cookie", b"sessionid=abc; csrftoken=x")],
        [basic_auth(writer.username, PASSWORD)],
    ]

    for headers in signed_in:
        answer = await get(public_chunk, headers)
        assert answer.status == 200

    assert len(django_answers) == 2


async def test_other_cookies_do_not_matter(django_answers, public_chunk):
    answer = await get(public_chunk, [(b"cookie", b"csrftoken=abc")])

    assert answer.status == 200
    assert django_answers == []


async def test_a_revoke_in_this_process_stops_the_fast_path_at_once(
    django_answers, public_namespace, public_chunk
):
    assert (await get(public_chunk)).status == 200
    assert readable_chunks.size_of(public_chunk) == len(DATA)
    await off_loop(
        lambda: rebac_tuple_delete(
            object=public_namespace.rebac_object, relation="reader", user="user:*"
        )
    )

    after = await get(public_chunk)

    assert after.status == 403  # deleting the tuple cleared the memory at its commit
    assert django_answers == [public_chunk]


async def test_a_revoke_elsewhere_stops_the_fast_path_within_the_window(
    now, django_answers, public_namespace, public_chunk
):
    assert (await get(public_chunk)).status == 200
    await off_loop(world_revoked_elsewhere, public_namespace)

    now[0] += 1.9
    within = await get(public_chunk)
    now[0] += 0.1
    after = await get(public_chunk)

    assert within.status == 200  # remembered, and no signal told this process
    assert after.status == 403
    assert django_answers == [public_chunk]


async def test_a_visitor_leaving_the_booth_is_refused_within_the_window(
    now, django_answers, booth, visitors_chunk
):
    digest, authorization = visitors_chunk
    public = await off_loop(chunk_stored, b"public" * 30)
    readable_chunks.remember(WORLD, public, 180, public=True)
    assert (await get(digest, [authorization])).status == 200

    await off_loop(lambda: booth_visitor_set(market_id=booth.market_id, entity=ENTITY, zone=None))
    here = await get(digest, [authorization])
    world_kept = readable_chunks.size_of(public)
    # As another process sees it: remembered until the window ends.
    readable_chunks.remember(
        visitor_subject(booth.market_id, ENTITY), digest, len(VISITORS_DATA), public=False
    )
    now[0] += 1.9
    elsewhere_within = await get(digest, [authorization])
    now[0] += 0.1
    elsewhere_after = await get(digest, [authorization])

    assert here.status == 403  # this process forgot the visitor's chunks at the commit
    assert (elsewhere_within.status, elsewhere_after.status) == (200, 403)
    assert world_kept == 180  # the world's memory was left alone


async def test_collected_chunk_falls_through_to_the_refusal(django_answers, public_chunk):
    await get(public_chunk)
    await off_loop(lambda: Chunk.objects.filter(pk=public_chunk).delete())
    chunk_store().path_for(public_chunk).unlink()

    answer = await get(public_chunk)

    assert answer.status == 403
    assert readable_chunks.size_of(public_chunk) is None
    assert django_answers == [public_chunk]


async def test_unsatisfiable_range_is_left_to_django(django_answers, public_chunk):
    answer = await get(public_chunk, [(b"range", b"bytes=999999-")])

    assert answer.status == 416
    assert answer.json()["error"] == "range_not_satisfiable"
    assert django_answers == [public_chunk]


async def test_zero_seconds_asks_the_relation_engine_every_time(
    settings, django_answers, public_namespace, public_chunk
):
    settings.CHUNK_READ_CACHE_SECONDS = 0
    assert (await get(public_chunk)).status == 200
    assert len(readable_chunks) == 0
    await off_loop(world_revoked_elsewhere, public_namespace)

    assert (await get(public_chunk)).status == 403


async def test_the_front_s_question_is_answered_afresh_each_time(
    django_answers, public_namespace, public_chunk, visitors_chunk
):
    digest, authorization = visitors_chunk

    async def decision(chunk, headers=()):
        return await asgi_call("GET", f"/chunk-reads/{chunk}", headers=headers, content_length=None)

    public = await decision(public_chunk)
    visitor = await decision(digest, [authorization])
    anonymous = await decision(digest)
    session = await decision(public_chunk, [(b"cookie", b"sessionid=abc")])
    malformed = await decision("../" + public_chunk[3:])
    await off_loop(world_revoked_elsewhere, public_namespace)
    revoked = await decision(public_chunk)

    assert (public.status, public.body) == (200, b"")
    assert public.headers["x-chunk-cache-control"] == "public, max-age=31536000, immutable"
    assert visitor.headers["x-chunk-cache-control"] == "private, max-age=31536000, immutable"
    assert [anonymous.status, session.status, revoked.status] == [403, 403, 403]
    assert malformed.status == 404  # not a chunk's question: Django's URLs answer
    assert django_answers == []
    assert len(readable_chunks) == 0  # the front keeps its own memory


def decision_fails(monkeypatch):
    """Make every fast-path decision raise, as a dropped database connection would."""

    def broken(**_):
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(fastpath, "chunk_read_decision", broken)
    monkeypatch.setattr(fastpath, "log_throttle", LogThrottle(fastpath.logger))


async def test_a_failing_decision_leaves_the_request_to_django(
    monkeypatch, caplog, django_answers, visitors_chunk
):
    digest, authorization = visitors_chunk
    decision_fails(monkeypatch)

    first = await get(digest, [authorization])
    second = await get(digest, [authorization, (b"range", b"bytes=10-19")])

    assert (first.status, first.body) == (200, VISITORS_DATA)
    assert (second.status, second.body) == (206, VISITORS_DATA[10:20])
    assert django_answers == [digest, digest]
    failures = [r for r in caplog.records if "chunk read decision failed" in r.getMessage()]
    assert len(failures) == 1  # the repeat is held back
    assert "OperationalError" in failures[0].getMessage()


async def test_a_failing_decision_answers_the_front_503(monkeypatch, django_answers, public_chunk):
    decision_fails(monkeypatch)

    answer = await asgi_call("GET", f"/chunk-reads/{public_chunk}", content_length=None)

    assert answer.status == 503
    assert b"unavailable" in answer.body
    assert answer.headers["cache-control"] == "no-store"
    assert django_answers == []


async def test_stale_connections_are_closed_around_each_decision(
    monkeypatch, django_answers, public_chunk
):
    """As Django does around a request: a connection the database dropped, or one past
    CONN_MAX_AGE, is closed before the decision's queries and after them."""
    steps = []
    real_decision = fastpath.chunk_read_decision

    def decision(**kwargs):
        steps.append(("decide", threading.get_ident()))
        return real_decision(**kwargs)

    monkeypatch.setattr(fastpath, "chunk_read_decision", decision)
    monkeypatch.setattr(
        fastpath, "close_old_connections", lambda: steps.append(("close", threading.get_ident()))
    )

    assert (await get(public_chunk)).status == 200
    assert [step for step, _ in steps] == ["close", "decide", "close"]
    assert len({thread for _, thread in steps}) == 1
    assert django_answers == []


@pytest.mark.parametrize("forgetting", ["clear", "forget_principal"])
async def test_a_yes_checked_while_a_revoke_commits_is_not_remembered(
    monkeypatch, now, django_answers, visitors_chunk, forgetting
):
    """The revoke's forgetting runs after the check read the tuples and before its yes is
    remembered: the yes may be stale, so the next request asks again."""
    digest, authorization = visitors_chunk
    real_decision = fastpath.chunk_read_decision
    asked = []

    def decision_then_revoke(**kwargs):
        readable = real_decision(**kwargs)
        asked.append(kwargs["principal"])
        if len(asked) == 1:
            if forgetting == "clear":
                readable_chunks.clear()
            else:
                readable_chunks.forget_principal(kwargs["principal"])
        return readable

    monkeypatch.setattr(fastpath, "chunk_read_decision", decision_then_revoke)

    first = await get(digest, [authorization])
    assert first.status == 200  # answered by what the check saw
    assert len(readable_chunks) == 0
    second = await get(digest, [authorization])

    assert second.status == 200
    assert len(asked) == 2  # asked afresh
    assert len(readable_chunks) == 1  # a check with no revoke meanwhile is remembered
    assert django_answers == []


async def test_a_remembered_yes_lasts_from_when_its_check_began(
    monkeypatch, now, django_answers, booth, visitors_chunk
):
    digest, authorization = visitors_chunk
    real_decision = fastpath.chunk_read_decision
    asked = []

    def slow_decision(**kwargs):
        asked.append(now[0])
        now[0] += 1.5  # the check waited for a worker thread, then ran
        return real_decision(**kwargs)

    monkeypatch.setattr(fastpath, "chunk_read_decision", slow_decision)

    assert (await get(digest, [authorization])).status == 200
    principal = visitor_subject(booth.market_id, ENTITY)
    now[0] = asked[0] + 1.99
    assert readable_chunks.lookup(principal, digest) is not None
    now[0] = asked[0] + 2
    assert readable_chunks.lookup(principal, digest) is None
