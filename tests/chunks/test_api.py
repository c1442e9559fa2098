"""The JSON endpoints: which chunks a namespace lacks, booth manifests, asset writes."""

import pytest

from chunks.models import Asset
from chunks.services import namespace_create
from market.rebac.services import rebac_tuple_write
from tests.chunks.conftest import chunk_hash, chunk_stored

pytestmark = pytest.mark.django_db

PIECES = [b"warp " * 100, b"weft " * 50, b"selvedge"]


@pytest.fixture
def pieces(namespace):
    return [chunk_stored(piece, namespace) for piece in PIECES]


@pytest.fixture
def as_writer(client, writer):
    client.force_login(writer)
    return client


@pytest.fixture
def as_stranger(client, stranger):
    client.force_login(stranger)
    return client


def post_json(client, url, body):
    return client.post(url, body, content_type="application/json")


def test_missing_lists_the_hashes_the_namespace_lacks_in_the_order_asked(as_writer, pieces):
    new = [chunk_hash(b"new one"), chunk_hash(b"another")]

    answer = post_json(
        as_writer,
        "/chunks/missing",
        {"namespace": "looms", "hashes": [new[0], pieces[0], new[1], pieces[2], new[0]]},
    )

    assert answer.status_code == 200
    assert answer.json() == {"missing": new}


def test_chunk_stored_only_in_another_namespace_counts_as_missing(as_writer, namespace):
    elsewhere = namespace_create(slug="elsewhere", name="Elsewhere")
    hidden = chunk_stored(b"stored, but not here", elsewhere)

    answer = post_json(as_writer, "/chunks/missing", {"namespace": "looms", "hashes": [hidden]})

    assert answer.json() == {"missing": [hidden]}


def test_missing_is_for_writers_of_the_namespace(as_stranger, client, pieces):
    refused = post_json(as_stranger, "/chunks/missing", {"namespace": "looms", "hashes": pieces})
    client.logout()
    anonymous = post_json(client, "/chunks/missing", {"namespace": "looms", "hashes": pieces})

    assert refused.status_code == 403
    assert refused.json()["detail"] == "You may not write to namespace 'looms'."
    assert anonymous.status_code == 403
    assert anonymous.json()["error"] == "not_authenticated"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"namespace": "looms", "hashes": ["ABC"]}, "64 characters from 0-9 and a-f"),
        ({"namespace": "nowhere", "hashes": []}, "There is no namespace 'nowhere'"),
    ],
)
def test_missing_refuses_malformed_hashes_and_unknown_namespaces(
    as_writer, namespace, body, message
):
    answer = post_json(as_writer, "/chunks/missing", body)

    assert answer.status_code == 400
    assert message in answer.json()["detail"]


def test_missing_needs_a_list_of_hashes(as_writer, namespace):
    answer = post_json(as_writer, "/chunks/missing", {"namespace": "looms", "hashes": "abc"})

    assert answer.status_code == 400
    assert "hashes" in answer.json()


def test_creator_builds_an_asset_and_readers_get_it_in_the_manifest(
    as_writer, booth, namespace, pieces
):
    created = post_json(
        as_writer,
        f"/shards/{booth.pk}/assets",
        {"name": "loom.glb", "content_type": "model/gltf-binary", "chunks": pieces},
    )
    manifest = as_writer.get(f"/shards/{booth.pk}/assets")

    assert created.status_code == 201, created.json()
    asset_id = created.json()["id"]
    sizes = [len(piece) for piece in PIECES]
    offsets = [0, sizes[0], sizes[0] + sizes[1]]
    assert manifest.status_code == 200
    assert manifest.json() == {
        "booth": booth.pk,
        "layout_version": 0,
        "assets": [
            {
                "id": asset_id,
                "name": "loom.glb",
                # the type comes from the bytes, which are no model
                "content_type": "application/octet-stream",
                "size": sum(sizes),
                "namespace": "looms",
                "chunks": [
                    {
                        "hash": digest,
                        "offset": offset,
                        "size": size,
                        "url": f"http://testserver/chunks/{digest}",
                    }
                    for digest, offset, size in zip(pieces, offsets, sizes, strict=True)
                ],
                "thumbnail_state": "none",
                "thumbnail": None,
                "placements": [],
            }
        ],
    }


