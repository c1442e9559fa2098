"""A live host crashed at random while visitors walk through portals and claim items.

runhost runs two generated markets linked by portals in a fresh data folder (`--walkers
0`, heartbeats every 500 ms, no quarantine). Six keyed visitors, each with its own key,
go round: join a booth of the market they are in, claim that booth's giveaway (one per
booth, four items each, fewer than the visitors, so giveaways run out), leave, join
beside the portal and walk through it to the other market, leave. After any failure a
visitor joins again with its key and retries its claim with the same claim id. Every
acknowledgement a client got is recorded: each `claimed` (giveaway, character, claim id,
item) and each transfer the SDK saw `completed`.

Meanwhile, at seeded random moments while a visitor is between the `transfer` message and
the destination's welcome, the test SIGKILLs that transfer's source market process, its
destination's (pids from GET /health), or the orchestrator itself. After an orchestrator
kill it waits until both orphaned market processes are gone (they stop themselves at
their next heartbeat), then starts runhost again on the same data folder and ports.

What is checked, and how:

* every acknowledged claim is in the store with the same character and item, no item has
  two holders, no character two items of a giveaway, no giveaway more claims than items
  (`claims_problems` over `giveaway_claims`, the store opened after the host stopped);
  the same claim id was never acknowledged with two items;
* every transfer a client saw completed (it got the destination's welcome) is recorded
  `completed`, and every transfer's critical events go through requested, token_issued,
  destination_accepted, source_released, completed in that order, or a prefix of it then
  `aborted` before the release. The welcome goes out once source_released is recorded and
  before the destination's complete call, so a destination (or orchestrator) killed in
  between leaves the completion to the book, which completes a released transfer three
  token lifetimes after its request: the test shortens the token's lifetime to 4 s and,
  before stopping the host, waits up to 60 s for the book to complete every transfer a
  client saw completed;
* never live in two markets: twice a second the book's holder of each character is read
  from the store (read-only, beside the running orchestrator) and compared with the
  market the client's socket is open to. A socket open to a market the book does not
  name is allowed for a moment (the release closes it just after the book moves the
  character); it is a failure when 5 s later the same socket is still open there and
  still receiving frames while the book still names the other market. A market is live
  for a character while it sends it frames, so this sees a second live copy the client
  can see; an entity restored without a socket by a restarted market is not one (it
  leaves once that market asks the book, docs/host.md "Entities restored where the book
  no longer places them"; tests/host/test_portals_live.py checks that).

Controls feed each checker the bug it is for: a lost acknowledged claim, a duplicated
item, a completed transfer missing from the book, states out of order, and a socket left
live in the market the book moved the character from.
"""

import asyncio
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from host.client import HostRefused, HostUnavailable
from host.giveaways import Claim, giveaway_claims
from host.persistence import game_store_open
from tests.host.store_harness import claims_problems
from tests.host.test_portals_live import control_call
from tests.host.test_runhost import SECRET, free_ports
from tests.subprocesses import REPO_ROOT, embedded_environment, run_manage
from zones.client.portal_example import near, portal_to, walk_through
from zones.client.visitor import Visitor

SEED = 20261204
VISITORS = 6
ITEMS = 4  # per booth's giveaway: fewer than the visitors
BOOTHS = 2
KILLS = ("source", "destination", "orchestrator", "source", "destination")
SETTLE_S = 6.0  # visitors walk on this long after the last kill
WALK_S = 20.0  # a walk to a portal gives up after this
WAIT_S = 60.0  # generous: a loaded machine is slow, a right host always gets there
STALE_S = 5.0  # a socket may stay open this long after the book moved its character
STATES = ("requested", "token_issued", "destination_accepted", "source_released", "completed")


# --- the checkers (pure, so the controls can plant bugs in what they are fed) ---------------


def transfer_events(rows: list[tuple[str, dict]]) -> dict[str, list[dict]]:
    """The transfer book's events (event id, payload) grouped by transfer, in recording order."""
    by_transfer: dict[str, list[dict]] = {}
    for _, payload in rows:
        by_transfer.setdefault(payload["transfer_id"], []).append(payload)
    return by_transfer


