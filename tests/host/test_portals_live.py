"""A host of two generated markets linked by portals: a visitor walks through and back.

The whole path, live: runhost, two market processes, the control API, the book of
transfers in the host's store, the market's portal detection, the join with a transfer
token, the source's release, and the SDK following the transfer by itself; then the
SDK's portal example does the same from the command line.
"""

import asyncio
import signal
import subprocess
import sys

import pytest

from host.client import HostLink, HostRefused
from tests.host.test_runhost import SECRET, free_ports, markets_by_id, wait_for
from tests.subprocesses import REPO_ROOT, embedded_environment, run_manage
from zones.client.portal_example import near, portal_to, walk_through
from zones.client.visitor import Visitor

KEY = "portal-walker-key-0123456789"


def control_call(port: int, method: str, path: str, body: dict | None = None) -> dict:
    """The control API's answer, asked as a market process asks it (HostRefused if refused)."""
    link = HostLink(control_url=f"http://127.0.0.1:{port}", secret=SECRET, market_id=0)
    return link.call(method, path, body, timeout=10)


@pytest.fixture
def host(tmp_path):
    env = embedded_environment(
        tmp_path,
        PYTHONUNBUFFERED="1",
        FABRIC_HOST_SECRET=SECRET,
        FABRIC_HOST_SNAPSHOT_PUSH_MS="300",
    )
    assert run_manage("migrate", "--noinput", env=env).returncode == 0
    for name, seed, portal in (("North", "1", "south:500:2"), ("South", "2", "north:500:1")):
        made = run_manage(
            "market_generate", name, "--booths", "2", "--seed", seed, "--portal", portal, env=env
        )
        assert made.returncode == 0, made.stderr
    base = free_ports(3)
    log_path = tmp_path / "runhost.log"
    argv = [sys.executable, str(REPO_ROOT / "manage.py"), "runhost", "--markets", "1,2"]
    argv += ["--base-port", str(base), "--control-port", str(base + 2), "--walkers", "0"]
    with log_path.open("w") as log_file:
        process = subprocess.Popen(
            argv, cwd=REPO_ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT
        )
    ready = lambda: all(m["state"] == "ready" for m in markets_by_id(base + 2).values())  # noqa: E731
    try:
        wait_for(ready, "both markets are ready", process, log_path)
        yield {"base": base, "control": base + 2, "env": env, "log": log_path}
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


async def transfer_settled(control: int, transfer_id: str) -> dict:
    """The transfer as the host records it once it is no longer `source_released`: the
    destination reports it complete after the welcome is out, so just after the client
    reads its welcome the book may not have heard yet."""
    deadline = asyncio.get_running_loop().time() + 10
    while True:
        recorded = control_call(control, "GET", f"/transfers/{transfer_id}")
        if recorded["state"] != "source_released" or asyncio.get_running_loop().time() > deadline:
            return recorded
        await asyncio.sleep(0.05)


async def through_and_back(base: int, control: int) -> list[dict]:
    north, south = f"http://127.0.0.1:{base}", f"http://127.0.0.1:{base + 1}"
    probe = await Visitor.connect(north, 1)  # a look at the layout
    portal = portal_to(probe, 2)
    assert portal is not None and portal["target"] == 2
    await probe.leave()
    visitor = await Visitor.connect(
        north, 1, key=KEY, at=near(portal), name="Ada", colour="#ff8800"
    )
    entity = visitor.entity
    # an item claimed here is carried through the portal
    offered = {"giveaway_id": "lamp", "market_id": 1, "booth": visitor.booth, "items": 1}
    control_call(control, "POST", "/giveaways", offered)
    assert (await visitor.claim("lamp"))["item"] == 0
    character = {"name": "Ada", "colour": "#ff8800", "carrying": [{"giveaway": "lamp", "item": 0}]}
    steps = []
    for home, away, url in ((1, 2, south), (2, 1, north)):
        result = await walk_through(visitor, portal_to(visitor, away), 60)
        assert result["result"] == "completed", result
        assert (visitor.market_id, visitor.entity) == (away, entity)
        assert visitor.base_url == url + "/" and not visitor.closed
        assert visitor.welcome["character"] == character  # who it is and what it carries
        recorded = await transfer_settled(control, result["transfer_id"])
        assert recorded["state"] == "completed", recorded
        assert (recorded["source"], recorded["destination"]) == (home, away)
        # the visitor arrived beside the portal it came through, and is seen there
        await visitor.wait_for(lambda v: v.position is not None, timeout=10)
        steps.append(recorded)
    await visitor.leave()
    return steps


def test_a_visitor_walks_through_a_portal_to_the_other_market_and_back(host) -> None:
    steps = asyncio.run(through_and_back(host["base"], host["control"]))
    assert [s["state"] for s in steps] == ["completed", "completed"]


