"""Booth layouts: typed uploads, thumbnails, placements with a version check, their events."""

import io

import numpy as np
import pytest
from PIL import Image

from chunks.layouts import market_columns
from chunks.models import Asset, Chunk, ChunkNamespace
from chunks.storage import chunk_store
from market.events.envelope import envelope_parse
from market.events.types import AssetChanged
from market.models import Booth, OutboxEvent
from market.roles import booth_creator_set
from tests.chunks.conftest import chunk_stored
from tests.chunks.glb import glb_box, glb_cut_short, png_image

pytestmark = pytest.mark.django_db


@pytest.fixture
def booths(booth):
    """The fixture's booth (zone 0) and two neighbours: three booths share the floor."""
    others = [
        Booth.objects.create(market=booth.market, name=name, zone_index=zone)
        for zone, name in ((1, "Dyes"), (2, "Spindles"))
    ]
    return [booth, *others]


@pytest.fixture
def creator(booths, writer):
    booth_creator_set(booth=booths[0], user=writer)
    return writer


@pytest.fixture
def as_creator(client, creator):
    client.force_login(creator)
    return client


def column_centre(zone: int, booths: int = 3) -> tuple[float, float]:
    """The centre of one floor column of `zone`, in metres."""
    grid = market_columns(booths)
    i, k = np.argwhere(grid == zone)[0]
    width = 128.0 / grid.shape[0]
    return (float(i) + 0.5) * width, (float(k) + 0.5) * width


def upload(client, booth, name, data, content_type="application/octet-stream"):
    """Store `data` as one chunk of the booth's namespace and make it an asset."""
    namespace = booth.chunk_namespaces.get()
    digest = chunk_stored(data, namespace)
    return client.post(
        f"/shards/{booth.pk}/assets",
        {"name": name, "content_type": content_type, "chunks": [digest]},
        content_type="application/json",
    )


def publish(client, booth, version, placements):
    return client.put(
        f"/shards/{booth.pk}/layout",
        {"version": version, "placements": placements},
        content_type="application/json",
    )


def placed(asset_id, x, z, **more):
    return {"asset": asset_id, "position": [x, 0.0, z], **more}


def test_type_is_read_from_the_bytes_not_the_name(as_creator, booths):
    model = upload(as_creator, booths[0], "banner.png", glb_box(), "image/png")
    picture = upload(as_creator, booths[0], "statue.glb", png_image(), "model/gltf-binary")
    other = upload(as_creator, booths[0], "notes.glb", b"just some notes", "model/gltf-binary")

    assert model.status_code == picture.status_code == other.status_code == 201
    assert model.json()["content_type"] == "model/gltf-binary"
    assert picture.json()["content_type"] == "image/png"
    assert other.json()["content_type"] == "application/octet-stream"


def test_malformed_glb_is_refused_with_a_clear_message(as_creator, booths):
    answer = upload(as_creator, booths[0], "statue.glb", glb_cut_short())

    assert answer.status_code == 400
    assert answer.json()["reason"] == "malformed_model"
    assert "'statue.glb' was refused: This GLB model says it is" in answer.json()["detail"]
    assert not Asset.objects.exists()


def test_an_image_gets_a_thumbnail_its_readers_may_fetch(
    as_creator, booths, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        created = upload(as_creator, booths[0], "banner.png", png_image(size=(800, 400)))
    manifest = as_creator.get(f"/shards/{booths[0].pk}/assets").json()

    asset = manifest["assets"][0]
    assert created.json()["thumbnail_state"] == "pending"
    assert asset["thumbnail_state"] == "ready"
    thumbnail = as_creator.get(f"/chunks/{asset['thumbnail']['hash']}")
    assert thumbnail.status_code == 200
    with Image.open(io.BytesIO(thumbnail.content)) as image:
        assert image.size == (256, 128)


def test_an_image_that_does_not_decode_has_its_thumbnail_failed(
    as_creator, booths, django_capture_on_commit_callbacks
):
    broken = png_image()[:40]
    with django_capture_on_commit_callbacks(execute=True):
        upload(as_creator, booths[0], "banner.png", broken)

    assert Asset.objects.get().thumbnail_state == "failed"


def test_creator_publishes_placements_into_the_manifest(as_creator, booths):
    asset_id = upload(as_creator, booths[0], "statue.glb", glb_box()).json()["id"]
    x, z = column_centre(0)

    answer = publish(as_creator, booths[0], 0, [placed(asset_id, x, z, yaw=1.5, scale=2.0)])
    manifest = as_creator.get(f"/shards/{booths[0].pk}/assets").json()

    assert answer.status_code == 200, answer.json()
    assert answer.json() == {
        "booth": booths[0].pk,
        "version": 1,
        "placements": [{"asset": asset_id, "position": [x, 0.0, z], "yaw": 1.5, "scale": 2.0}],
    }
    assert manifest["layout_version"] == 1
    assert manifest["assets"][0]["placements"] == [
        {"position": [x, 0.0, z], "yaw": 1.5, "scale": 2.0}
    ]
    assert as_creator.get(f"/shards/{booths[0].pk}/layout").json() == answer.json()


def test_a_stale_version_cannot_overwrite_a_newer_layout(as_creator, booths):
    asset_id = upload(as_creator, booths[0], "statue.glb", glb_box()).json()["id"]
    x, z = column_centre(0)
    assert publish(as_creator, booths[0], 0, [placed(asset_id, x, z)]).status_code == 200

    stale = publish(as_creator, booths[0], 0, [])

    assert stale.status_code == 409
    assert stale.json()["error"] == "conflict"
    assert stale.json()["version"] == 1
    assert "reload to see the newer layout; nothing was changed" in stale.json()["detail"]
    assert len(as_creator.get(f"/shards/{booths[0].pk}/layout").json()["placements"]) == 1


def test_placements_must_stand_on_the_booths_own_floor(as_creator, booths):
    asset_id = upload(as_creator, booths[0], "statue.glb", glb_box()).json()["id"]
    x, z = column_centre(1)

    next_door = publish(as_creator, booths[0], 0, [placed(asset_id, x, z)])
    off_market = publish(as_creator, booths[0], 0, [placed(asset_id, -1.0, 3.0)])

    assert next_door.status_code == off_market.status_code == 400
    assert "is outside booth 'Looms'" in next_door.json()["detail"]
    assert next_door.json()["placement"] == 0


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"scale": 0.0}, "scale 0.0 is not between"),
        ({"scale": 50.0}, "scale 50.0 is not between"),
        ({"position_y": 9.0}, "y=9.00 m is not between 0"),
    ],
)
def test_scales_and_heights_out_of_range_are_refused(as_creator, booths, change, message):
    asset_id = upload(as_creator, booths[0], "statue.glb", glb_box()).json()["id"]
    x, z = column_centre(0)
    placement = placed(asset_id, x, z, **{k: v for k, v in change.items() if k == "scale"})
    if "position_y" in change:
        placement["position"][1] = change["position_y"]

    answer = publish(as_creator, booths[0], 0, [placement])

    assert answer.status_code == 400
    assert message in answer.json()["detail"]


