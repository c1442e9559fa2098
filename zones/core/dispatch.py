"""Handing NPC decision requests to contributors, and taking their answers: pure logic.

The zones issue decision requests (npc.py): an NPC, its lease, its observation. A
`Dispatcher` keeps the contributors connected to one place (a web process) and the
requests waiting or out, and decides who is asked what. It does no I/O and reads no
clock: every call takes `now` (seconds), and what it returns says what to send.

* A contributor declares a capacity (decisions it works on at once). It is given at
  most that many, fewer while it has no measured record: a newcomer starts at
  `TRIAL_CAPACITY`, and its share grows with the valid decisions it actually returns
  (`Contributor.weight`: valid answers per second over a sliding window, times its
  valid share). Among contributors with room, a request goes to the one with the
  lowest load per weight, so throughput, not what a contributor claims, decides.
* A request out to a contributor for `RESEND_AFTER_S` without an answer is sent to
  another one (the first one's answer, if it comes later, still counts if it is
  first to reach the zone: the zone applies one answer per lease). A request older
  than its deadline is dropped: the zone's lease has lapsed and the zone has
  applied its own utility decision.
* A contributor silent for `SILENT_AFTER_S` (no heartbeat and no answer) is
  dropped, and everything it held goes back to the queue at once.
* An answer is taken (`answer`) only from the contributor the request is out to,
  only while the lease is live, only once, only if it parses (`parse_answer`), and
  only within the contributor's rate limit. Anything else is refused with a
  reason and never reaches a zone.
* A contributor whose refusals pass `BAN_AFTER_INVALID` in a row, or whose invalid
  share passes `BAN_INVALID_SHARE` after `BAN_MIN_ANSWERS` answers, is banned for
  `ban_seconds`.
"""

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .constants import MAX_WAIT_S, SIM_TICK_HZ
from .wire import ANSWER_DTYPE, Action

HEARTBEAT_EVERY_S = 10.0
SILENT_AFTER_S = 30.0
RESEND_AFTER_S = 2.0
DEADLINE_S = 5.0
TRIAL_CAPACITY = 2
MAX_CAPACITY = 256
RATE_PER_S = 500.0
"""Answers per second a contributor may send (a burst of RATE_BURST, then this rate)."""
RATE_BURST = 1000.0
WINDOW_S = 30.0
BAN_AFTER_INVALID = 20
BAN_MIN_ANSWERS = 50
BAN_INVALID_SHARE = 0.5
BAN_SECONDS = 3600.0
DESPERATE = 25.0
"""A need at or below this, with an item in sight that restores it free, makes ignoring
it unreasonable (`reasonable`)."""
SUSPICION_LIMIT = 8.0
"""Unreasonable decisions (each 1, forgiven by a tenth per reasonable one) past which a
contributor is banned."""
TRUST_STEP = 5
"""Spot checks: a contributor with n valid decisions in a row has each checked with
probability 1 / (1 + n / TRUST_STEP), at least MIN_CHECK."""
MIN_CHECK = 0.02
QUEUED_KEPT = 20_000

NOT_ITS_FAULT = frozenset({"applied", "stale_lease", "not_held"})
"""Zone results that do not count against a contributor: the lease lapsed or the NPC
moved on while its answer was on the way."""

ACTIONS = {"move_to": Action.MOVE_TO, "use_item": Action.USE_ITEM, "talk_to": Action.TALK_TO}
ACTIONS["wait"] = Action.WAIT


