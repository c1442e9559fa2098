"""Events applied to a stale snapshot give what a fresh snapshot gives, for every event type.

Each check takes a snapshot from the source of truth, makes the product change things the
way it does (services, workers, the supervisor), applies the events those changes
published to the old snapshot, and compares with a snapshot taken afresh.
"""

import pytest
from asgiref.sync import sync_to_async

from chunks.access import market_grants_state, namespace_reader_grant, namespace_reader_revoke
from chunks.models import Chunk, ChunkNamespace
from chunks.selectors import market_assets_state
from chunks.services import asset_create, asset_update, namespace_create
from chunks.storage import chunk_store
from market.events.envelope import envelope_parse
from market.events.hub import EventHub
from market.events.outbox import outbox_relay_once
from market.events.projections import (
    assets_apply,
    grants_apply,
    ops_apply,
    ops_empty,
    visitor_apply,
)
from market.events.publish import event_publish
from market.events.streams import event_log
from market.events.types import (
    EVENT_TYPES,
    BoothEntered,
    ContributorBanned,
    MarketSummaryReported,
    NpcDecisionsReported,
    ZoneChanged,
    ZoneHealthChanged,
    ZonesRepartitioned,
)
from market.models import Booth, Market
from market.rebac.services import rebac_tuple_write

pytestmark = pytest.mark.django_db(transaction=True)

COVERED = set()


async def events_after(market_id: int, offset: int) -> list:
    batch = await event_log(market_id).read(offset, 1000)
    events = [envelope_parse(e.data).event for e in batch.entries]
    COVERED.update(type(e).TYPE for e in events)
    return events


async def head(market_id: int) -> int:
    return (await event_log(market_id).head()).last


def apply_all(apply, state, events):
    for event in events:
        state = apply(state, event)
    return state


@pytest.fixture(autouse=True)
def store_dir(settings, tmp_path):
    """Asset writes read their chunks' bytes (to type them): an empty store per test."""
    settings.CHUNK_STORE_DIR = tmp_path / "store"


def market_with_a_writer(django_user_model):
    market = Market.objects.create(name="Weavers' Row", slug="weavers-row")
    booth = Booth.objects.create(market=market, name="Looms", zone_index=2)
    namespace = namespace_create(slug="looms", name="Looms", booth=booth, market=market)
    user = django_user_model.objects.create_user("olga")
    rebac_tuple_write(object=f"market:{market.pk}", relation="operator", user=f"user:{user.pk}")
    for i, size in enumerate((10, 20)):
        chunk = Chunk.objects.create(hash=f"{i:064x}", size=size)
        ChunkNamespace.objects.create(chunk=chunk, namespace=namespace)
        path = chunk_store().path_for(chunk.hash)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(bytes(size))
    return market, booth, namespace, user


async def test_asset_events_bring_a_stale_manifest_state_up_to_date(django_user_model):
    market, booth, _, user = await sync_to_async(market_with_a_writer)(django_user_model)
    stale = await sync_to_async(market_assets_state)(market_id=market.pk)
    start = await head(market.pk)
    created = await sync_to_async(asset_create)(
        user=user,
        booth_id=booth.pk,
        namespace_reference=None,
        name="loom.glb",
        content_type="model/gltf-binary",
        hashes=[f"{0:064x}"],
    )
    await sync_to_async(asset_update)(
        user=user,
        booth_id=booth.pk,
        asset_id=created.pk,
        name="loom-v2.glb",
        content_type="model/gltf-binary",
        hashes=[f"{1:064x}"],
    )
    await outbox_relay_once()
    events = await events_after(market.pk, start)
    assert [e.change for e in events] == ["published", "changed"]
    fresh = await sync_to_async(market_assets_state)(market_id=market.pk)
    assert (
        apply_all(assets_apply, stale, events) == fresh == {"2": {str(created.pk): "loom-v2.glb"}}
    )