def book_problems(*, events: dict[str, list[dict]], completed_seen: set[str]) -> list[str]:
    """Transfers whose states are out of order, and completions a client saw but not the book."""
    problems = []
    for transfer_id, payloads in sorted(events.items()):
        states = [p["state"] for p in payloads]
        aborted = states[-1:] == ["aborted"]
        path = states[:-1] if aborted else states
        if tuple(path) != STATES[: len(path)] or (aborted and "source_released" in path):
            problems.append(f"transfer {transfer_id} went {' → '.join(states)}")
    for transfer_id in sorted(completed_seen):
        states = [p["state"] for p in events.get(transfer_id, [])]
        if "completed" not in states:
            problems.append(f"transfer {transfer_id} was seen completed, recorded {states}")
    return problems


def book_holders(events: dict[str, list[dict]]) -> dict[int, tuple[int, float]]:
    """Character → (market the book places it in, when its last move was recorded)."""
    moves: list[tuple[float, int, int]] = []
    for payloads in events.values():
        first = payloads[0]
        if first["state"] != "requested":
            continue
        for p in payloads:
            if p["state"] == "source_released":
                moves.append((p["_at_ms"], first["character_id"], first["destination"]))
            elif p["state"] == "aborted":
                moves.append((p["_at_ms"], first["character_id"], p["fallback"]))
    return {character: (market, at) for at, character, market in sorted(moves)}


@dataclass
class Sighting:
    """A client's socket open to `market` while the book named `holder`."""

    character: int
    market: int
    socket: int  # the client's count of sockets opened so far
    frames: int  # frames received on it by then
    holder: int


def two_markets_problems(*, first: list[Sighting], later: list[Sighting]) -> list[str]:
    """Sightings still true `STALE_S` later on the same socket, with frames still arriving."""
    now = {(s.character, s.socket): s for s in later}
    problems = []
    for seen in first:
        again = now.get((seen.character, seen.socket))
        if again is None or again.market != seen.market or again.holder != seen.holder:
            continue
        if again.frames > seen.frames:
            problems.append(
                f"character {seen.character} was live in market {seen.market} for"
                f" {STALE_S:g} s while the book placed it in market {seen.holder}"
            )
    return problems


def acks_by_claim(acks: list[tuple[str, str, str, int]]) -> tuple[dict, list[str]]:
    """Per giveaway, claim id → (character, item); and claim ids told two different items."""
    told: dict[str, dict[str, tuple[str, int]]] = {}
    problems = []
    for giveaway, character, claim_id, item in acks:
        before = told.setdefault(giveaway, {}).setdefault(claim_id, (character, item))
        if before != (character, item):
            problems.append(f"claim {claim_id} was acknowledged as {before} and {character, item}")
    return told, problems


# --- the live host --------------------------------------------------------------------------


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


