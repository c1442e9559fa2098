"""Messages between zones: plain data with a wire form of basic types.

Every message is batched per link and tick: one intent message carries all the
rows a zone hands to one target in that tick, one reply message all its answers
to one source. `to_wire` gives a dict of ints, strings and bytes that any
channel layer can carry; `message_from_wire` validates and rebuilds it.
"""

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .ranges import RangeMap
from .wire import COMMAND_DTYPE, MIGRANT_DTYPE, REPLY_DTYPE, TRANSFER_DTYPE, from_bytes


class MessageError(ValueError):
    """A zone message that cannot be understood."""


@dataclass(frozen=True)
class Intent:
    """Source → target: take these entities (MIGRANT_DTYPE rows)."""

    src: int
    dst: int
    hlc: int
    rows: np.ndarray = field(repr=False)
    type = "zone.intent"


@dataclass(frozen=True)
class Ack:
    """Target → source: these transfers are accepted and promoted (REPLY_DTYPE)."""

    src: int
    dst: int
    hlc: int
    replies: np.ndarray = field(repr=False)
    type = "zone.ack"


@dataclass(frozen=True)
class Nack:
    """Target → source: these transfers are refused; the source keeps them."""

    src: int
    dst: int
    hlc: int
    replies: np.ndarray = field(repr=False)
    type = "zone.nack"


@dataclass(frozen=True)
class Forward:
    """Source → target: movement commands for entities in flight (COMMAND_DTYPE)."""

    src: int
    dst: int
    hlc: int
    commands: np.ndarray = field(repr=False)
    type = "zone.forward"


@dataclass(frozen=True)
class InFlight:
    """Any zone → every other, once a second: every transfer the sender has in flight to
    the receiver (TRANSFER_DTYPE), as of `hlc`; what lets the receiver forget decisions."""

    src: int
    dst: int
    hlc: int
    transfers: np.ndarray = field(repr=False)
    type = "zone.in_flight"


@dataclass(frozen=True)
class Gossip:
    """Any zone → any zone: the sender's range map."""

    src: int
    dst: int
    hlc: int
    ranges: RangeMap
    type = "zone.gossip"


Message = Intent | Ack | Nack | Forward | InFlight | Gossip

_ARRAY_FIELD: dict[Any, tuple[str, np.dtype[Any]]] = {
    Intent: ("rows", MIGRANT_DTYPE),
    Ack: ("replies", REPLY_DTYPE),
    Nack: ("replies", REPLY_DTYPE),
    Forward: ("commands", COMMAND_DTYPE),
    InFlight: ("transfers", TRANSFER_DTYPE),
}
_BY_TYPE: dict[str, Any] = {cls.type: cls for cls in (Intent, Ack, Nack, Forward, InFlight, Gossip)}


def message_to_wire(message: Message) -> dict[str, Any]:
    """Plain dict form: type, src, dst, hlc and the payload as bytes or lists."""
    wire: dict[str, Any] = {
        "type": message.type,
        "src": message.src,
        "dst": message.dst,
        "hlc": message.hlc,
    }
    if isinstance(message, Gossip):
        wire["ranges"] = message.ranges.to_wire()
    else:
        name, _ = _ARRAY_FIELD[type(message)]
        wire[name] = np.ascontiguousarray(getattr(message, name)).tobytes()
    return wire


def message_from_wire(wire: Any) -> Message:
    """Rebuild a message, raising MessageError for anything malformed."""
    if not isinstance(wire, dict):
        raise MessageError(f"a zone message must be a dict, got {type(wire).__name__}")
    cls = _BY_TYPE.get(str(wire.get("type")))
    if cls is None:
        raise MessageError(f"unknown zone message type {wire.get('type')!r}")
    try:
        header = {key: _non_negative_int(wire[key], key) for key in ("src", "dst", "hlc")}
        if cls is Gossip:
            return Gossip(ranges=RangeMap.from_wire(wire["ranges"]), **header)
        name, dtype = _ARRAY_FIELD[cls]
        payload = wire[name]
        if not isinstance(payload, (bytes, bytearray)):
            raise MessageError(f"{cls.type}: {name} must be bytes")
        return cls(**header, **{name: from_bytes(bytes(payload), dtype, cls.type)})
    except KeyError as exc:
        raise MessageError(f"{cls.type}: missing field {exc}") from exc
    except ValueError as exc:
        if isinstance(exc, MessageError):
            raise
        raise MessageError(str(exc)) from exc


def _non_negative_int(value: Any, key: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise MessageError(f"field {key} must be a non-negative integer, got {value!r}")
    return value


def replies(ids: np.ndarray, epochs: np.ndarray, reasons: np.ndarray) -> np.ndarray:
    """Pack answers into REPLY_DTYPE rows."""
    out = np.zeros(len(ids), dtype=REPLY_DTYPE)
    out["id"], out["epoch"], out["reason"] = ids, epochs, reasons
    return out