async def test_grant_events_bring_a_stale_grant_state_up_to_date(django_user_model):
    market, _, namespace, _ = await sync_to_async(market_with_a_writer)(django_user_model)
    stale = await sync_to_async(market_grants_state)(market_id=market.pk)
    start = await head(market.pk)
    await sync_to_async(namespace_reader_grant)(namespace=namespace, spec={"kind": "everyone"})
    await sync_to_async(namespace_reader_grant)(namespace=namespace, spec={"kind": "visitors"})
    await sync_to_async(namespace_reader_revoke)(namespace=namespace, spec={"kind": "everyone"})
    await outbox_relay_once()
    events = await events_after(market.pk, start)
    assert [e.change for e in events] == ["granted", "granted", "revoked"]
    fresh = await sync_to_async(market_grants_state)(market_id=market.pk)
    assert apply_all(grants_apply, stale, events) == fresh
    assert fresh["tuples"] == [
        f"namespace:{namespace.pk}#reader@booth:{namespace.booth_id}#visitor"
    ]


async def test_ops_events_bring_a_stale_ops_state_up_to_date():
    early = EventHub(event_log(9))
    await early.start()
    stale = early.ops.snapshot()
    zone = {"zone": 1, "entities": 4, "health": "ok"}
    await event_publish(9, MarketSummaryReported(tick=3, hlc=1, overruns=0, zones=[zone]))
    await event_publish(9, ZoneHealthChanged(zones=[1, 2], health="quarantined", reason="x"))
    # the contributors' figures and bans leave the zones' state as it is
    figures = NpcDecisionsReported(
        [{"name": "c1"}], 5, 0, 1, {"occupied": 1}, 10.0, 2.5, 1.0, 0.0, 1
    )
    await event_publish(9, figures)
    await event_publish(9, ContributorBanned(contributor="c2", reason="x", seconds=60.0))
    split = ZonesRepartitioned(
        kind="split",
        phase="planned",
        version=1,
        source=0,
        target=2,
        lo=64,
        hi=128,
        booth=0,
        starts=[0, 64, 128],
        owners=[0, 2, 1],
        took_s=None,
        at_ms=1_800_000_000_000,
    )
    await event_publish(9, split)
    await event_publish(9, MarketSummaryReported(tick=4, hlc=2, overruns=0, zones=[zone]))
    events = await events_after(9, 0)
    late = EventHub(event_log(9))  # a process that starts now builds its state from the stream
    await late.start()
    fresh = late.ops.snapshot()
    assert apply_all(ops_apply, stale, events) == fresh
    assert fresh["zones"]["2"]["health"] == "quarantined" and fresh["zones"]["1"]["health"] == "ok"
    assert fresh["npcs"]["decided"] == 5 and fresh["npcs"]["decisions_per_min"] == 10.0
    assert fresh["bans"] == [{"contributor": "c2", "reason": "x", "seconds": 60.0}]
    assert fresh["repartitions"] == [split.payload()]
    assert stale == ops_empty()
    await early.stop()
    await late.stop()


async def test_visitor_events_bring_a_stale_welcome_up_to_date():
    # the gateway's view of the visitor is the fresh snapshot: zone 2, booth 3
    stale = {"zone": 0, "booth": 0}
    await event_publish(9, BoothEntered(entity=7, zone=1, name="b", colour="#000000"))
    await event_publish(9, ZoneChanged(entity=7, from_zone=0, to_zone=1, tick_ms=50))
    await event_publish(9, BoothEntered(entity=7, zone=3, name="c", colour="#000000"))
    await event_publish(9, ZoneChanged(entity=7, from_zone=1, to_zone=2, tick_ms=90))
    events = await events_after(9, 0)
    assert apply_all(visitor_apply, stale, events) == {"zone": 2, "booth": 3}


def test_every_event_type_is_checked_above():
    """Runs last in this module: each event type went through one of the checks."""
    assert set(EVENT_TYPES) == COVERED
