"""A world to crash transfers in: a commit log kept in memory standing for the disk, and
an orchestrator, three markets and a visitor run step by step, any of them killed at
any step boundary and restarted, with an observer checking the invariants at every step."""

import contextlib
import copy
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from host.commitlog import CriticalConflict, CriticalEvent
from host.tokens import TransferRefused
from host.transfers import Holding, TransferBook, transfer_recover


class MemoryCommitLog:
    """The `CommitLog` interface over a list; what it recorded survives a book's death."""

    def __init__(self) -> None:
        self.events: list[CriticalEvent] = []
        self._by_id: dict[str, CriticalEvent] = {}

    def critical_record(
        self, *, event_id: str, instance_id: int, kind: str, payload: dict[str, Any], at_ms: int
    ) -> bool:
        """Keep the event (a JSON copy, as a disk would) unless its id is known."""
        stored = json.loads(json.dumps(payload))
        before = self._by_id.get(event_id)
        if before is not None:
            if before.payload != stored:
                raise CriticalConflict(f"event {event_id} was recorded with another payload")
            return False
        event = CriticalEvent(event_id, instance_id, kind, stored, at_ms)
        self.events.append(event)
        self._by_id[event_id] = event
        return True

    def critical_events(
        self, *, kind: str | None = None, instance_id: int | None = None
    ) -> list[CriticalEvent]:
        """The events of one kind and instance, or all, in recording order."""
        return [
            e
            for e in self.events
            if (kind is None or e.kind == kind)
            and (instance_id is None or e.instance_id == instance_id)
        ]


# ---------------------------------------------------------------------------------------
# A deterministic world: an orchestrator, three markets and a visitor, any of which can
# be killed at any step boundary and restarted a few ticks later.

ORCHESTRATOR = "orchestrator"
SOURCE, DESTINATION, DEFAULT = 1, 2, 3
MARKET_NAMES = {SOURCE: "source", DESTINATION: "destination", DEFAULT: "default"}
PROCESSES = (ORCHESTRATOR, "source", "destination", "default")
CHARACTER = 7
INSTANCE = 20
CARRIED = {"name": "Ada", "colour": "#ff8800", "carries": [{"item": 5, "count": 2}]}
KEY_HASH = "ab" * 32
SECRET = b"w" * 32
TTL_MS = 10_000
TICK_MS = 500
SNAPSHOT_EVERY_TICKS = 4
TICK_LIMIT = 400


class Killed(Exception):
    """The process acting now was killed: the rest of its action never happens."""


class Unreachable(Exception):
    """The orchestrator is down, or died before it answered."""


class Violation(AssertionError):
    """The observer saw the protocol break one of its promises."""


@dataclass(frozen=True)
class Kill:
    """Kill `process` at step boundary `at_step`; it restarts `restart_ticks` ticks later."""

    process: str
    at_step: int
    restart_ticks: int = 2


class BoundaryLog:
    """The durable log as the orchestrator sees it: a step boundary before and after each write."""

    def __init__(self, world: "World") -> None:
        self.world = world

    def critical_record(self, **event: Any) -> bool:
        state = event["payload"]["state"]
        self.world.boundary(site=f"before recording {state}")  # killed here: nothing recorded
        recorded = self.world.disk.critical_record(**event)
        self.world.recorded_in_call.append(event["event_id"])
        self.world.boundary(site=f"after recording {state}")  # killed here: never answered
        return recorded

    def critical_events(self, **which: Any) -> list[CriticalEvent]:
        return self.world.disk.critical_events(**which)


class BookAnswersFirst(TransferBook):
    """A planted bug: the book says yes to an acceptance before recording it (write-behind)."""

    def __init__(self, **settings: Any) -> None:
        super().__init__(**settings)
        self.behind: list[dict[str, Any]] = []

    def _record(self, **point: Any) -> bool:
        self.behind_flush()
        if point["state"] != "destination_accepted":
            return super()._record(**point)
        payload = {
            "transfer_id": point["transfer_id"],
            "state": point["state"],
            "nonce": point["nonce"],
        }
        self._apply(payload, instance_id=point["instance_id"], at_ms=point["at_ms"])
        self.behind.append(
            {
                "event_id": f"{point['transfer_id']}:{point['state']}",
                "instance_id": point["instance_id"],
                "kind": "transfer",
                "payload": payload,
                "at_ms": point["at_ms"],
            }
        )
        return True

    def behind_flush(self) -> None:
        """Write what was answered already; a crash before this loses it."""
        while self.behind:
            self.commit_log.critical_record(**self.behind.pop(0))

    def transfers_expire(self, *, now_ms: int) -> dict[str, int]:
        self.behind_flush()
        return super().transfers_expire(now_ms=now_ms)


