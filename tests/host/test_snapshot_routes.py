"""The control API's snapshot routes: markets' characters and state, taken once per revision."""

from pathlib import Path

import pytest

from host.control import ControlApp
from host.persistence import game_store_open
from host.snapshot_routes import SnapshotRoutes
from tests.host.test_control import SECRET, call


@pytest.fixture
def app(tmp_path: Path):
    store = game_store_open(url=None, data_dir=tmp_path)
    app = ControlApp(secret=SECRET)
    SnapshotRoutes(store=store).routes_add(app)
    yield app, store
    store.close()


def push(revision: int, pos: list[float], market: int = 2) -> bytes:
    return (
        b'{"instance_id": %d, "revision": %d, "at_ms": %d, "instance": {"visitors": 1},'
        b' "characters": [{"character_id": "77", "state": {"market": %d, "pos": %s}}]}'
        % (market, revision, revision, market, str(pos).encode())
    )


async def test_a_characters_newest_snapshot_is_kept_and_an_older_one_changes_nothing(app) -> None:
    app, store = app
    assert await call(app, "POST", "/snapshots", body=push(10, [1.0, 1.0, 2.0])) == (
        200,
        {"taken": 1, "of": 1},
    )
    assert (await call(app, "POST", "/snapshots", body=push(9, [5.0, 1.0, 5.0])))[1]["taken"] == 0
    status, answer = await call(app, "GET", "/characters/77")
    assert status == 200 and answer["state"] == {"market": 2, "pos": [1.0, 1.0, 2.0]}
    assert store.instance_load(2, "state") == {"visitors": 1}
    # from another market, later: that one holds
    await call(app, "POST", "/snapshots", body=push(20, [3.0, 1.0, 3.0], market=1))
    assert (await call(app, "GET", "/characters/77"))[1]["state"]["market"] == 1
    assert store.checkpoint() == 4  # the character and the state, of each of two markets


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b'{"revision": 1, "at_ms": 1}', "instance_id must be"),
        (b'{"instance_id": 1, "revision": -1, "at_ms": 1}', "revision must be"),
        (b'{"instance_id": 1, "revision": 1, "at_ms": 1, "characters": {}}', "must be a list"),
        (b'{"instance_id": 1, "revision": 1, "at_ms": 1, "characters": [3]}', "an object"),
        (
            b'{"instance_id": 1, "revision": 1, "at_ms": 1,'
            b' "characters": [{"character_id": "5", "state": 3}]}',
            "must be a JSON object",
        ),
    ],
)
async def test_bad_snapshots_are_refused_saying_why(app, body, says) -> None:
    status, answer = await call(app[0], "POST", "/snapshots", body=body)
    assert status == 400 and says in answer["error"], answer


async def test_a_character_never_seen_is_a_404(app) -> None:
    status, answer = await call(app[0], "GET", "/characters/5")
    assert status == 404 and answer["reason"] == "unknown"
