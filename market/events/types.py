"""Every market event: its type name, its version, its typed payload and its subject.

An event is a frozen dataclass. Its payload is its fields, checked against their
annotations when it is read back from a stream (`event_from_payload`), so a
consumer never acts on an entry of the wrong shape. A change of a payload's meaning
gets a new VERSION; readers refuse a version they do not know. docs/events.md lists
them all.
"""

import abc
import dataclasses
import functools
import types
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, TypedDict, Union, get_args, get_origin, get_type_hints

from market.events import subjects


class EventError(ValueError):
    """An event payload that does not fit its type's schema."""


class ZoneSummary(TypedDict):
    """One zone's health as the landing page and the dashboard show it."""

    zone: int
    name: str
    colour: str  # "#rrggbb", the booth's colour
    entities: int  # authority slots in use, what the capacity limits
    in_flight: int  # of those, entities staging out or incoming
    capacity: int
    tick_ms: float  # wall time of the zone's last step
    tick_p99_ms: float  # 99th percentile of its steps over the last minute
    migrations_per_s: float
    migrations: int  # handoffs out of this zone acked within the reporting window
    migration_ms_p50: float | None  # first intent → target's ack, this window (None: none)
    migration_ms_p99: float | None
    visitors: int  # visitor roots the zone owns
    subscribers: int  # gateways relaying its visitors
    overruns: int  # ticks of this zone's worker that ran past their slot, since it started
    io_failures: int  # snapshot and log writes and steps that failed, since the worker started
    booth: int  # the booth its range starts in; -1 for a spare zone, serving no range
    lo: int  # its range of the code line [lo, hi) in the map it holds (0, 0: none)
    hi: int
    map_version: int  # of the range map it holds
    health: str  # "ok", "degraded" (ticks overran, or I/O fails), "restarting", "quarantined"
    health_reason: str  # why it is degraded, in a sentence; empty when it is not


class MarketSummary(TypedDict):
    """Every zone of one worker at one tick."""

    tick: int
    hlc: int
    overruns: int  # ticks that took longer than their 50 ms since the start
    zones: list[ZoneSummary]


@dataclass(frozen=True)
class Event(abc.ABC):
    """Base of every event type; subclasses set TYPE and VERSION and name their subject."""

    TYPE: ClassVar[str] = ""
    VERSION: ClassVar[int] = 1
    # Payload keys that differ from the field names (Python reserves some words).
    WIRE_NAMES: ClassVar[dict[str, str]] = {}

    @abc.abstractmethod
    def subject(self, market_id: int) -> str:
        """Where this event is published in market `market_id` (market/events/subjects.py)."""

    def payload(self) -> dict[str, Any]:
        """The event's fields as JSON-ready data, with their wire names."""
        return {
            self.WIRE_NAMES.get(f.name, f.name): getattr(self, f.name)
            for f in dataclasses.fields(self)
        }


@dataclass(frozen=True)
class MarketSummaryReported(Event):
    """A zone worker's summary of the zones it hosts (twice a second)."""

    TYPE = "market_summary"
    tick: int
    hlc: int
    overruns: int
    zones: list[dict[str, Any]]  # ZoneSummary each

    def subject(self, market_id: int) -> str:
        return subjects.ops_summary_subject(market_id)

    def __post_init__(self) -> None:
        for zone in self.zones:
            if not isinstance(zone, dict) or not isinstance(zone.get("zone"), int):
                raise EventError("every zone of a summary is an object with an integer 'zone'")


@dataclass(frozen=True)
class ZoneHealthChanged(Event):
    """The supervisor's word on zones it is restarting or has quarantined, and a worker's
    that its zones run (again). Operators see it, and so do the visitors in those zones."""

    TYPE = "zone_health"
    zones: list[int]
    health: str  # "restarting", "quarantined", "ok"
    reason: str

    HEALTH = ("restarting", "quarantined", "ok")

    def subject(self, market_id: int) -> str:
        return subjects.ops_health_subject(market_id)

    def __post_init__(self) -> None:
        if self.health not in self.HEALTH:
            raise EventError(f"health is one of {', '.join(self.HEALTH)}, not {self.health!r}")


@dataclass(frozen=True)
class ZonesRepartitioned(Event):
    """The planning zone split a busy zone's range or merged two quiet zones back
    (`phase` "planned"), and later saw the handoff over ("done", `took_s` after).

    `starts` and `owners` are the new map: the first code of each range in code order
    and the zone serving it; `booth` is the booth the moved codes [lo, hi) lie in."""

    TYPE = "zones_repartitioned"
    kind: str  # "split" or "merge"
    phase: str  # "planned" or "done"
    version: int
    source: int  # the zone handing [lo, hi) over
    target: int
    lo: int
    hi: int
    booth: int
    starts: list[int]
    owners: list[int]
    took_s: float | None  # plan to handoff over; None when planned
    at_ms: int  # when it was planned, or seen over: the planner's wall clock, ms since 1970

    KINDS = ("split", "merge")
    PHASES = ("planned", "done")

    def subject(self, market_id: int) -> str:
        return subjects.ops_zones_subject(market_id)

    def __post_init__(self) -> None:
        if self.kind not in self.KINDS or self.phase not in self.PHASES:
            raise EventError(
                f"kind is one of {', '.join(self.KINDS)} and phase one of"
                f" {', '.join(self.PHASES)}, not {self.kind!r} and {self.phase!r}"
            )
        if len(self.starts) != len(self.owners):
            raise EventError("a map has as many owners as starts")