class LiveHost:
    """runhost over one data folder: started, SIGKILLed and started again on the same ports."""

    def __init__(self, tmp_path: Path) -> None:
        self.data_dir = tmp_path
        self.env = embedded_environment(
            tmp_path,
            PYTHONUNBUFFERED="1",
            FABRIC_HOST_SECRET=SECRET,
            FABRIC_HOST_HEARTBEAT_MS="500",
            FABRIC_HOST_HEARTBEAT_TIMEOUT_MS="5000",
            FABRIC_HOST_RESTART_MAX_IN_WINDOW="100",  # kills must not quarantine a market
            FABRIC_HOST_QUARANTINE_MS="0",
            # a released transfer whose destination died before its complete call is
            # completed by the book 3 token lifetimes after the request: 12 s, not 30
            FABRIC_HOST_TRANSFER_TOKEN_TTL_MS="4000",
            FABRIC_JOINS_PER_KEY="off",  # visitors join again and again after each kill
            FABRIC_JOINS_PER_ADDRESS="off",
        )
        self.base = free_ports(3)
        self.control = self.base + 2
        self.log = tmp_path / "runhost.log"
        self.process: subprocess.Popen | None = None
        self.markets_seen: set[int] = set()  # every market pid ever reported

    def url(self, market: int) -> str:
        return f"http://127.0.0.1:{self.base + market - 1}"

    def start(self) -> None:
        argv = [sys.executable, str(REPO_ROOT / "manage.py"), "runhost", "--markets", "1,2"]
        argv += ["--base-port", str(self.base), "--control-port", str(self.control)]
        with self.log.open("a") as log_file:
            self.process = subprocess.Popen(
                [*argv, "--walkers", "0"],
                cwd=REPO_ROOT,
                env=self.env,
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
        self.wait_ready()

    def markets(self) -> dict[int, dict]:
        found = control_call(self.control, "GET", "/health")["markets"]
        self.markets_seen.update(m["pid"] for m in found if m.get("pid"))
        return {m["market_id"]: m for m in found}

    def wait_ready(self, *, not_pid: int | None = None) -> None:
        """Until both markets are ready (and `not_pid` is no longer a market's process)."""
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            assert self.process is not None and self.process.poll() is None, self.tail()
            try:
                markets = self.markets()
                if all(m["state"] == "ready" and m["pid"] != not_pid for m in markets.values()):
                    return
            except (HostUnavailable, HostRefused):  # the orchestrator is starting again
                pass
            time.sleep(0.3)
        raise AssertionError(f"the host did not get both markets ready:\n{self.tail()}")

    def market_kill(self, market: int) -> None:
        pid = self.markets()[market]["pid"]
        os.kill(pid, signal.SIGKILL)
        self.wait_ready(not_pid=pid)

    def orchestrator_kill(self) -> None:
        """SIGKILL runhost; wait for its markets to stop themselves; start it again."""
        pids = [m["pid"] for m in self.markets().values() if m.get("pid")]
        assert self.process is not None
        self.process.kill()
        self.process.wait(timeout=WAIT_S)
        deadline = time.monotonic() + WAIT_S
        while any(pid_alive(pid) for pid in pids):
            assert time.monotonic() < deadline, f"orphaned markets {pids} kept running"
            time.sleep(0.2)
        self.start()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=WAIT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=WAIT_S)

    def settle(self, transfer_ids: set[str]) -> float:
        """Until the book has ended every one of `transfer_ids` (or WAIT_S passed); the wait."""
        started = time.monotonic()
        while time.monotonic() < started + WAIT_S:
            events = self.events()
            states = {t: {p["state"] for p in events.get(t, [])} for t in transfer_ids}
            if all("completed" in s or "aborted" in s for s in states.values()):
                break
            time.sleep(0.5)
        return time.monotonic() - started

    def tail(self) -> str:
        return self.log.read_text()[-4000:] if self.log.exists() else ""

    def events(self) -> dict[str, list[dict]]:
        """The book's transfer events, read without taking the writer's lock."""
        path = self.data_dir / "host.sqlite3"
        connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
        try:
            rows = connection.execute(
                "SELECT event_id, payload, at_ms FROM critical_events"
                " WHERE kind = 'transfer' ORDER BY seq"
            ).fetchall()
        finally:
            connection.close()
        return transfer_events([(e, {**json.loads(p), "_at_ms": a}) for e, p, a in rows])


@pytest.fixture
def live_host(tmp_path):
    host = LiveHost(tmp_path)
    assert run_manage("migrate", "--noinput", env=host.env).returncode == 0
    for name, seed, portal in (("North", "1", "south:500:2"), ("South", "2", "north:500:1")):
        made = run_manage(
            "market_generate",
            name,
            "--booths",
            str(BOOTHS),
            "--seed",
            seed,
            "--portal",
            portal,
            env=host.env,
        )
        assert made.returncode == 0, made.stderr
    try:
        host.start()
        yield host
    finally:
        host.stop()
        leftovers = [pid for pid in host.markets_seen if pid_alive(pid)]
        for pid in leftovers:
            os.kill(pid, signal.SIGKILL)
        assert not leftovers, f"market processes {leftovers} outlived the host"


# --- the visitors -----------------------------------------------------------------------------


