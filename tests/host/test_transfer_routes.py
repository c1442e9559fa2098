"""The control API's transfer routes over a book, with stand-ins for the markets."""

import pytest

from host.control import ControlApp
from host.transfer_routes import TransferRoutes
from host.transfers import TransferBook
from tests.host.test_control import SECRET, call
from tests.host.transfer_sim import MemoryCommitLog


class Markets:
    """The orchestrator as the routes see it: every market healthy, where each serves."""

    secret = SECRET
    default_market = 1

    def market_health(self, market_id: int) -> str:
        return "healthy"

    def market_url(self, market_id: int) -> str:
        return f"http://127.0.0.1:{8000 + market_id}/"

    async def ensure_started(self, market_id: int) -> str:
        return "ready"

    async def market_ready_wait(self, market_id: int, *, timeout_s: float) -> bool:
        return True


@pytest.fixture
def host():
    book = TransferBook(
        commit_log=MemoryCommitLog(),
        market_health=Markets().market_health,
        default_market=1,
        secret=SECRET.encode(),
        token_ttl_ms=10_000,
    )
    released: list[tuple[int, int]] = []
    routes = TransferRoutes(
        book=book,
        orchestrator=Markets(),  # type: ignore[arg-type]
        release=lambda source, character, transfer_id: released.append((source, character)),
    )
    app = ControlApp(secret=SECRET)
    routes.routes_add(app)
    return app, book, released


def request_body(source: int, destination: int) -> bytes:
    return b'{"character_id": "77", "source": %d, "destination": %d, "state": {"entity": 77}}' % (
        source,
        destination,
    )


async def test_a_portal_walk_goes_through_every_commit_point(host) -> None:
    app, book, released = host
    status, asked = await call(app, "POST", "/transfers", body=request_body(1, 2))
    assert status == 200 and asked["url"] == "http://127.0.0.1:8002/"
    accept = b'{"token": "%s", "destination": 2, "instance_id": 0}' % asked["token"].encode()
    status, accepted = await call(app, "POST", "/transfers/accept", body=accept)
    assert status == 200 and accepted["state"]["entity"] == 77 and released == [(1, 77)]
    status, again = await call(app, "POST", "/transfers/accept", body=accept)
    assert (status, again["reason"]) == (403, "replayed")
    done = b'{"transfer_id": "%s"}' % asked["transfer_id"].encode()
    assert (await call(app, "POST", "/transfers/complete", body=done))[0] == 200
    assert book.authority(character_id=77) == 2


async def test_joining_the_old_market_after_a_release_whose_visitor_never_arrived(host) -> None:
    app, book, released = host
    _, asked = await call(app, "POST", "/transfers", body=request_body(1, 2))
    accept = b'{"token": "%s", "destination": 2, "instance_id": 0}' % asked["token"].encode()
    await call(app, "POST", "/transfers/accept", body=accept)
    # released to market 2, whose welcome never came: the visitor joins market 1 instead
    status, moved = await call(app, "POST", "/characters/77/arrive", body=b'{"market": 1}')
    assert status == 200 and moved["moved"] and moved["from"] == 2
    assert book.transfer_get(transfer_id=asked["transfer_id"]).state == "completed"
    assert book.authority(character_id=77) == 1 and released == [(1, 77), (2, 77)]
