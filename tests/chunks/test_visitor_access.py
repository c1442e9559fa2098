"""Visitors on the chunk API with their asset tokens, as visitors of the booth they stand in."""

import asyncio

import pytest
from django.db import transaction
from rest_framework.test import APIClient

from chunks.access import namespace_reader_grant
from chunks.permissions import WORLD, readable_chunks
from market.asset_tokens import ASSET_TOKEN_TTL_S, asset_token_issue
from market.booth_visitors import BoothPresence, booth_visitor_set, booth_visitors
from market.models import Booth
from market.rebac.services import rebac_tuple_delete

from .conftest import chunk_stored, off_loop

MARKET_ENTITY = 1099511627777


@pytest.fixture
def next_booth(booth):
    return Booth.objects.create(market=booth.market, name="Dyes", zone_index=1)


@pytest.fixture
def visitors_read(namespace):
    """The namespace is readable by the visitors of its booth, and holds one chunk."""
    namespace_reader_grant(namespace=namespace, spec={"kind": "visitors"})
    return chunk_stored(b"warp and weft" * 300, namespace)


def as_visitor(market_id: int, entity: int = MARKET_ENTITY, token: str | None = None):
    client = APIClient()
    token = token or asset_token_issue(market_id, entity)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def reads(client, booth, digest) -> tuple[int, int, int]:
    """Statuses of the booth's manifest, its zone manifest and the chunk."""
    return (
        client.get(f"/shards/{booth.pk}/assets").status_code,
        client.get(f"/markets/{booth.market_id}/zones/{booth.zone_index}/assets").status_code,
        client.get(f"/chunks/{digest}").status_code,
    )


@pytest.mark.django_db
def test_a_visitor_standing_in_the_booth_reads_what_its_visitors_may_read(
    booth, next_booth, visitors_read
):
    visitor = as_visitor(booth.market_id)
    assert reads(visitor, booth, visitors_read) == (403, 403, 403)

    booth_visitor_set(market_id=booth.market_id, entity=MARKET_ENTITY, zone=0)

    assert reads(visitor, booth, visitors_read) == (200, 200, 200)
    manifest = visitor.get(f"/markets/{booth.market_id}/zones/0/assets").json()
    assert manifest["booth"] == booth.pk
    assert booth_visitors(booth_id=booth.pk) == [f"visitor:{booth.market_id}-{MARKET_ENTITY}"]


@pytest.mark.django_db
def test_walking_into_another_booth_or_leaving_ends_the_visit(booth, next_booth, visitors_read):
    visitor = as_visitor(booth.market_id)
    booth_visitor_set(market_id=booth.market_id, entity=MARKET_ENTITY, zone=0)

    assert booth_visitor_set(market_id=booth.market_id, entity=MARKET_ENTITY, zone=1) == (
        next_booth.pk
    )
    assert reads(visitor, booth, visitors_read) == (403, 403, 403)
    assert booth_visitors(booth_id=next_booth.pk) == [f"visitor:{booth.market_id}-{MARKET_ENTITY}"]

    booth_visitor_set(market_id=booth.market_id, entity=MARKET_ENTITY, zone=0)
    assert reads(visitor, booth, visitors_read) == (200, 200, 200)
    booth_visitor_set(market_id=booth.market_id, entity=MARKET_ENTITY, zone=None)
    assert reads(visitor, booth, visitors_read) == (403, 403, 403)
    assert booth_visitors(booth_id=booth.pk) == booth_visitors(booth_id=next_booth.pk) == []


@pytest.mark.django_db
def test_only_the_visitor_standing_there_and_only_in_its_market(booth, visitors_read):
    booth_visitor_set(market_id=booth.market_id, entity=MARKET_ENTITY, zone=0)

    other_visitor = as_visitor(booth.market_id, MARKET_ENTITY + 1)
    same_entity_other_market = as_visitor(booth.market_id + 1, MARKET_ENTITY)

    assert reads(other_visitor, booth, visitors_read) == (403, 403, 403)
    assert reads(same_entity_other_market, booth, visitors_read) == (403, 403, 403)


@pytest.mark.django_db
@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer not-a-token",
        "Bearer",
        "Bearer one two",
        "Bearer {forged}",
        "Bearer {expired}",
    ],
    ids=["malformed", "no-token", "two-tokens", "forged", "expired"],
)
def test_a_bad_token_is_refused_with_its_reason_and_no_grant(booth, visitors_read, authorization):
    booth_visitor_set(market_id=booth.market_id, entity=MARKET_ENTITY, zone=0)
    good = asset_token_issue(booth.market_id, MARKET_ENTITY)
    forged = good[:-1] + ("0" if good[-1] != "0" else "1")
    expired = asset_token_issue(booth.market_id, MARKET_ENTITY, now_s=1_000_000_000)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=authorization.format(forged=forged, expired=expired))

    for url in (f"/shards/{booth.pk}/assets", f"/chunks/{visitors_read}"):
        answer = client.get(url)
        assert answer.status_code == 403
        assert answer.json()["error"] == "authentication_failed"
    assert client.get(f"/chunks/{visitors_read}").json()["detail"] != ""
    if "expired" in authorization:
        assert (
            f"live {ASSET_TOKEN_TTL_S} s" in client.get(f"/chunks/{visitors_read}").json()["detail"]
        )