@dataclass
class Walker:
    """One keyed visitor going round, and everything it was told."""

    name: str
    market: int
    visitor: Visitor | None = None
    sockets: int = 0
    acks: list[tuple[str, str, str, int]] = field(default_factory=list)
    completed: list[str] = field(default_factory=list)
    refusals: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    resumed_after_leave: int = 0
    step: str = ""  # what the walker is doing, named in its failures

    @property
    def key(self) -> str:
        return f"crash-walker-key-{self.name}"

    def live_in(self) -> int | None:
        """The market the client's socket is open to, unless closed or moving."""
        v = self.visitor
        if v is None or v.closed or v.moving:
            return None
        return v.market_id


async def walker_join(walker: Walker, host: LiveHost, **where) -> Visitor:
    """Join the market the walker is in, with its key; the socket is counted."""
    visitor = await Visitor.connect(
        host.url(walker.market), walker.market, key=walker.key, timeout=15, **where
    )
    walker.visitor, walker.sockets = visitor, walker.sockets + 1
    walker.market = visitor.market_id
    return visitor


async def walker_round(walker: Walker, host: LiveHost, rng: random.Random) -> None:
    """Join a booth and claim its giveaway; join beside the portal and walk through it."""
    walker.step = "join a booth"
    visitor = await walker_join(walker, host, booth=rng.randrange(BOOTHS))
    walker.step = "claim"
    giveaway = f"m{visitor.market_id}-b{visitor.booth}"
    claim_id = f"{walker.name}-{giveaway}"  # the same id every time: retries are safe
    answer = await visitor.claim(giveaway, claim_id, timeout=20)
    if answer["type"] == "claimed":
        walker.acks.append((giveaway, str(visitor.entity), claim_id, int(answer["item"])))
    else:
        walker.refusals.append(answer["code"])
    portal = portal_to(visitor, 3 - visitor.market_id)
    walker.step = "leave"
    await visitor.leave(timeout=10)
    walker.step = "join beside the portal"
    visitor = await walker_join(walker, host, at=near(portal))  # a short walk to the portal
    if visitor.resumed:
        # Attached to the entity it just left (the gateway waits up to 3 s for it to go):
        # that entity is on its way out and the socket would stay silent. Counted.
        walker.resumed_after_leave += 1
        await visitor.close()
        await asyncio.sleep(1.0)
        visitor = await walker_join(walker, host, at=near(portal))
    taken = len(visitor.transfers)
    walker.step = "walk through the portal"
    try:
        await walk_through(visitor, portal, WALK_S)
    finally:
        for transfer in visitor.transfers[taken:]:
            if transfer["result"] == "completed":
                walker.completed.append(str(transfer["transfer_id"]))
                walker.sockets += 1
            else:
                walker.refusals.append(str(transfer.get("code", transfer["result"])))
        walker.market = visitor.market_id
    walker.step = "leave"
    await visitor.leave(timeout=10)


async def walker_run(walker: Walker, host: LiveHost, stop: asyncio.Event) -> None:
    rng = random.Random(f"{SEED}-{walker.name}")
    while not stop.is_set():
        try:
            await walker_round(walker, host, rng)
        except AssertionError:
            raise
        except Exception as error:  # the socket died, a market was down: join again
            walker.failures.append(f"{walker.step}: {type(error).__name__}")
            if walker.visitor is not None:
                await walker.visitor.close()
            if len(walker.failures) % 2 == 0:
                walker.market = 3 - walker.market  # its market may be the one down
            await asyncio.sleep(0.5)