class AnswerError(ValueError):
    """An answer that is not a decision: the message says what is wrong."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


def _number(obj: dict[str, Any], key: str) -> float:
    value = obj.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise AnswerError("schema", f"{key} must be a number")
    if not math.isfinite(value):
        raise AnswerError("schema", f"{key} must be finite")
    return float(value)


def _id(obj: dict[str, Any], key: str) -> int:
    value = obj.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 2**64:
        raise AnswerError("schema", f"{key} must be a positive integer id")
    return value


def parse_answer(obj: Any) -> np.ndarray:
    """One ANSWER_DTYPE row from a decision in its JSON form; AnswerError says why not.

    {"npc": 12, "lease": 3, "action": "move_to", "to": [x, z]}
    {"npc": 12, "lease": 3, "action": "use_item", "item": 281474976710656}
    {"npc": 12, "lease": 3, "action": "talk_to", "target": 13}
    {"npc": 12, "lease": 3, "action": "wait", "seconds": 2.5}
    """
    if not isinstance(obj, dict):
        raise AnswerError("schema", "a decision is an object")
    row = np.zeros(1, ANSWER_DTYPE)
    row["id"] = _id(obj, "npc")
    lease = obj.get("lease")
    if isinstance(lease, bool) or not isinstance(lease, int) or not 0 < lease < 2**32:
        raise AnswerError("schema", "lease must be a positive integer")
    row["lease"] = lease
    name = obj.get("action")
    if name not in ACTIONS:
        raise AnswerError("unknown_action", f"action must be one of {sorted(ACTIONS)}")
    action = ACTIONS[name]
    row["action"] = action
    if action == Action.MOVE_TO:
        to = obj.get("to")
        if not isinstance(to, list) or len(to) not in (2, 3):
            raise AnswerError("schema", "to must be [x, z] or [x, y, z] in metres")
        point = {f"to[{i}]": v for i, v in enumerate(to)}
        xs = [_number(point, f"to[{i}]") for i in range(len(to))]
        row["goal"] = (xs[0], 1.0, xs[-1])
    elif action == Action.USE_ITEM:
        row["target"] = _id(obj, "item")
    elif action == Action.TALK_TO:
        row["target"] = _id(obj, "target")
    else:
        seconds = _number(obj, "seconds")
        if not 0 < seconds <= MAX_WAIT_S:
            raise AnswerError("schema", f"seconds must be in (0, {MAX_WAIT_S:g}]")
        row["ticks"] = max(1, round(seconds * SIM_TICK_HZ))
    return row


@dataclass
class Request:
    """A decision request waiting or out."""

    npc: int
    lease: int
    zone: int
    observation: dict[str, Any]
    issued: float  # when the zone issued it
    received: float = 0.0  # when it reached this dispatcher
    holder: str | None = None  # contributor it is out to
    sent: float = 0.0
    tried: set[str] = field(default_factory=set)
    priority: float = 1.0

    @property
    def key(self) -> tuple[int, int]:
        return (self.npc, self.lease)


@dataclass
class Contributor:
    """One connected contributor and what has been measured of it."""

    name: str
    capacity: int
    seen: float
    held: set[tuple[int, int]] = field(default_factory=set)
    last_resort: bool = False  # the server's own endpoint: asked only when no one else can be
    valid: deque[float] = field(default_factory=deque)  # when each valid answer came
    answers: int = 0
    invalid: int = 0
    invalid_run: int = 0
    streak: int = 0  # valid decisions in a row (spot checks thin out as it grows)
    checked: int = 0
    suspicion: float = 0.0
    tokens: float = RATE_BURST
    tokens_at: float = 0.0
    latencies: deque[float] = field(default_factory=lambda: deque(maxlen=500))
    queue_length: int = 0
    decision_ms: float = 0.0
    given: int = 0  # requests handed to it
    lapsed: int = 0  # of those, taken back unanswered: resent, expired or left when it went

    def fallback_share(self) -> float:
        """The share of the requests it was given that others, or the zones, decided."""
        return 0.0 if self.given == 0 else min(1.0, self.lapsed / self.given)

    def throughput(self, now: float) -> float:
        while self.valid and self.valid[0] < now - WINDOW_S:
            self.valid.popleft()
        return len(self.valid) / WINDOW_S

    def valid_share(self) -> float:
        return 1.0 if self.answers == 0 else 1.0 - self.invalid / self.answers

    def weight(self, now: float) -> float:
        """Measured valid decisions per second, times the share of its answers that are valid."""
        return max(self.throughput(now), 0.05) * max(self.valid_share(), 0.05)

    def room(self, now: float) -> int:
        """How many more requests it may hold: its declared capacity, held to what it has
        shown it can do (twice its valid answers of the window, at least TRIAL_CAPACITY)."""
        if self.last_resort:
            return max(0, self.capacity - len(self.held))
        shown = TRIAL_CAPACITY + 2 * len(self.valid)
        return max(0, min(self.capacity, shown, MAX_CAPACITY) - len(self.held))


@dataclass
class Refusal:
    reason: str
    detail: str = ""


@dataclass
class Dispatcher:
    """Requests and contributors of one place; see the module docstring."""

    ban_seconds: float = BAN_SECONDS
    contributors: dict[str, Contributor] = field(default_factory=dict)
    requests: dict[tuple[int, int], Request] = field(default_factory=dict)
    banned: dict[str, float] = field(default_factory=dict)  # key → until
    decided: int = 0
    expired: int = 0
    refused: dict[str, int] = field(default_factory=dict)
    answered: dict[tuple[int, int], str] = field(default_factory=dict)  # → who answered
    recent: deque[tuple[float, int, float]] = field(default_factory=deque)
    """(when, Outcome, latency s) of the last WINDOW_S: the market-wide rates of `stats`."""
    clock: float = 0.0  # the newest `now` it was given
    queued: deque[float] = field(default_factory=lambda: deque(maxlen=QUEUED_KEPT))
    """Seconds each request waited here, from `offer` to its first send."""

    # --- contributors ----------------------------------------------------------------------

    def join(self, name: str, key: str, capacity: Any, now: float) -> Refusal | None:
        """A contributor connects with `key`; a refusal when it is banned or its capacity
        is not a positive integer."""
        until = self.banned.get(key, 0.0)
        if until > now:
            return Refusal("banned", f"until {until:.0f}")
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
            return Refusal("schema", "capacity must be a positive integer")
        self.contributors[name] = Contributor(name, min(capacity, MAX_CAPACITY), seen=now)
        return None

    def heartbeat(self, name: str, now: float, queue: Any = 0, decision_ms: Any = 0.0) -> None:
        c = self.contributors.get(name)
        if c is None:
            return
        c.seen = now
        if isinstance(queue, int) and not isinstance(queue, bool):
            c.queue_length = queue
        if isinstance(decision_ms, (int, float)) and math.isfinite(decision_ms):
            c.decision_ms = float(decision_ms)

    def leave(self, name: str) -> None:
        """A contributor is gone: what it held goes back to the queue."""
        c = self.contributors.pop(name, None)
        if c is None:
            return
        for key in c.held:
            request = self.requests.get(key)
            if request is not None and request.holder == name:
                request.holder = None
                c.lapsed += 1

    def ban(self, name: str, key: str, now: float) -> None:
        self.banned[key] = now + self.ban_seconds
        self.leave(name)

    # --- requests --------------------------------------------------------------------------

    def offer(
        self, zone: int, observations: list[dict[str, Any]], now: float, age: float = 0.0
    ) -> int:
        """Requests a zone issued `age` seconds ago, each an observation naming its NPC and
        lease; returns how many were taken (none once their deadline has passed: a
        message that waited on the channel while nobody received it)."""
        self.clock = now
        if age >= DEADLINE_S:
            self.expired += len(observations)
            self.recent.extend((now, Outcome.EXPIRED, 0.0) for _ in observations)
            return 0
        for obs in observations:
            request = Request(
                int(obs["npc"]), int(obs["lease"]), zone, obs, issued=now - age, received=now
            )
            request.priority = priority(obs)
            self.requests[request.key] = request
        return len(observations)

    def assign(self, now: float) -> dict[str, list[Request]]:
        """What to send to whom now: new requests, requests left by silent or slow
        contributors. Drops silent contributors and requests past their deadline."""
        self.clock = now
        for name in [n for n, c in self.contributors.items() if now - c.seen > SILENT_AFTER_S]:
            self.leave(name)
        out: dict[str, list[Request]] = {}
        for key in [k for k, r in self.requests.items() if now - r.issued > DEADLINE_S]:
            holder = self.contributors.get(self.requests[key].holder or "")
            if holder is not None:
                holder.lapsed += 1
            self._drop(key)
            self.expired += 1
            self.recent.append((now, Outcome.EXPIRED, 0.0))
        waiting = sorted(
            (
                r
                for r in self.requests.values()
                if r.holder is None or now - r.sent > RESEND_AFTER_S
            ),
            key=lambda r: (-r.priority, r.issued),
        )
        if not waiting or not self.contributors:
            return out
        for request in waiting:
            chosen = self._choose(request, now)
            if chosen is None:
                continue
            if request.holder is not None:
                old = self.contributors.get(request.holder)
                if old is not None:
                    old.held.discard(request.key)
                    old.lapsed += 1
            if not request.tried:
                self.queued.append(now - request.received)
            request.holder, request.sent = chosen.name, now
            request.tried.add(chosen.name)
            chosen.held.add(request.key)
            chosen.given += 1
            out.setdefault(chosen.name, []).append(request)
        return out

    def _choose(self, request: Request, now: float) -> Contributor | None:
        best: Contributor | None = None
        best_load = math.inf
        fallback: Contributor | None = None
        for c in self.contributors.values():
            if c.name == request.holder or c.room(now) <= 0:
                continue
            if c.last_resort:
                fallback = c
                continue
            load = (len(c.held) + 1) / c.weight(now)
            if c.name in request.tried:
                load *= 4  # someone who has not seen it yet first
            if load < best_load:
                best, best_load = c, load
        return best if best is not None else fallback

    def join_last_resort(self, name: str, capacity: int, now: float) -> None:
        """The server's own decision endpoint: given requests no contributor has room for,
        and requests a contributor left unanswered. It is never dropped as silent."""
        self.contributors[name] = Contributor(name, capacity, seen=math.inf, last_resort=True)

    def _drop(self, key: tuple[int, int]) -> None:
        request = self.requests.pop(key, None)
        if request is not None and request.holder is not None:
            c = self.contributors.get(request.holder)
            if c is not None:
                c.held.discard(key)

    # --- answers ---------------------------------------------------------------------------

    def answer(self, name: str, obj: Any, now: float) -> tuple[int, np.ndarray] | Refusal:
        """(zone, ANSWER_DTYPE row) to hand to the zone, or why the answer is refused."""
        self.clock = now
        c = self.contributors.get(name)
        if c is None:
            return Refusal("unknown_contributor")
        if not c.last_resort:
            c.seen = now
        c.tokens = min(RATE_BURST, c.tokens + (now - c.tokens_at) * RATE_PER_S)
        c.tokens_at = now
        if c.tokens < 1.0:
            return self._refuse(c, "rate_limited", "too many answers")
        c.tokens -= 1.0
        try:
            row = parse_answer(obj)
        except AnswerError as exc:
            return self._refuse(c, exc.reason, str(exc))
        key = (int(row["id"][0]), int(row["lease"][0]))
        request = self.requests.get(key)
        if request is None:
            return self._refuse(c, "stale_lease", "no such request (late, answered or unknown)")
        if name not in request.tried:
            return self._refuse(c, "not_leased", "that NPC's lease is not held by you")
        if _spot_checked(c, key):
            c.checked += 1
            if not reasonable(request.observation, obj):
                c.suspicion += 1.0
                c.streak = 0
                self.refused["unreasonable"] = self.refused.get("unreasonable", 0) + 1
            else:
                c.suspicion = max(0.0, c.suspicion - 0.1)
        self._drop(key)
        c.held.discard(key)
        c.streak += 1
        c.answers += 1
        c.invalid_run = 0
        c.valid.append(now)
        c.latencies.append(now - request.sent)
        self.decided += 1
        by = Outcome.LAST_RESORT if c.last_resort else Outcome.DECIDED
        self.recent.append((now, by, now - request.issued))
        self.answered[key] = name
        if len(self.answered) > 4 * MAX_CAPACITY * max(len(self.contributors), 1):
            self.answered.pop(next(iter(self.answered)))
        return request.zone, row

    def result(self, npc: int, lease: int, reason: str) -> str | None:
        """What the zone made of an answer handed to it; the contributor that gave it."""
        name = self.answered.pop((npc, lease), None)
        if name is not None and reason not in NOT_ITS_FAULT:
            self.zone_refused(name, reason)
        return name

    def zone_refused(self, name: str, reason: str) -> None:
        """The zone refused an answer this contributor gave (occupied, out of range...)."""
        c = self.contributors.get(name)
        if c is None:
            return
        c.invalid += 1
        c.invalid_run += 1
        c.streak = 0
        if c.valid:
            c.valid.pop()
        self.refused[reason] = self.refused.get(reason, 0) + 1
        self.recent.append((self.clock, Outcome.ZONE_REFUSED, 0.0))

    def _refuse(self, c: Contributor, reason: str, detail: str) -> Refusal:
        self.refused[reason] = self.refused.get(reason, 0) + 1
        if reason != "rate_limited":
            c.answers += 1
            c.invalid += 1
            c.invalid_run += 1
            self.recent.append((self.clock, Outcome.REFUSED, 0.0))
        return Refusal(reason, detail)

    def should_ban(self, name: str) -> bool:
        """Whether the contributor's record says it answers nonsense."""
        c = self.contributors.get(name)
        if c is None:
            return False
        if c.invalid_run >= BAN_AFTER_INVALID or c.suspicion > SUSPICION_LIMIT:
            return True
        return c.answers >= BAN_MIN_ANSWERS and 1 - c.valid_share() > BAN_INVALID_SHARE

    def stats(self, now: float) -> dict[str, Any]:
        """Figures for operators: per contributor, and in all."""
        rows = []
        for c in self.contributors.values():
            lat = sorted(c.latencies)
            rows.append(
                {
                    "name": c.name,
                    "capacity": c.capacity,
                    "held": len(c.held),
                    "decisions_per_min": round(c.throughput(now) * 60, 1),
                    "valid_share": round(c.valid_share(), 3),
                    "checked": c.checked,
                    "suspicion": round(c.suspicion, 2),
                    "latency_p50_ms": ms_at(lat, 0.50),
                    "latency_p95_ms": ms_at(lat, 0.95),
                    "fallback_share": round(c.fallback_share(), 3),
                    "last_resort": c.last_resort,
                }
            )
        return {
            **self.rates(now),
            "contributors": rows,
            "waiting": sum(1 for r in self.requests.values() if r.holder is None),
            "out": sum(1 for r in self.requests.values() if r.holder is not None),
            "decided": self.decided,
            "expired": self.expired,
            "refused": dict(self.refused),
            "banned": len([k for k, u in self.banned.items() if u > now]),
        }

    def rates(self, now: float) -> dict[str, float | None]:
        """The market's figures over the last WINDOW_S: decisions a minute (by contributors
        and the server's endpoint), their latency from the zone's request (mean, p50, p95), the share
        of answers that were valid, and the share of requests decided by a fallback (the
        server's endpoint, or the zones themselves when nobody answered in time)."""
        while self.recent and self.recent[0][0] < now - WINDOW_S:
            self.recent.popleft()
        counts = [0] * len(Outcome.ALL)
        latencies = []
        for _, outcome, seconds in self.recent:
            counts[outcome] += 1
            if outcome in (Outcome.DECIDED, Outcome.LAST_RESORT):
                latencies.append(seconds)
        latency = sum(latencies)
        latencies.sort()
        decided = counts[Outcome.DECIDED] + counts[Outcome.LAST_RESORT]
        answers = decided + counts[Outcome.REFUSED]
        requests = decided + counts[Outcome.EXPIRED]
        invalid = counts[Outcome.REFUSED] + counts[Outcome.ZONE_REFUSED]
        fallbacks = counts[Outcome.LAST_RESORT] + counts[Outcome.EXPIRED]
        return {
            "decisions_per_min": round(decided * 60 / WINDOW_S, 1),
            "latency_avg_ms": round(1000 * latency / decided, 1) if decided else None,
            "latency_p50_ms": ms_at(latencies, 0.50),
            "latency_p95_ms": ms_at(latencies, 0.95),
            "success_rate": round(max(0.0, 1 - invalid / answers), 3) if answers else None,
            "fallback_rate": round(fallbacks / requests, 3) if requests else None,
        }