def test_asset_may_repeat_a_chunk(as_writer, booth, pieces):
    answer = post_json(
        as_writer, f"/shards/{booth.pk}/assets", {"name": "twice", "chunks": [pieces[2]] * 2}
    )

    assert answer.status_code == 201
    assert [c["offset"] for c in answer.json()["chunks"]] == [0, len(PIECES[2])]
    assert answer.json()["content_type"] == "application/octet-stream"


def test_asset_with_chunks_the_namespace_lacks_is_refused_with_their_list(as_writer, booth, pieces):
    absent = [chunk_hash(b"not uploaded"), chunk_hash(b"nor this")]

    answer = post_json(
        as_writer,
        f"/shards/{booth.pk}/assets",
        {"name": "broken", "chunks": [pieces[0], absent[0], absent[1], absent[0]]},
    )

    assert answer.status_code == 400
    assert answer.json()["missing"] == absent
    assert not Asset.objects.exists()


def test_asset_update_replaces_its_chunks_and_size(as_writer, booth, pieces):
    asset_id = post_json(
        as_writer, f"/shards/{booth.pk}/assets", {"name": "v1", "chunks": pieces}
    ).json()["id"]

    answer = as_writer.put(
        f"/shards/{booth.pk}/assets/{asset_id}",
        {"name": "v2", "content_type": "text/plain", "chunks": [pieces[1]]},
        content_type="application/json",
    )

    assert answer.status_code == 200
    assert answer.json()["name"] == "v2"
    assert answer.json()["size"] == len(PIECES[1])
    assert [c["hash"] for c in answer.json()["chunks"]] == [pieces[1]]


def test_strangers_cannot_read_or_write_a_private_booth(as_stranger, booth, pieces):
    asset = Asset.objects.create(booth=booth, namespace=booth.chunk_namespaces.get(), name="x")

    read = as_stranger.get(f"/shards/{booth.pk}/assets")
    create = post_json(as_stranger, f"/shards/{booth.pk}/assets", {"name": "y", "chunks": pieces})
    update = as_stranger.put(
        f"/shards/{booth.pk}/assets/{asset.pk}",
        {"name": "z", "chunks": pieces},
        content_type="application/json",
    )

    assert [read.status_code, create.status_code, update.status_code] == [403, 403, 403]


def test_manifest_of_an_unknown_booth_is_refused_like_a_forbidden_one(
    as_stranger, booth, namespace
):
    unknown = as_stranger.get("/shards/999999/assets")
    forbidden = as_stranger.get(f"/shards/{booth.pk}/assets")

    assert unknown.status_code == forbidden.status_code == 403


def test_manifest_lists_only_the_assets_of_namespaces_the_caller_can_read(
    client, as_writer, booth, namespace, public_namespace
):
    private_piece = chunk_stored(b"private", namespace)
    public_piece = chunk_stored(b"public", public_namespace)
    for name, reference, digest in (
        ("secret", "looms", private_piece),
        ("shown", "looms-public", public_piece),
    ):
        answer = post_json(
            as_writer,
            f"/shards/{booth.pk}/assets",
            {"name": name, "namespace": reference, "chunks": [digest]},
        )
        assert answer.status_code == 201
    client.logout()

    anonymous = client.get(f"/shards/{booth.pk}/assets")

    assert anonymous.status_code == 200
    assert [a["name"] for a in anonymous.json()["assets"]] == ["shown"]


def test_booth_with_several_namespaces_needs_one_named(
    as_writer, booth, namespace, public_namespace
):
    answer = post_json(
        as_writer, f"/shards/{booth.pk}/assets", {"name": "which", "chunks": [chunk_hash(b"")]}
    )

    assert answer.status_code == 400
    assert "name one in `namespace`" in answer.json()["detail"]


def test_namespace_of_another_booth_is_refused(as_writer, booth, writer):
    other = namespace_create(slug="not-this-booth", name="Other")
    rebac_tuple_write(object=other.rebac_object, relation="writer", user=f"user:{writer.pk}")
    piece = chunk_stored(b"elsewhere", other)

    answer = post_json(
        as_writer,
        f"/shards/{booth.pk}/assets",
        {"name": "wrong", "namespace": "not-this-booth", "chunks": [piece]},
    )

    assert answer.status_code == 400
    assert "does not belong to booth" in answer.json()["detail"]