async def sample_two_markets(
    walkers: list[Walker], host: LiveHost, stop: asyncio.Event
) -> tuple[list[str], Counter]:
    """Twice a second, each client's market against the book's holder (see the docstring);
    the problems, and how many samples and passing mismatches were seen."""
    loop = asyncio.get_running_loop()
    pending: list[tuple[float, list[Sighting]]] = []
    problems: list[str] = []
    counted: Counter = Counter()

    def sightings() -> list[Sighting]:
        holders = book_holders(host.events())
        found = []
        for walker in walkers:
            market, visitor = walker.live_in(), walker.visitor
            if market is None or visitor is None or visitor.entity not in holders:
                continue
            holder = holders[visitor.entity][0]
            counted["compared"] += 1  # a live socket held against the book
            if holder != market:
                found.append(
                    Sighting(visitor.entity, market, walker.sockets, visitor.stats.frames, holder)
                )
        return found

    while not stop.is_set() or pending:
        now = loop.time()
        try:
            seen = sightings()
        except sqlite3.Error:
            seen = None  # the store busy for a moment: sample again
        if seen is not None:
            counted.update(samples=1, mismatches=len(seen))
            while pending and pending[0][0] <= now:
                problems += two_markets_problems(first=pending.pop(0)[1], later=seen)
            if not stop.is_set() and seen:
                pending.append((now + STALE_S, seen))
        await asyncio.sleep(0.5)
    return problems, counted


async def kills_run(walkers: list[Walker], host: LiveHost) -> list[str]:
    """Each of KILLS, at a seeded random moment while some visitor is moving through a portal."""
    rng = random.Random(SEED)
    loop = asyncio.get_running_loop()
    done = []
    for target in KILLS:
        await asyncio.sleep(rng.uniform(1.0, 3.0))
        deadline = loop.time() + 10
        while True:
            moving = [w for w in walkers if w.visitor is not None and w.visitor.moving]
            if moving or loop.time() > deadline:
                break
            await asyncio.sleep(0.02)
        source = rng.choice(moving).visitor.market_id if moving else rng.choice((1, 2))
        at = loop.time()
        if target == "orchestrator":
            await asyncio.to_thread(host.orchestrator_kill)
        else:
            market = source if target == "source" else 3 - source
            await asyncio.to_thread(host.market_kill, market)
        when = "mid-transfer" if moving else "no transfer in flight"
        done.append(f"{target} at {at:.1f} ({when}), back at {loop.time():.1f}")
    return done


async def crash_run(host: LiveHost) -> dict:
    for market in (1, 2):
        for booth in range(BOOTHS):
            offered = {
                "giveaway_id": f"m{market}-b{booth}",
                "market_id": market,
                "booth": booth,
                "items": ITEMS,
            }
            control_call(host.control, "POST", "/giveaways", offered)
    walkers = [Walker(name=f"w{i}", market=1 + i % 2) for i in range(VISITORS)]
    stop = asyncio.Event()
    runs = [asyncio.create_task(walker_run(w, host, stop)) for w in walkers]
    sampling = asyncio.create_task(sample_two_markets(walkers, host, stop))
    kills = await kills_run(walkers, host)
    await asyncio.sleep(SETTLE_S)  # visitors carry on after the last kill
    stop.set()
    await asyncio.wait(runs, timeout=10)
    for run in runs:  # a round cut short tells nothing: only what was answered counts
        run.cancel()
    for ended in await asyncio.gather(*runs, return_exceptions=True):
        if isinstance(ended, AssertionError):
            raise ended
    for walker in walkers:
        if walker.visitor is not None:
            await walker.visitor.close()
    two_markets, sampled = await sampling
    # a client's welcome comes after source_released, before the destination's complete
    # call: one killed in between leaves the completion to the book's expiry
    settled_s = await asyncio.to_thread(host.settle, {t for w in walkers for t in w.completed})
    return {
        "walkers": walkers,
        "kills": kills,
        "two_markets": two_markets,
        "sampled": sampled,
        "settled_s": settled_s,
    }