@pytest.mark.django_db
def test_a_visitor_may_write_nothing(booth, namespace, visitors_read):
    booth_visitor_set(market_id=booth.market_id, entity=MARKET_ENTITY, zone=0)
    visitor = as_visitor(booth.market_id)

    answer = visitor.post(
        "/chunks/missing", {"namespace": namespace.pk, "hashes": [visitors_read]}, format="json"
    )
    assert answer.status_code == 403
    grants = visitor.get(f"/namespaces/{namespace.pk}/readers")
    assert grants.status_code == 403


@pytest.mark.django_db
def test_a_zone_with_no_booth_is_refused_like_a_forbidden_one(booth, visitors_read):
    visitor = as_visitor(booth.market_id)

    answer = visitor.get(f"/markets/{booth.market_id}/zones/9/assets")

    assert answer.status_code == 403 and answer.json()["error"] == "forbidden"


@pytest.mark.django_db(transaction=True)
async def test_presence_writes_in_order_and_leaving_removes_the_visitor(
    booth, next_booth, visitors_read
):
    presence = BoothPresence(booth.market_id, MARKET_ENTITY)
    for zone in (0, 1, 0, 1, 0):
        presence.enter(zone)
    await presence.settled()
    assert await off_loop(lambda: booth_visitors(booth_id=booth.pk)) == [
        f"visitor:{booth.market_id}-{MARKET_ENTITY}"
    ]
    assert await off_loop(lambda: booth_visitors(booth_id=next_booth.pk)) == []

    presence.enter(1)
    await presence.leave()  # waits for the enter before it

    assert await off_loop(lambda: booth_visitors(booth_id=booth.pk)) == []
    assert await off_loop(lambda: booth_visitors(booth_id=next_booth.pk)) == []
    await asyncio.sleep(0)


@pytest.mark.django_db(transaction=True)
def test_the_public_memory_is_cleared_after_a_revoke_commits_not_before(settings, public_namespace):
    settings.CHUNK_READ_CACHE_SECONDS = 10
    digest = chunk_stored(b"public cloth" * 40, public_namespace)
    with transaction.atomic():
        rebac_tuple_delete(object=public_namespace.rebac_object, relation="reader", user="user:*")
        # A GET running meanwhile still sees the grant, and remembers the chunk public.
        readable_chunks.remember(WORLD, digest, 480, public=True)
        assert readable_chunks.size_of(digest) == 480

    assert readable_chunks.size_of(digest) is None


@pytest.mark.django_db(transaction=True)
def test_a_visitor_leaving_a_booth_keeps_the_public_memory(settings, booth, public_namespace):
    settings.CHUNK_READ_CACHE_SECONDS = 10
    digest = chunk_stored(b"public cloth" * 40, public_namespace)
    booth_visitor_set(market_id=booth.market_id, entity=MARKET_ENTITY, zone=0)
    readable_chunks.remember(WORLD, digest, 480, public=True)

    booth_visitor_set(market_id=booth.market_id, entity=MARKET_ENTITY, zone=None)

    assert readable_chunks.size_of(digest) == 480


@pytest.mark.django_db(transaction=True)
async def test_presence_changes_of_many_sockets_go_in_one_transaction(
    booth, next_booth, monkeypatch
):
    """A crowd crossing together costs the database one write, the newest place winning."""
    from market import booth_visitors as module

    batches: list[dict] = []
    real = module.booth_visitors_set

    def counted(places):
        batches.append(dict(places))
        return real(places)

    monkeypatch.setattr(module, "booth_visitors_set", counted)
    crowd = [BoothPresence(booth.market_id, MARKET_ENTITY + i) for i in range(40)]
    for presence in crowd:
        presence.enter(0)
    crowd[0].enter(1)  # the first one walks on before anything is written
    await asyncio.gather(*(presence.settled() for presence in crowd))

    assert len(batches) == 1 and len(batches[0]) == 40
    here = await off_loop(lambda: booth_visitors(booth_id=booth.pk))
    there = await off_loop(lambda: booth_visitors(booth_id=next_booth.pk))
    assert len(here) == 39 and there == [f"visitor:{booth.market_id}-{MARKET_ENTITY}"]
    await asyncio.gather(*(presence.leave() for presence in crowd))
    assert len(batches) == 2
    assert await off_loop(lambda: booth_visitors(booth_id=booth.pk)) == []


@pytest.mark.parametrize("bounded", [True, False])
def test_visitors_walking_keep_the_tuples_change_log_bounded(
    booth, next_booth, monkeypatch, bounded
):
    """Nobody reads (no index replays and prunes), yet the log stays within its bound;
    the control, a writer that never looks, lets it grow with every crossing."""
    from market import booth_visitors as module
    from market.rebac import live
    from market.rebac.models import RelationTupleChange

    monkeypatch.setattr(live, "KEEP_CHANGES", 50)
    monkeypatch.setattr(module, "LOG_BOUND_EVERY", 10 if bounded else 10**9)
    for crossing in range(200):
        booth_visitor_set(market_id=booth.market_id, entity=MARKET_ENTITY, zone=crossing % 2)
    kept = RelationTupleChange.objects.count()
    if bounded:
        assert kept <= 50 + 12
        assert booth_visitors(booth_id=next_booth.pk) == [
            f"visitor:{booth.market_id}-{MARKET_ENTITY}"
        ]
    else:
        assert kept == 1 + 2 * 199  # a write, then a deletion and a write per crossing