def test_booth_creator_may_write_its_namespace_through_the_booth(client, booth, django_user_model):
    creator = django_user_model.objects.create_user("creator")
    rebac_tuple_write(object=f"booth:{booth.pk}", relation="creator", user=f"user:{creator.pk}")
    namespace = namespace_create(slug="creator-space", name="Creator", booth=booth)
    piece = chunk_stored(b"made by the creator", namespace)
    client.force_login(creator)

    answer = post_json(client, f"/shards/{booth.pk}/assets", {"name": "mine", "chunks": [piece]})

    assert answer.status_code == 201


def test_schema_documents_the_chunk_endpoints(client):
    answer = client.get("/api/schema/", HTTP_ACCEPT="application/json")

    assert answer.status_code == 200
    paths = answer.json()["paths"]
    assert {"get", "put"} <= set(paths["/chunks/{chunk_hash}"])
    assert "416" in paths["/chunks/{chunk_hash}"]["get"]["responses"]
    assert "411" in paths["/chunks/{chunk_hash}"]["put"]["responses"]
    assert "post" in paths["/chunks/missing"]
    assert {"get", "post"} <= set(paths["/shards/{booth_id}/assets"])
    assert "put" in paths["/shards/{booth_id}/assets/{asset_id}"]


UPLOAD_KEY = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"


def test_recording_an_upload_again_answers_the_asset_it_made(as_writer, booth, pieces):
    """A page reloaded after the market recorded its upload, before it forgot the upload,
    records it again: still one asset."""
    body = {"name": "loom", "chunks": pieces, "upload_key": UPLOAD_KEY}

    first = post_json(as_writer, f"/shards/{booth.pk}/assets", body)
    again = post_json(as_writer, f"/shards/{booth.pk}/assets", body)
    other = post_json(as_writer, f"/shards/{booth.pk}/assets", {**body, "upload_key": "a" * 32})
    unkeyed = [post_json(as_writer, f"/shards/{booth.pk}/assets", {"name": "x", "chunks": pieces})]
    unkeyed.append(
        post_json(as_writer, f"/shards/{booth.pk}/assets", {"name": "x", "chunks": pieces})
    )

    assert (first.status_code, again.status_code, other.status_code) == (201, 200, 201)
    assert again.json() == first.json()
    assert [answer.status_code for answer in unkeyed] == [201, 201]
    assert Asset.objects.filter(upload_key=UPLOAD_KEY).count() == 1
    assert Asset.objects.count() == 4


def test_the_same_key_for_another_asset_is_a_conflict(as_writer, booth, pieces):
    body = {"name": "loom", "chunks": pieces, "upload_key": UPLOAD_KEY}
    post_json(as_writer, f"/shards/{booth.pk}/assets", body)

    renamed = post_json(as_writer, f"/shards/{booth.pk}/assets", {**body, "name": "shuttle"})
    rechunked = post_json(as_writer, f"/shards/{booth.pk}/assets", {**body, "chunks": pieces[:1]})

    assert [renamed.status_code, rechunked.status_code] == [409, 409]
    assert renamed.json()["error"] == "conflict" and "upload_key" in renamed.json()["detail"]
    assert Asset.objects.count() == 1


@pytest.mark.parametrize("key", ["short", "a" * 65, "not a key with spaces!!", 7])
def test_a_malformed_upload_key_is_refused(as_writer, booth, pieces, key):
    answer = post_json(
        as_writer,
        f"/shards/{booth.pk}/assets",
        {"name": "loom", "chunks": pieces, "upload_key": key},
    )

    assert answer.status_code == 400
    assert "upload_key" in str(answer.json())
    assert not Asset.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_two_requests_racing_with_one_key_make_one_asset(monkeypatch, booth, writer, pieces):
    """Both pass the first look for the key; the constraint lets one commit, and the other
    answers the asset that one made."""
    from chunks import services
    from chunks.services import asset_record

    def record():
        return asset_record(
            user=writer,
            booth_id=booth.pk,
            namespace_reference=None,
            name="loom",
            content_type="model/gltf-binary",
            hashes=pieces,
            upload_key=UPLOAD_KEY,
        )

    real = services._asset_of_upload
    calls = []

    def blind_first(*args):
        calls.append(args)
        if len(calls) == 1:
            # As a request whose look came before the other's commit: the other commits now.
            assert record()[1] is True
            return None
        return real(*args)

    monkeypatch.setattr(services, "_asset_of_upload", blind_first)
    asset, created = record()

    assert created is False
    assert Asset.objects.count() == 1 and asset.pk == Asset.objects.get().pk
