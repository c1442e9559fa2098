"""The control API's transfer routes over a book, with stand-ins for the markets."""

import pytest

from host.client import HostUnavailable
from host.control import ControlApp
from host.transfer_routes import TransferRoutes
from host.transfers import TransferBook
from tests.host.test_control import SECRET, call
from tests.host.transfer_sim import MemoryCommitLog


class Markets:
    """The orchestrator as the routes see it: markets healthy unless said, where each serves."""

    secret = SECRET
    default_market = 1
    health: dict[int, str] = {}

    def market_health(self, market_id: int) -> str:
        return self.health.get(market_id, "healthy")

    running: dict[int, bool] = {}

    def market_running(self, market_id: int) -> bool:
        return self.running.get(market_id, True)

    def market_url(self, market_id: int) -> str:
        return f"http://127.0.0.1:{8000 + market_id}/"

    async def ensure_started(self, market_id: int) -> str:
        return "ready"

    async def market_ready_wait(self, market_id: int, *, timeout_s: float) -> bool:
        return True


@pytest.fixture
def host():
    Markets.health, Markets.running = {}, {}
    book = TransferBook(
        commit_log=MemoryCommitLog(),
        market_health=Markets().market_health,
        default_market=1,
        secret=SECRET.encode(),
        token_ttl_ms=10_000,
    )
    released: list[tuple[int, int]] = []
    unreachable: set[int] = set()

    def release(source: int, character: int, transfer_id: str) -> None:
        if source in unreachable:
            raise HostUnavailable(f"market {source} did not answer")
        released.append((source, character))

    routes = TransferRoutes(
        book=book,
        orchestrator=Markets(),  # type: ignore[arg-type]
        release=release,
    )
    app = ControlApp(secret=SECRET)
    routes.routes_add(app)
    return app, book, released, unreachable


def request_body(source: int, destination: int) -> bytes:
    return b'{"character_id": "77", "source": %d, "destination": %d, "state": {"entity": 77}}' % (
        source,
        destination,
    )


async def test_a_portal_walk_goes_through_every_commit_point(host) -> None:
    app, book, released, unreachable = host
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
    app, book, released, unreachable = host
    _, asked = await call(app, "POST", "/transfers", body=request_body(1, 2))
    accept = b'{"token": "%s", "destination": 2, "instance_id": 0}' % asked["token"].encode()
    await call(app, "POST", "/transfers/accept", body=accept)
    # released to market 2, whose welcome never came: the visitor joins market 1 instead
    status, moved = await call(app, "POST", "/characters/77/arrive", body=b'{"market": 1}')
    assert status == 200 and moved["moved"] and moved["from"] == 2
    assert book.transfer_get(transfer_id=asked["transfer_id"]).state == "completed"
    assert book.authority(character_id=77) == 1 and released == [(1, 77), (2, 77)]


@pytest.mark.parametrize(
    ("health", "running", "accepted"),
    [("healthy", True, False), ("down", True, False), ("down", False, True)],  # middle: unhealthy
)
async def test_a_source_that_cannot_release_aborts_unless_its_process_is_down(
    host, health, running, accepted
) -> None:
    app, book, released, unreachable = host
    _, asked = await call(app, "POST", "/transfers", body=request_body(1, 2))
    unreachable.add(1)
    Markets.health, Markets.running = {1: health}, {1: running}
    accept = b'{"token": "%s", "destination": 2, "instance_id": 0}' % asked["token"].encode()
    status, answer = await call(app, "POST", "/transfers/accept", body=accept)
    state = book.transfer_get(transfer_id=asked["transfer_id"]).state
    if accepted:  # no process of it runs, so nothing holds the visitor there: it goes on
        assert status == 200 and state == "source_released"
    else:  # a process still running, answering or not, may hold it: it stays there
        assert (status, answer["reason"], answer["fallback"]) == (409, "source_unreachable", 1)
        assert state == "aborted" and book.authority(character_id=77) == 1


async def test_a_market_asks_which_of_its_entities_the_book_places_elsewhere(host) -> None:
    app, book, released, unreachable = host
    _, asked = await call(app, "POST", "/transfers", body=request_body(1, 2))
    question = b'{"market": 1, "characters": ["77", "78"]}'
    status, answer = await call(app, "POST", "/characters/elsewhere", body=question)
    assert (status, answer["elsewhere"]) == (200, {})  # requested, not accepted: still market 1's
    accept = b'{"token": "%s", "destination": 2, "instance_id": 0}' % asked["token"].encode()
    await call(app, "POST", "/transfers/accept", body=accept)
    status, answer = await call(app, "POST", "/characters/elsewhere", body=question)
    assert (status, answer) == (200, {"market": 1, "elsewhere": {"77": 2}})  # 78: no transfer
    asked_by_2 = b'{"market": 2, "characters": ["77"]}'
    assert (await call(app, "POST", "/characters/elsewhere", body=asked_by_2))[1]["elsewhere"] == {}


@pytest.mark.parametrize(
    "body",
    [
        b'{"characters": ["77"]}',
        b'{"market": 1, "characters": "77"}',
        b'{"market": 1, "characters": [77]}',
        b'{"market": 1, "characters": ["-7"]}',
        b'{"market": 1, "characters": [%s]}' % b",".join([b'"1"'] * 10_001),
    ],
)
async def test_a_malformed_elsewhere_question_is_refused_400(host, body) -> None:
    app, *_ = host
    status, answer = await call(app, "POST", "/characters/elsewhere", body=body)
    assert (status, answer["reason"]) == (400, "bad_request")