def log_holder(disk: MemoryCommitLog, character_id: int) -> int | None:
    """The market the durable log says holds the character: the observer's own reading."""
    latest: dict[str, Any] | None = None
    states: dict[str, dict[str, Any]] = {}
    for event in disk.critical_events(kind="transfer"):
        payload = event.payload
        if payload["state"] == "requested" and payload["character_id"] == character_id:
            latest = payload
        states[payload["transfer_id"]] = payload
    if latest is None:
        return None
    last = states[latest["transfer_id"]]
    if last["state"] in ("requested", "token_issued", "destination_accepted"):
        return latest["source"]
    if last["state"] == "aborted":
        return last["fallback"]
    return latest["destination"]


class Market:
    """A market process: the characters it simulates, and the snapshot it restarts from."""

    def __init__(self, market_id: int, *, bugs: frozenset[str]) -> None:
        self.market_id = market_id
        self.name = MARKET_NAMES[market_id]
        self.bugs = bugs
        self.active: dict[int, dict[str, Any]] = {}
        self.snapshot: dict[int, Holding] = {}  # its own disk: survives its crashes
        self.restored = False
        self.ticks = 0

    def crash(self) -> None:
        self.active = {}
        self.restored = False

    def tick(self, world: "World") -> None:
        self.ticks += 1
        if not self.restored:
            self._restore(world)
            return
        self._arrivals(world)
        for transfer in world.read(lambda b: b.transfers_open(market_id=self.market_id)):
            if transfer.source == self.market_id and transfer.state == "destination_accepted":
                self._release(world, transfer.transfer_id, transfer.character_id)
            held = transfer.character_id in self.active
            if (
                transfer.destination == self.market_id
                and transfer.state == "source_released"
                and held
            ):
                world.call(
                    lambda b, t=transfer: b.transfer_complete(
                        transfer_id=t.transfer_id, now_ms=world.now_ms
                    )
                )
        if self.ticks % SNAPSHOT_EVERY_TICKS == 0:
            self.snapshot = {
                c: Holding(copy.deepcopy(s), world.now_ms) for c, s in self.active.items()
            }
            world.boundary(site="snapshot written")

    def _restore(self, world: "World") -> None:
        if "restore_blind" in self.bugs:
            roster = {c: h.state for c, h in self.snapshot.items()}
        else:
            roster = world.read(
                lambda b: b.market_roster(market_id=self.market_id, snapshot=self.snapshot)
            )
        self.active = copy.deepcopy(roster)
        self.restored = True
        world.boundary(site="restored")

    def _arrivals(self, world: "World") -> None:
        """Take on what the book places here and this market does not simulate yet."""
        held = world.read(lambda b: b.characters_held(market_id=self.market_id))
        for character_id, holding in held.items():
            if character_id not in self.active:
                self.active[character_id] = copy.deepcopy(holding.state)
                world.boundary(site="activated")

    def _release(self, world: "World", transfer_id: str, character_id: int) -> None:
        # Stop simulating first: between here and the record the character is nowhere,
        # which is allowed; the other order would leave it in two markets.
        self.active.pop(character_id, None)
        world.boundary(site="stopped simulating")
        # Refused when aborted meanwhile: the book places it here again, _arrivals takes it back.
        with contextlib.suppress(TransferRefused):
            world.call(
                lambda b: b.transfer_release(
                    transfer_id=transfer_id, source=self.market_id, now_ms=world.now_ms
                )
            )

    def admit(self, world: "World", token: str) -> dict[str, Any]:
        """A visitor arrives with a token; the answer is the state to spawn (later)."""
        state = world.call(
            lambda b: b.transfer_accept(
                token=token, destination=self.market_id, instance_id=INSTANCE, now_ms=world.now_ms
            ),
            caller=self.name,
        )
        world.accepted.append((token, state))
        if "activate_on_accept" in self.bugs:
            self.active[CHARACTER] = copy.deepcopy(state)
            world.boundary(site="activated on accept")
        return state