def ms_at(ordered: list[float], share: float, digits: int = 1) -> float | None:
    """The value at `share` of sorted seconds, in ms; None for none."""
    if not ordered:
        return None
    return round(1000 * ordered[min(len(ordered) - 1, int(len(ordered) * share))], digits)


class Outcome:
    """What became of a request or an answer, as `Dispatcher.recent` keeps it."""

    DECIDED = 0  # a contributor's answer taken
    LAST_RESORT = 1  # the server's endpoint's answer taken
    EXPIRED = 2  # nobody answered in time: the zone decided itself
    REFUSED = 3  # an answer refused before reaching a zone
    ZONE_REFUSED = 4  # an answer the zone refused (occupied, out of range...)
    ALL = (DECIDED, LAST_RESORT, EXPIRED, REFUSED, ZONE_REFUSED)


def priority(obs: dict[str, Any]) -> float:
    """How much a request matters: urgency × visibility × interaction weight.

    Urgency is the worst need's deficit squared (0-1, a floor of 0.05); visibility is 1 +
    the visitors in sight, so NPCs people watch decide first; an NPC with a visitor
    within 3 m (someone it may be talking to) weighs twice.
    """
    needs = obs.get("needs") or {}
    worst = min((float(v) for v in needs.values()), default=100.0)
    urgency = max(((100.0 - worst) / 100.0) ** 2, 0.05)
    visitors = obs.get("visitors") or ()
    close = any(float(v.get("distance", 99.0)) <= 3.0 for v in visitors)
    return urgency * (1 + len(visitors)) * (2.0 if close else 1.0)