def test_non_finite_numbers_and_malformed_bodies_are_refused(as_creator, booths):
    asset_id = upload(as_creator, booths[0], "statue.glb", glb_box()).json()["id"]
    x, z = column_centre(0)

    short_position = publish(as_creator, booths[0], 0, [{"asset": asset_id, "position": [x, z]}])
    no_version = as_creator.put(
        f"/shards/{booths[0].pk}/layout", {"placements": []}, content_type="application/json"
    )
    infinite = as_creator.put(
        f"/shards/{booths[0].pk}/layout",
        f'{{"version": 0, "placements": [{{"asset": {asset_id}, "position": [{x}, 0, {z}], '
        '"yaw": Infinity}]}',
        content_type="application/json",
    )

    assert short_position.status_code == no_version.status_code == infinite.status_code == 400


def test_only_assets_of_the_booth_may_be_placed(as_creator, booths, namespace):
    theirs = Asset.objects.create(booth=booths[1], namespace=namespace, name="not mine")
    x, z = column_centre(0)

    answer = publish(as_creator, booths[0], 0, [placed(theirs.pk, x, z)])

    assert answer.status_code == 400
    assert answer.json()["assets"] == [theirs.pk]


def test_only_the_booths_creator_may_arrange_it(client, booths, creator, stranger):
    x, z = column_centre(0)
    client.force_login(stranger)

    assert publish(client, booths[0], 0, []).status_code == 403
    assert client.get(f"/shards/{booths[0].pk}/layout").status_code == 403
    client.logout()
    assert publish(client, booths[0], 0, []).status_code in (401, 403)
    # the creator of another booth is no creator of this one
    booth_creator_set(booth=booths[1], user=stranger)
    client.force_login(stranger)
    assert publish(client, booths[0], 0, []).status_code == 403


def test_publishing_tells_the_booths_visitors_which_assets_moved(as_creator, booths):
    first = upload(as_creator, booths[0], "statue.glb", glb_box()).json()["id"]
    second = upload(as_creator, booths[0], "banner.png", png_image()).json()["id"]
    x, z = column_centre(0)
    publish(as_creator, booths[0], 0, [placed(first, x, z), placed(second, x, z)])
    OutboxEvent.objects.all().delete()

    publish(as_creator, booths[0], 1, [placed(first, x, z)])

    events = [row.subject for row in OutboxEvent.objects.all()]
    market = booths[0].market_id
    assert events == [f"market.{market}.booth.0.assets"]
    event = envelope_parse(bytes(OutboxEvent.objects.get().envelope)).event
    assert event == AssetChanged(
        zone=0, booth=booths[0].pk, asset=second, name="banner.png", change="changed"
    )


def test_a_thumbnail_lives_in_the_assets_namespace(
    as_creator, booths, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        upload(as_creator, booths[0], "banner.png", png_image())
    asset = Asset.objects.get()

    assert ChunkNamespace.objects.filter(
        chunk_id=asset.thumbnail, namespace=asset.namespace
    ).exists()
    assert chunk_store().exists(asset.thumbnail)
    assert Chunk.objects.get(pk=asset.thumbnail).size > 0


def test_more_placements_than_a_booth_holds_are_refused(as_creator, booths):
    asset_id = upload(as_creator, booths[0], "statue.glb", glb_box()).json()["id"]
    x, z = column_centre(0)

    answer = publish(as_creator, booths[0], 0, [placed(asset_id, x, z)] * 201)

    assert answer.status_code == 400
    assert "at most 200 placements; got 201" in answer.json()["detail"]


def test_a_negative_version_is_refused(as_creator, booths):
    assert publish(as_creator, booths[0], -1, []).status_code == 400


def test_replacing_an_asset_with_a_malformed_glb_is_refused_and_keeps_it(as_creator, booths):
    created = upload(as_creator, booths[0], "statue.glb", glb_box()).json()
    broken = chunk_stored(glb_cut_short(), booths[0].chunk_namespaces.get())

    answer = as_creator.put(
        f"/shards/{booths[0].pk}/assets/{created['id']}",
        {"name": "statue.glb", "chunks": [broken]},
        content_type="application/json",
    )

    assert answer.status_code == 400
    assert answer.json()["reason"] == "malformed_model"
    assert Asset.objects.get().parts.get().chunk_id == created["chunks"][0]["hash"]