class Visitor:
    """The person walking through the portal: asks the source, then shows the token."""

    def __init__(self) -> None:
        self.token: str | None = None
        self.admitted = False
        self.gave_up = False

    def tick(self, world: "World") -> None:
        source, destination = world.markets[SOURCE], world.markets[DESTINATION]
        if self.token is None and not self.gave_up:
            if world.up["source"] and source.restored and CHARACTER in source.active:
                self._request(world, source)
            return
        if self.token is None or not world.up["destination"] or not destination.restored:
            return
        if self.admitted:
            # Shown again while still good: a replay, which must be refused.
            if world.now_ms < world.token_expiry:
                with contextlib.suppress(TransferRefused, Unreachable):
                    destination.admit(world, self.token)
            return
        if self.gave_up:
            return
        try:
            destination.admit(world, self.token)
            self.admitted = True
        except TransferRefused:
            self.gave_up = True  # expired, aborted or already used: the host rejoins it
        except Unreachable:
            pass

    def _request(self, world: "World", source: Market) -> None:
        carried = copy.deepcopy(source.active[CHARACTER])  # sent with the request
        if "request_drops_carried" in world.bugs:
            carried.pop("carries")
        try:
            _, token = world.call(
                lambda b: b.transfer_request(
                    character_id=CHARACTER,
                    key_hash=KEY_HASH,
                    source=SOURCE,
                    destination=DESTINATION,
                    instance_id=INSTANCE,
                    character_state=carried,
                    now_ms=world.now_ms,
                ),
                caller="source",
            )
        except TransferRefused as refused:
            if refused.reason in ("in_transfer", "destination_unavailable"):
                return  # wait: a transfer is under way, or the destination restarts
            self.gave_up = True
            return
        except Unreachable:
            return
        world.token_expiry = world.now_ms + TTL_MS
        self.token = token
        world.boundary(site="token with the visitor")