@dataclass(frozen=True)
class ZoneChanged(Event):
    """A visitor's entity settled in another zone (the handoff completed)."""

    TYPE = "zone_changed"
    WIRE_NAMES = {"from_zone": "from", "to_zone": "to"}
    entity: int
    from_zone: int
    to_zone: int
    tick_ms: int

    def subject(self, market_id: int) -> str:
        return subjects.visitor_subject(market_id, self.to_zone, self.entity)


@dataclass(frozen=True)
class BoothEntered(Event):
    """A visitor stepped onto another booth's floor."""

    TYPE = "booth_entered"
    entity: int
    zone: int
    name: str
    colour: str

    def subject(self, market_id: int) -> str:
        return subjects.visitor_subject(market_id, self.zone, self.entity)


@dataclass(frozen=True)
class AssetChanged(Event):
    """A booth's asset was published or changed: its manifest is new."""

    TYPE = "asset_changed"
    zone: int  # the booth's zone index
    booth: int  # the booth's id
    asset: int
    name: str
    change: str  # "published" or "changed"

    CHANGES = ("published", "changed")

    def subject(self, market_id: int) -> str:
        return subjects.booth_assets_subject(market_id, self.zone)

    def __post_init__(self) -> None:
        if self.change not in self.CHANGES:
            raise EventError(f"change is one of {', '.join(self.CHANGES)}, not {self.change!r}")


@dataclass(frozen=True)
class GrantChanged(Event):
    """A relation on one of the market's namespaces or booths was granted or revoked."""

    TYPE = "grant_changed"
    object: str
    relation: str
    user: str
    change: str  # "granted" or "revoked"

    CHANGES = ("granted", "revoked")

    def subject(self, market_id: int) -> str:
        return subjects.grants_subject(market_id)

    def __post_init__(self) -> None:
        if self.change not in self.CHANGES:
            raise EventError(f"change is one of {', '.join(self.CHANGES)}, not {self.change!r}")


@dataclass(frozen=True)
class NpcDecisionsReported(Event):
    """A contributor dispatcher's figures (every 10 s while contributors are connected)."""

    TYPE = "npc_decisions"
    VERSION = 2
    contributors: list[dict[str, Any]]  # name, capacity, held, decisions_per_min, ...
    decided: int
    expired: int
    waiting: int
    refused: dict[str, Any]  # reason → count
    # over the last 30 s (zones.core.dispatch.Dispatcher.rates); None: nothing to measure
    decisions_per_min: float
    latency_avg_ms: float | None
    success_rate: float | None
    fallback_rate: float | None
    banned: int  # keys banned now

    def subject(self, market_id: int) -> str:
        return subjects.ops_npcs_subject(market_id)


@dataclass(frozen=True)
class ContributorBanned(Event):
    """A contributor's key is refused for `seconds`: it answered nonsense."""

    TYPE = "contributor_banned"
    contributor: str
    reason: str
    seconds: float

    def subject(self, market_id: int) -> str:
        return subjects.ops_npcs_subject(market_id)


EVENT_TYPES: dict[str, type[Event]] = {
    cls.TYPE: cls
    for cls in (
        MarketSummaryReported,
        ZoneHealthChanged,
        ZonesRepartitioned,
        ZoneChanged,
        BoothEntered,
        AssetChanged,
        GrantChanged,
        NpcDecisionsReported,
        ContributorBanned,
    )
}


Check = Callable[[Any], bool]


def _checker(annotation: Any) -> Check:
    """A function telling whether a JSON value fits `annotation` (built once per field)."""
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        arms = [_checker(arm) for arm in get_args(annotation)]
        return lambda value: any(arm(value) for arm in arms)
    if annotation is type(None):
        return lambda value: value is None
    if annotation is float:
        return lambda value: type(value) in (int, float)
    if annotation is int:
        return lambda value: type(value) is int
    if origin is list:
        item = _checker(get_args(annotation)[0])
        return lambda value: type(value) is list and all(item(v) for v in value)
    if origin is dict:
        return lambda value: type(value) is dict
    return lambda value: isinstance(value, annotation)


@dataclass(frozen=True)
class _Schema:
    """What reading one event type's payload needs: wire name → (field name, check)."""

    fields: dict[str, tuple[str, Check, Any]]


@functools.cache
def _schema(cls: type[Event]) -> _Schema:
    hints = get_type_hints(cls)
    return _Schema(
        {
            cls.WIRE_NAMES.get(f.name, f.name): (f.name, _checker(hints[f.name]), hints[f.name])
            for f in dataclasses.fields(cls)
        }
    )


def event_from_payload(type_name: str, version: int, payload: Any) -> Event:
    """Rebuild an event from its type name, version and payload; EventError if it does not fit."""
    cls = EVENT_TYPES.get(type_name)
    if cls is None:
        raise EventError(f"unknown event type {str(type_name)[:40]!r}")
    if version != cls.VERSION:
        raise EventError(f"{type_name} version {version!r} is not {cls.VERSION}")
    if not isinstance(payload, dict):
        raise EventError(f"the payload of {type_name} is an object")
    fields = _schema(cls).fields
    if payload.keys() != fields.keys():
        missing, extra = set(fields) - set(payload), set(payload) - set(fields)
        raise EventError(
            f"{type_name} payload: missing {sorted(missing)}, unexpected {sorted(extra)[:5]}"
        )
    values = {}
    for wire, (name, fits, annotation) in fields.items():
        value = payload[wire]
        if not fits(value):
            raise EventError(f"{type_name}.{wire} does not fit {annotation}")
        values[name] = value
    return cls(**values)