def reasonable(obs: dict[str, Any], decision: dict[str, Any]) -> bool:
    """Whether a decision is one a sensible NPC could take, spot-checked against what the
    built-in utility decision sees in the same observation.

    Unreasonable: using an item the NPC does not see, talking to someone it does not see,
    or, with a need at or below DESPERATE and a free item in sight restoring it, doing
    anything but use an item.
    """
    items = {int(i["id"]): i for i in obs.get("items", ())}
    action = decision.get("action")
    if action == "use_item":
        return int(decision.get("item", 0)) in items
    if action == "talk_to":
        seen = {int(e["id"]) for e in (*obs.get("npcs", ()), *obs.get("visitors", ()))}
        if int(decision.get("target", 0)) not in seen:
            return False
    needs = obs.get("needs") or {}
    for need, value in needs.items():
        if float(value) > DESPERATE:
            continue
        for item in items.values():
            if item.get("free", 0) > 0 and float(item.get("restores", {}).get(need, 0)) > 0:
                return False
    return True


def _spot_checked(c: Contributor, key: tuple[int, int]) -> bool:
    """Whether this answer is checked: likelier the shorter its contributor's valid streak.
    Drawn from the request's (npc, lease), so a run is the same every time."""
    p = max(MIN_CHECK, 1.0 / (1.0 + c.streak / TRUST_STEP))
    h = (key[0] * 0x9E3779B97F4A7C15 + key[1] * 0xBF58476D1CE4E5B9) & (2**64 - 1)
    return ((h >> 11) & 0xFFFFF) / float(1 << 20) < p
