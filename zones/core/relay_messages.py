"""Messages between a web process's gateway and the zones: plain data with a wire form.

Towards a zone: `Inputs` (one per zone per tick: the visitors' commands and the
ids the gateway vouches for), `Spawn` (a visitor's new entity) and `Despawn`
(visitors who left); and between zones, `Load` (a zone's load, once a second, to the
zone planning splits and merges, repartition.py). Towards a gateway: `Spawned` (which spawns the zone took)
and `Rejected` (commands the zone refused). A zone's health is not among them: it
travels in the market summary, not between gateway and zone.

As with the zone-to-zone messages (messages.py), `relay_to_wire` gives a dict of
ints, strings and bytes that any channel layer can carry; `to_zone_from_wire` and
`to_gateway_from_wire` validate and rebuild one, each accepting only the messages
meant for its side, and raise MessageError for anything malformed.
"""

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .messages import MessageError
from .wire import COMMAND_DTYPE, SPAWN_DTYPE, from_bytes

IDS_DTYPE = np.dtype("<u8")
"""Entity ids on the wire: little-endian u64, 8 bytes each."""
CODES_DTYPE = np.dtype("<u4")
"""Hilbert codes on the wire: little-endian u32, 4 bytes each."""


@dataclass(frozen=True)
class Inputs:
    """Gateway → zone, once per tick: commands (COMMAND_DTYPE) and vouched-for ids.

    `gateway` is the channel the zone sends rejected commands back to; `alive` renews
    the lease of each visitor it names.
    """

    gateway: str
    commands: np.ndarray = field(repr=False)
    alive: np.ndarray = field(repr=False)
    type = "zone.inputs"


@dataclass(frozen=True)
class Spawn:
    """Gateway → zone: create these entities (SPAWN_DTYPE); answer on `gateway`."""

    gateway: str
    rows: np.ndarray = field(repr=False)
    type = "zone.spawn"


@dataclass(frozen=True)
class Despawn:
    """Gateway → zone: remove these entities (u64 ids), whatever their status here."""

    ids: np.ndarray = field(repr=False)
    type = "zone.despawn"


@dataclass(frozen=True)
class Load:
    """Zone → the planning zone, once a second: what `repartition_decide` needs of it.

    `codes` are the Hilbert codes of every entity it holds with authority (owned or
    staging out), sorted: the planner cuts a split at their median and sees in them
    whether a handoff is over. `version` is that of the zone's map when it measured.
    """

    zone: int
    version: int
    slots: int  # authority slots in use
    tick_us: int  # its step time over the last second (the median), microseconds
    worker_us: int  # the same summed over every zone of its worker process
    codes: np.ndarray = field(repr=False)
    type = "zone.load"


@dataclass(frozen=True)
class Spawned:
    """Zone → gateway: of the spawn requested, these ids were created, these refused."""

    zone: int
    spawned: np.ndarray = field(repr=False)
    refused: np.ndarray = field(repr=False)
    reason: str  # why the refused ones were: "booth_full" or "quarantined"
    type = "zone.spawned"


@dataclass(frozen=True)
class Rejected:
    """Zone → gateway: these commands (COMMAND_DTYPE) were refused; nothing moved."""

    zone: int
    commands: np.ndarray = field(repr=False)
    type = "zone.rejected"


ToZone = Inputs | Spawn | Despawn | Load
ToGateway = Spawned | Rejected
RelayMessage = ToZone | ToGateway

# Each message's wire fields: str, int (non-negative) or the dtype of a bytes payload.
_FIELDS: dict[Any, dict[str, Any]] = {
    Inputs: {"gateway": str, "commands": COMMAND_DTYPE, "alive": IDS_DTYPE},
    Spawn: {"gateway": str, "rows": SPAWN_DTYPE},
    Despawn: {"ids": IDS_DTYPE},
    Load: {
        "zone": int,
        "version": int,
        "slots": int,
        "tick_us": int,
        "worker_us": int,
        "codes": CODES_DTYPE,
    },
    Spawned: {"zone": int, "spawned": IDS_DTYPE, "refused": IDS_DTYPE, "reason": str},
    Rejected: {"zone": int, "commands": COMMAND_DTYPE},
}
_TO_ZONE: dict[str, Any] = {cls.type: cls for cls in (Inputs, Spawn, Despawn, Load)}
_TO_GATEWAY: dict[str, Any] = {cls.type: cls for cls in (Spawned, Rejected)}
TO_ZONE_TYPES = frozenset(_TO_ZONE)
"""The `type` of every message a zone hears that its step does not take (a gateway's, and
zones' loads): the rest are the zone-to-zone messages of messages.py."""


def relay_to_wire(message: RelayMessage) -> dict[str, Any]:
    """Plain dict form: type, then each field as a string, an int or bytes."""
    wire: dict[str, Any] = {"type": message.type}
    for name, kind in _FIELDS[type(message)].items():
        value = getattr(message, name)
        if isinstance(kind, np.dtype):
            value = np.ascontiguousarray(value, dtype=kind).tobytes()
        wire[name] = value
    return wire


def to_zone_from_wire(wire: Any) -> ToZone:
    """Rebuild a message meant for a zone; MessageError for anything else or malformed."""
    message: ToZone = _from_wire(wire, _TO_ZONE, "zone")
    return message


def to_gateway_from_wire(wire: Any) -> ToGateway:
    """Rebuild a message meant for a gateway; MessageError for anything else or malformed."""
    message: ToGateway = _from_wire(wire, _TO_GATEWAY, "gateway")
    return message


def _from_wire(wire: Any, classes: dict[str, Any], side: str) -> Any:
    if not isinstance(wire, dict):
        raise MessageError(f"a message to a {side} must be a dict, got {type(wire).__name__}")
    cls = classes.get(str(wire.get("type")))
    if cls is None:
        raise MessageError(f"unknown message type for a {side}: {wire.get('type')!r}")
    fields = {}
    for name, kind in _FIELDS[cls].items():
        if name not in wire:
            raise MessageError(f"{cls.type}: missing field {name!r}")
        fields[name] = _field(cls.type, name, kind, wire[name])
    return cls(**fields)


def _field(what: str, name: str, kind: Any, value: Any) -> Any:
    if kind is str:
        if not isinstance(value, str):
            raise MessageError(f"{what}: field {name} must be a string, got {value!r}")
        return value
    if kind is int:
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise MessageError(
                f"{what}: field {name} must be a non-negative integer, got {value!r}"
            )
        return value
    if not isinstance(value, (bytes, bytearray)):
        raise MessageError(f"{what}: field {name} must be bytes, got {type(value).__name__}")
    try:
        return from_bytes(bytes(value), kind, f"{what} {name}")
    except ValueError as exc:
        raise MessageError(str(exc)) from exc