def test_host_killed_at_random_loses_no_acknowledged_claim_or_transfer(live_host) -> None:
    ran = asyncio.run(crash_run(live_host))
    walkers: list[Walker] = ran["walkers"]
    live_host.stop()
    events = live_host.events()
    acks = [ack for w in walkers for ack in w.acks]
    completed = {t for w in walkers for t in w.completed}
    told, problems = acks_by_claim(acks)
    store = game_store_open(url=None, data_dir=live_host.data_dir)
    try:
        for market in (1, 2):
            for booth in range(BOOTHS):
                giveaway = f"m{market}-b{booth}"
                claims = giveaway_claims(store, giveaway_id=giveaway)
                problems += [
                    f"{giveaway}: {p}"
                    for p in claims_problems(
                        acks=told.get(giveaway, {}), claims=claims, items=ITEMS
                    )
                ]
    finally:
        store.close()
    problems += book_problems(events=events, completed_seen=completed)
    problems += ran["two_markets"]
    summary = (
        f"kills {ran['kills']}; {len(acks)} claims acknowledged, {len(completed)} transfers"
        f" completed (the book settled in {ran['settled_s']:.1f} s); book samples"
        f" {dict(ran['sampled'])}; joins resumed right after a leave"
        f" {sum(w.resumed_after_leave for w in walkers)}; failures"
        f" {Counter(f for w in walkers for f in w.failures).most_common()}"
    )
    assert not problems, "\n".join(problems) + "\n" + summary
    # the run did what it is for: every kill happened, during traffic, and claims ran out
    assert len(ran["kills"]) == len(KILLS), summary
    assert completed and acks and ran["sampled"]["compared"] > 0, summary
    assert any("giveaway_exhausted" in w.refusals for w in walkers), summary
    print(summary)


# --- controls: each checker catches the bug it is for ------------------------------------------


def _payloads(transfer_id: str, states: list[str], **first) -> list[dict]:
    return [
        {"transfer_id": transfer_id, "state": s, "_at_ms": i, **first} for i, s in enumerate(states)
    ]


def test_a_lost_acknowledged_claim_and_a_duplicated_item_are_flagged() -> None:
    told, problems = acks_by_claim(
        [("g", "7", "w0-g", 0), ("g", "8", "w1-g", 1), ("g", "8", "w1-g", 1)]
    )
    assert problems == []
    kept = [Claim("g", "7", "w0-g", 0, 1)]  # the store lost w1's claim
    assert claims_problems(acks=told["g"], claims=kept, items=4) == [
        "acknowledged claim w1-g (item 1) is lost"
    ]
    doubled = [Claim("g", "7", "w0-g", 0, 1), Claim("g", "8", "w1-g", 0, 1)]
    found = claims_problems(acks={}, claims=doubled, items=4)
    assert found == ["item 0 is held by 7, 8"]
    _, retold = acks_by_claim([("g", "7", "w0-g", 0), ("g", "7", "w0-g", 2)])
    assert len(retold) == 1 and "w0-g" in retold[0]


def test_a_completed_transfer_missing_or_out_of_order_in_the_book_is_flagged() -> None:
    events = {
        "t1": _payloads("t1", list(STATES)),
        "t2": _payloads("t2", ["requested", "token_issued", "aborted"]),
    }
    assert book_problems(events=events, completed_seen={"t1"}) == []
    assert book_problems(events=events, completed_seen={"t1", "t2"}) == [
        "transfer t2 was seen completed, recorded ['requested', 'token_issued', 'aborted']"
    ]
    skipped = {"t3": _payloads("t3", ["requested", "token_issued", "source_released"])}
    assert book_problems(events=skipped, completed_seen=set()) == [
        "transfer t3 went requested → token_issued → source_released"
    ]
    late_abort = {"t4": _payloads("t4", [*STATES[:4], "aborted"])}
    assert len(book_problems(events=late_abort, completed_seen=set())) == 1


def test_a_socket_left_live_where_the_book_moved_the_character_from_is_flagged() -> None:
    moved = _payloads("t1", list(STATES), character_id=7, source=1, destination=2)
    assert book_holders({"t1": moved}) == {7: (2, 3)}
    first = [Sighting(character=7, market=1, socket=3, frames=100, holder=2)]
    still_live = [Sighting(character=7, market=1, socket=3, frames=140, holder=2)]
    assert len(two_markets_problems(first=first, later=still_live)) == 1
    # closed just after the release, or no frames any more: not live in two markets
    assert two_markets_problems(first=first, later=[]) == []
    silent = [Sighting(character=7, market=1, socket=3, frames=100, holder=2)]
    assert two_markets_problems(first=first, later=silent) == []
    rejoined = [Sighting(character=7, market=1, socket=4, frames=140, holder=2)]
    assert two_markets_problems(first=first, later=rejoined) == []
