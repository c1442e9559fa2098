"""The control API's giveaway routes: offer, count, and claim where the giveaway stands."""

from pathlib import Path

import pytest

from host.control import ControlApp
from host.giveaway_routes import GiveawayRoutes
from host.persistence import game_store_open
from tests.host.test_control import SECRET, call


@pytest.fixture
def app(tmp_path: Path):
    store = game_store_open(url=None, data_dir=tmp_path)
    app = ControlApp(secret=SECRET)
    GiveawayRoutes(store=store).routes_add(app)
    yield app
    store.close()


def offer(items: int = 2) -> bytes:
    return b'{"giveaway_id": "lamps", "market_id": 1, "booth": 2, "items": %d}' % items


def claim(character: str, claim: str, booth: int = 2) -> bytes:
    return b'{"character_id": "%s", "claim_id": "%s", "market_id": 1, "booth": %d}' % (
        character.encode(),
        claim.encode(),
        booth,
    )


async def test_a_booths_items_go_one_a_visitor_until_none_is_left(app) -> None:
    status, answer = await call(app, "POST", "/giveaways", body=offer())
    assert status == 200 and answer["created"] and answer["remaining"] == 2
    status, first = await call(app, "POST", "/giveaways/lamps/claim", body=claim("101", "c1"))
    assert status == 200 and first["item"] == 0
    again = await call(app, "POST", "/giveaways/lamps/claim", body=claim("101", "c9"))
    assert again == (200, {**first, "claim_id": "c1"})  # one item a character, whatever it asks
    assert (await call(app, "POST", "/giveaways/lamps/claim", body=claim("102", "c2")))[1][
        "item"
    ] == 1
    status, answer = await call(app, "POST", "/giveaways/lamps/claim", body=claim("103", "c3"))
    assert status == 409 and answer["reason"] == "giveaway_exhausted"
    status, answer = await call(app, "GET", "/giveaways/lamps")
    assert (answer["claimed"], answer["remaining"]) == (2, 0)


async def test_a_claim_from_another_booth_is_refused_and_takes_nothing(app) -> None:
    await call(app, "POST", "/giveaways", body=offer())
    status, answer = await call(app, "POST", "/giveaways/lamps/claim", body=claim("101", "c", 3))
    assert status == 409 and answer["reason"] == "not_here" and "booth 2" in answer["error"]
    assert (await call(app, "GET", "/giveaways/lamps"))[1]["claimed"] == 0


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "reason"),
    [
        ("GET", "/giveaways/none", b"", 404, "giveaway_unknown"),
        ("POST", "/giveaways/none/claim", claim("1", "c"), 404, "giveaway_unknown"),
        (
            "POST",
            "/giveaways",
            b'{"giveaway_id": "x", "market_id": 1, "booth": 0}',
            400,
            "bad_request",
        ),
        ("POST", "/giveaways", offer(0), 400, "bad_request"),
        ("POST", "/giveaways/lamps/claim", b'{"character_id": 5}', 400, "bad_request"),
    ],
)
async def test_bad_requests_are_refused_with_a_reason(
    app, method, path, body, status, reason
) -> None:
    await call(app, "POST", "/giveaways", body=offer())
    answer = await call(app, method, path, body=body)
    assert answer[0] == status and answer[1]["reason"] == reason, answer