class World:
    """The processes, the durable log, the clock, and the observer that checks every step."""

    def __init__(
        self,
        *,
        kills: tuple[Kill, ...] = (),
        bugs: frozenset[str] = frozenset(),
        disk: Any = None,
        disk_reopen: Callable[[Any], Any] | None = None,
    ) -> None:
        self.kills = {(k.process, k.at_step): k for k in kills}
        self.bugs = bugs
        # The orchestrator's durable store; disk_reopen(old) stands for opening it after a crash.
        self.disk = MemoryCommitLog() if disk is None else disk
        self.disk_reopen = disk_reopen
        self.now_ms = 0
        self.tick_count = 0
        self.steps = 0
        self.up = dict.fromkeys((*PROCESSES, "visitor"), True)
        self.restart_at: dict[str, int] = {}
        self.acting = ORCHESTRATOR
        self.recorded_in_call: list[str] = []
        self.acknowledged: set[str] = set()  # commit points some caller was told of
        self.accepted: list[tuple[str, dict[str, Any]]] = []  # every yes to an acceptance
        self.token_expiry = 0
        self.violations: list[str] = []  # what the observer saw, in order
        self.kill_sites: list[tuple[str, str]] = []  # (process killed, where the steps were)
        book_type = BookAnswersFirst if "answer_before_record" in bugs else TransferBook
        self.book: TransferBook = book_type(**self._book_settings())
        self.markets = {
            m: Market(m, bugs=bugs if m != DEFAULT else frozenset()) for m in MARKET_NAMES
        }
        for market in self.markets.values():
            market.restored = True
        self.markets[SOURCE].active[CHARACTER] = copy.deepcopy(CARRIED)
        self.markets[SOURCE].snapshot = {CHARACTER: Holding(copy.deepcopy(CARRIED), 0)}
        self.visitor = Visitor()

    def _book_settings(self) -> dict[str, Any]:
        return {
            "commit_log": BoundaryLog(self),
            "market_health": lambda m: "healthy" if self.up[MARKET_NAMES[m]] else "down",
            "default_market": DEFAULT,
            "secret": SECRET,
            "token_ttl_ms": TTL_MS,
        }

    # -- steps, kills and calls ---------------------------------------------------------

    def boundary(self, *, site: str = "") -> None:
        """One step boundary: planned kills happen here, then the observer looks."""
        self.steps += 1
        for process in PROCESSES:
            kill = self.kills.get((process, self.steps))
            if kill is not None and self.up[process]:
                self.kill_sites.append((process, site or f"{self.acting} acting"))
                self.up[process] = False
                self.restart_at[process] = self.tick_count + kill.restart_ticks
                if process != ORCHESTRATOR:
                    self.markets[_market_of(process)].crash()
        self.observe()
        if not self.up[ORCHESTRATOR] and self.acting == ORCHESTRATOR:
            raise Unreachable("the orchestrator died")
        if not self.up[self.acting]:
            raise Killed(self.acting)

    def call(self, operation: Callable[[TransferBook], Any], *, caller: str | None = None) -> Any:
        """A market's request to the orchestrator, answered or lost."""
        caller = caller or self.acting
        if not self.up[ORCHESTRATOR]:
            raise Unreachable("the orchestrator is down")
        self.boundary(site="call sent")
        if not self.up[ORCHESTRATOR]:
            raise Unreachable("the orchestrator died before it took the request")
        self.recorded_in_call = []
        before, self.acting = self.acting, ORCHESTRATOR
        try:
            answer = operation(self.book)
        finally:
            self.acting = before
        recorded = list(self.recorded_in_call)
        self.acting = caller
        self.acknowledged.update(recorded)
        if isinstance(self.book, BookAnswersFirst):
            self.acknowledged.update(event["event_id"] for event in self.book.behind)
        self.boundary(site="call answered")
        return answer

    def read(self, question: Callable[[TransferBook], Any]) -> Any:
        """A question to the orchestrator that changes nothing."""
        if not self.up[ORCHESTRATOR]:
            raise Unreachable("the orchestrator is down")
        return question(self.book)

    # -- the observer -------------------------------------------------------------------

    def observe(self) -> None:
        """At most one market simulates the character, the one the log names; state kept."""
        holders = [m.name for m in self.markets.values() if CHARACTER in m.active]
        if len(holders) > 1:
            self._violate(f"step {self.steps}: character in {holders} at once")
        for market in self.markets.values():
            state = market.active.get(CHARACTER)
            if state is not None and state != CARRIED:
                self._violate(f"step {self.steps}: {market.name} holds state {state}")
        if holders:
            named = log_holder(self.disk, CHARACTER)
            if named is not None and MARKET_NAMES[named] != holders[0]:
                self._violate(
                    f"step {self.steps}: {holders[0]} simulates the character the log gives to"
                    f" {MARKET_NAMES[named]}"
                )
        tokens = [token for token, _ in self.accepted]
        if len(set(tokens)) < len(tokens):
            self._violate(f"step {self.steps}: a token was accepted twice")
        for _, state in self.accepted:
            if state != CARRIED:
                self._violate(f"step {self.steps}: accepted with state {state}")

    def acknowledged_check(self) -> None:
        """Every commit point a caller was told of is on disk."""
        lost = self.acknowledged - {e.event_id for e in self.disk.critical_events()}
        if lost:
            self._violate(f"step {self.steps}: acknowledged yet not recorded: {sorted(lost)}")

    def _violate(self, message: str) -> None:
        if message not in self.violations:
            self.violations.append(message)

    # -- running ------------------------------------------------------------------------

    def _restarts(self) -> None:
        for process, at in list(self.restart_at.items()):
            if self.tick_count < at:
                continue
            if process == ORCHESTRATOR:
                if self.disk_reopen is not None:
                    self.disk = self.disk_reopen(self.disk)
                self.acknowledged_check()
                self.book = transfer_recover(**self._book_settings())
            del self.restart_at[process]
            self.up[process] = True

    def _act(self, process: str, action: Callable[[], None]) -> None:
        self.acting = process
        # A dead process does nothing more; a lost answer is asked again next tick.
        with contextlib.suppress(Killed, Unreachable):
            action()

    def tick(self) -> None:
        """Every live process takes its turn, then the clock moves on."""
        self._restarts()
        if self.up[ORCHESTRATOR]:
            self._act(ORCHESTRATOR, lambda: self.book.transfers_expire(now_ms=self.now_ms))
        for market in self.markets.values():
            if self.up[market.name]:
                self._act(market.name, lambda m=market: m.tick(self))
        self._act("visitor", lambda: self.visitor.tick(self))
        self.observe()
        self.tick_count += 1
        self.now_ms += TICK_MS

    def settled(self) -> bool:
        """Everyone is up, the transfer is over, and its holder simulates the character."""
        if not all(self.up.values()) or not all(m.restored for m in self.markets.values()):
            return False
        transfers = [t for t in self.book._transfers.values() if t.character_id == CHARACTER]
        if not transfers or any(t.state not in ("completed", "aborted") for t in transfers):
            return False
        holder = self.book.authority(character_id=CHARACTER)
        return holder is not None and CHARACTER in self.markets[holder].active

    def run(self) -> "World":
        """Tick until settled, then check the end: exactly one holder, state kept, nothing lost."""
        while not self.settled():
            if self.tick_count >= TICK_LIMIT:
                raise Violation(f"not settled after {TICK_LIMIT} ticks: {self.describe()}")
            self.tick()
            if self.violations:
                raise Violation("; ".join(self.violations))
        self.acknowledged_check()
        if self.violations:
            raise Violation("; ".join(self.violations))
        holders = [m.market_id for m in self.markets.values() if CHARACTER in m.active]
        if holders != [log_holder(self.disk, CHARACTER)]:
            raise Violation(f"settled with the character in {holders}: {self.describe()}")
        if self.markets[holders[0]].active[CHARACTER] != CARRIED:
            raise Violation("the character's state changed on the way")
        return self

    def describe(self) -> str:
        transfers = {t.transfer_id[:6]: t.state for t in self.book._transfers.values()}
        active = {m.name: sorted(m.active) for m in self.markets.values()}
        return f"up={self.up} transfers={transfers} active={active}"


def _market_of(process: str) -> int:
    return next(m for m, name in MARKET_NAMES.items() if name == process)