def test_the_portal_example_walks_through_and_back(host) -> None:
    ran = subprocess.run(
        [
            sys.executable,
            "-m",
            "zones.client.portal_example",
            "--url",
            f"http://127.0.0.1:{host['base']}",
            "--market",
            "1",
            "--near",
            "--back",
        ],
        cwd=REPO_ROOT,
        env=host["env"],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    lines = ran.stdout.splitlines()
    assert sum("completed: now entity" in line for line in lines) == 2, ran.stdout
    assert "in market 2" in ran.stdout and "in market 1" in ran.stdout


async def through_then_home_directly(base: int, control: int) -> tuple[int | None, dict]:
    north = f"http://127.0.0.1:{base}"
    probe = await Visitor.connect(north, 1)
    portal = portal_to(probe, 2)
    await probe.leave()
    away = await Visitor.connect(north, 1, key=KEY, at=near(portal))
    assert (await walk_through(away, portal, 60))["result"] == "completed"
    assert away.market_id == 2
    # the same key joins market 1 directly: market 2 lets it go, and it walks on from here
    home = await Visitor.connect(north, 1, key=KEY, at=near(portal))
    await away.wait_for(lambda v: v.closed, timeout=10)
    again = await walk_through(home, portal, 60)
    await home.leave()
    return away.close_code, again


def test_a_character_joining_another_market_directly_leaves_the_first(host) -> None:
    closed, again = asyncio.run(through_then_home_directly(host["base"], host["control"]))
    assert closed == 4310  # released by market 2: never live in two markets
    assert again["result"] == "completed", again  # its next portal starts where it is


async def claims(base: int, control: int) -> dict[str, dict]:
    north = f"http://127.0.0.1:{base}"
    first = await Visitor.connect(north, 1, key=KEY)
    booth = first.booth
    offered = {"giveaway_id": "lamps", "market_id": 1, "booth": booth, "items": 2}
    assert control_call(control, "POST", "/giveaways", offered)["remaining"] == 2
    seen = {"first": await first.claim("lamps", "c1")}
    seen["first again"] = await first.claim("lamps", "c2")
    second = await Visitor.connect(north, 1, booth=booth)
    third = await Visitor.connect(north, 1, booth=booth)
    elsewhere = await Visitor.connect(north, 1, booth=1 - booth)
    seen["second"] = await second.claim("lamps")
    seen["third"] = await third.claim("lamps")
    seen["elsewhere"] = await elsewhere.claim("lamps")
    seen["unknown"] = await second.claim("no-such-giveaway")
    seen["bad"] = await second.claim("x" * 65)
    seen["odd"] = await second.claim("a b/é?#")
    seen["state"] = control_call(control, "GET", "/giveaways/lamps")
    for visitor in (first, second, third, elsewhere):
        await visitor.leave()
    return seen


def test_visitors_claim_a_booths_giveaway_one_item_each_until_none_is_left(host) -> None:
    seen = asyncio.run(claims(host["base"], host["control"]))
    assert seen["first"]["type"] == "claimed" and seen["first"]["item"] == 0
    assert seen["first again"]["item"] == 0  # one item a character
    assert seen["second"]["item"] == 1
    assert (seen["third"]["type"], seen["third"]["code"]) == ("error", "giveaway_exhausted")
    assert seen["elsewhere"]["code"] == "not_here" and "stand there" in seen["elsewhere"]["message"]
    assert seen["unknown"]["code"] == "giveaway_unknown"
    assert seen["bad"]["code"] == "bad_field" and "1 to 64 characters" in seen["bad"]["message"]
    assert seen["odd"]["code"] == "bad_field"  # said, and the socket goes on
    assert (seen["state"]["claimed"], seen["state"]["remaining"]) == (2, 0)


def test_a_market_created_while_the_host_runs_starts_on_its_first_join(host) -> None:
    made = run_manage("market_generate", "East", "--booths", "2", "--seed", "3", env=host["env"])
    assert made.returncode == 0, made.stderr
    assert 3 not in markets_by_id(host["control"])

    async def join_east() -> tuple[str, int]:
        # asked at market 1's address: the host starts market 3 and the SDK follows it there
        visitor = await Visitor.connect(f"http://127.0.0.1:{host['base']}", 3)
        where = (visitor.base_url, visitor.welcome["zone"])
        await visitor.leave()
        return where

    url, _ = asyncio.run(join_east())
    east = markets_by_id(host["control"])[3]
    assert east["state"] == "ready" and url == east["url"]
    assert east["port"] not in (host["base"], host["base"] + 1, host["control"])


async def stand_then_come_back(base: int, control: int) -> tuple[list[float], list[float]]:
    north = f"http://127.0.0.1:{base}"
    visitor = await Visitor.connect(north, 1, key=KEY, at=[30.0, 0.0, 40.0], name="Ada")
    await visitor.wait_for(lambda v: v.position is not None, timeout=10)
    stood = [float(v) for v in visitor.position]
    # the market tells the host where its characters stand every 0.3 s here
    deadline = asyncio.get_running_loop().time() + 20
    while True:
        try:
            seen = control_call(control, "GET", f"/characters/{visitor.entity}")["state"]
            if seen["pos"][0] == round(stood[0], 3):
                break
        except HostRefused:
            pass
        assert asyncio.get_running_loop().time() < deadline, "no snapshot reached the host"
        await asyncio.sleep(0.2)
    assert seen["market"] == 1 and seen["name"] == "Ada"
    await visitor.leave()
    again = await Visitor.connect(north, 1, key=KEY)  # not saying where: where it stood
    await again.wait_for(lambda v: v.position is not None, timeout=10)
    back = [float(v) for v in again.position]
    await again.leave()
    return stood, back


def test_a_keyed_visitor_joining_again_stands_where_it_stood(host) -> None:
    stood, back = asyncio.run(stand_then_come_back(host["base"], host["control"]))
    assert abs(back[0] - stood[0]) < 0.01 and abs(back[2] - stood[2]) < 0.01


async def snapshot_placed(control: int, entity: int, market: int) -> None:
    """Wait until the host's newest snapshot of the character places it in `market` (the
    markets send theirs every 0.3 s here)."""
    deadline = asyncio.get_running_loop().time() + 20
    while True:
        try:
            if control_call(control, "GET", f"/characters/{entity}")["state"]["market"] == market:
                return
        except HostRefused:
            pass
        assert asyncio.get_running_loop().time() < deadline, "no snapshot reached the host"
        await asyncio.sleep(0.2)


async def joins_two_markets_directly(base: int, control: int) -> int | None:
    north, south = f"http://127.0.0.1:{base}", f"http://127.0.0.1:{base + 1}"
    first = await Visitor.connect(north, 1, key=KEY)  # never through a portal
    await snapshot_placed(control, first.entity, 1)
    second = await Visitor.connect(south, 2, key=KEY)  # the same key, the other market
    await first.wait_for(lambda v: v.closed, timeout=10)
    assert not second.closed
    await second.leave()
    return first.close_code


def test_a_key_joining_a_second_market_directly_leaves_the_first(host) -> None:
    assert asyncio.run(joins_two_markets_directly(host["base"], host["control"])) == 4310


async def ghost_seen_after_restart(base: int, control: int) -> tuple[int, int, int]:
    """A keyed visitor in market 1; market 1 stops; the visitor joins market 2 (the release
    stands: no process of market 1 runs); market 1 starts again from its zones' snapshot,
    which holds the visitor's entity. A visitor standing where it stood watches for it:
    (frames watched, the last frame's index showing the entity, -1 for none, and the
    entity id)."""
    north, south = f"http://127.0.0.1:{base}", f"http://127.0.0.1:{base + 1}"
    first = await Visitor.connect(north, 1, key=KEY)
    entity = first.entity
    await first.wait_for(lambda v: v.position is not None, timeout=10)
    await snapshot_placed(control, entity, 1)
    stood = [float(v) for v in first.position]
    assert control_call(control, "POST", "/markets/1/stop")["state"] == "stopped"
    await first.wait_for(lambda v: v.closed, timeout=10)
    second = await Visitor.connect(south, 2, key=KEY)  # moved to market 2 by the host's book
    started = control_call(control, "POST", "/markets/1/start", {"wait_ready_s": 30})
    assert started["state"] == "ready", started
    watcher = await Visitor.connect(north, 1, at=stood)
    frames: list[bool] = []
    watcher.on_frame = lambda v, header, rows, bodies, ms: frames.append(
        bool((rows["id"] == entity).any())
    )
    await asyncio.sleep(4.0)  # 80 ticks; the entity's lease alone would keep it about 30 s
    await watcher.leave()
    await second.leave()
    shown = [i for i, seen in enumerate(frames) if seen]
    return len(frames), shown[-1] if shown else -1, entity


def test_an_entity_restored_where_the_book_no_longer_places_it_leaves_at_once(host) -> None:
    watched, last_shown, entity = asyncio.run(
        ghost_seen_after_restart(host["base"], host["control"])
    )
    assert watched >= 40, f"only {watched} frames in 4 s"
    # gone within the first second of frames (20 ticks), and never seen again
    assert last_shown < 20, f"entity {entity} still shown in frame {last_shown} of {watched}"
    log = host["log"].read_text()
    assert f"visitor {entity} is market 2's now: its entity here leaves" in log
