"""A zone's write-ahead input log: one binary record per tick, and replay through `step`.

`step` is pure, so a zone's state after tick t is fixed by its state at any
earlier tick and the StepInputs of every tick in between. A worker therefore
writes a full snapshot only every few seconds and, each tick, one record of the
StepInputs exactly as it passed them to `step` (walker steering, lapsed leases
and the tick's wall time included, so replay needs no randomness and no clock).
A restarted zone loads its newest snapshot and `replay`s the records after it.

A record, all little-endian:

    frame    magic u32 = RECORD_MAGIC, body length u32, crc32 of the body u32
    body     tick u64, now_ms u64, messages u16, format u8, rng length u8, flags u8
             (bit 0: the tick delegated NPC decisions),
             the rng bytes (the worker's generator after this tick's draws, or none),
             commands, spawns, despawns, NPC decision answers as arrays,
             then each message: kind u8, src u16, dst u16, hlc u64, and its payload:
             an array, or for gossip the range map's version u64 and starts array,
             and for a map naming its zones otherwise than by index (kind 7) then
             its owners array
    array    dtype tag u8, row size u16, rows u32, then the rows' bytes

A record cut short at the end of a log (a crash in the middle of a write) is
torn: reading stops there and says how many bytes it ignored. A record that
fails its checksum with whole records after it is corruption, an error: the
ticks after it cannot be replayed without it.
"""

import hashlib
import struct
import zlib
from dataclasses import dataclass

import numpy as np

from .messages import Ack, Forward, Gossip, InFlight, Intent, Message, Nack
from .ranges import RangeMap
from .state import _ARRAY_FIELDS, ZoneParams, ZoneState
from .step import StepInputs, step
from .wire import (
    ANSWER_DTYPE,
    COMMAND_DTYPE,
    MIGRANT_DTYPE,
    REPLY_DTYPE,
    SPAWN_DTYPE,
    TRANSFER_DTYPE,
)

RECORD_MAGIC = 0x4C494D46  # bytes "FMIL"
RECORD_FORMAT = 3  # 2: NPC decision answers and the delegate flag; 3: migrants carry seq
FLAG_DELEGATE = 0x1

_FRAME = struct.Struct("<III")
_HEAD = struct.Struct("<QQHBBB")
_ARRAY = struct.Struct("<BHI")
_MESSAGE = struct.Struct("<BHHQ")
_VERSION = struct.Struct("<Q")
_PCG64 = struct.Struct("<QQQQII")

IDS_DTYPE = np.dtype("<u8")
STARTS_DTYPE = np.dtype("<u4")
OWNERS_DTYPE = np.dtype("<u2")
# Tags name the dtype of each array, so a record read by a build whose row formats
# changed fails on the row size instead of replaying misread rows.
_DTYPES: dict[int, np.dtype] = {
    1: COMMAND_DTYPE,
    2: SPAWN_DTYPE,
    3: IDS_DTYPE,
    4: MIGRANT_DTYPE,
    5: REPLY_DTYPE,
    6: STARTS_DTYPE,
    7: TRANSFER_DTYPE,
    8: ANSWER_DTYPE,
    9: OWNERS_DTYPE,
}
_TAGS = {dtype: tag for tag, dtype in _DTYPES.items()}
_KINDS: dict[type, int] = {Intent: 1, Ack: 2, Nack: 3, Forward: 4, Gossip: 5, InFlight: 6}
_PAYLOAD: dict[type, tuple[str, np.dtype]] = {
    Intent: ("rows", MIGRANT_DTYPE),
    Ack: ("replies", REPLY_DTYPE),
    Nack: ("replies", REPLY_DTYPE),
    Forward: ("commands", COMMAND_DTYPE),
    InFlight: ("transfers", TRANSFER_DTYPE),
}
_CLASSES = {tag: cls for cls, tag in _KINDS.items()}
# Gossip of a map whose zones are not named by index (a split or merge was made) has a
# kind of its own: records of maps by index read as before, with no new record format.
_NAMED_GOSSIP = 7
_MASK64 = (1 << 64) - 1


class InputLogError(ValueError):
    """Log bytes that cannot be replayed: corrupt, out of order, or from another format."""


@dataclass(frozen=True)
class LogRecord:
    """One tick as a zone applied it: the tick it produced, its inputs, the worker's rng."""

    tick: int
    inputs: StepInputs
    rng: bytes = b""


@dataclass(frozen=True)
class LogRead:
    """The whole records of a log, and how many bytes of a torn last record were ignored."""

    records: list[LogRecord]
    torn_bytes: int = 0


# --- encoding ------------------------------------------------------------------------------


def encode_record(record: LogRecord) -> bytes:
    """The framed bytes of one record."""
    inputs = record.inputs
    parts = [
        _HEAD.pack(
            record.tick,
            inputs.now_ms,
            len(inputs.messages),
            RECORD_FORMAT,
            len(record.rng),
            FLAG_DELEGATE if inputs.delegate else 0,
        ),
        record.rng,
        *_array(inputs.commands, COMMAND_DTYPE),
        *_array(inputs.spawns, SPAWN_DTYPE),
        *_array(inputs.despawns, IDS_DTYPE),
        *_array(inputs.answers, ANSWER_DTYPE),
    ]
    for message in inputs.messages:
        parts.extend(_message(message))
    body = b"".join(parts)
    return _FRAME.pack(RECORD_MAGIC, len(body), zlib.crc32(body)) + body


def _array(rows: np.ndarray, dtype: np.dtype) -> tuple[bytes, bytes]:
    data = np.ascontiguousarray(rows, dtype=dtype).tobytes()
    return _ARRAY.pack(_TAGS[dtype], dtype.itemsize, len(rows)), data


def _message(message: Message) -> list[bytes]:
    if isinstance(message, Gossip):
        ranges = message.ranges
        kind = _KINDS[Gossip] if ranges.named_by_index else _NAMED_GOSSIP
        head = _MESSAGE.pack(kind, message.src, message.dst, message.hlc)
        parts = [head, _VERSION.pack(ranges.version), *_array(ranges.starts, STARTS_DTYPE)]
        if not ranges.named_by_index:
            parts.extend(_array(ranges.zone_of_range, OWNERS_DTYPE))
        return parts
    head = _MESSAGE.pack(_KINDS[type(message)], message.src, message.dst, message.hlc)
    name, dtype = _PAYLOAD[type(message)]
    return [head, *_array(getattr(message, name), dtype)]


# --- decoding ------------------------------------------------------------------------------


def decode_records(data: bytes) -> LogRead:
    """Every whole record in `data`; a torn last record is ignored, corruption is an error."""
    records: list[LogRecord] = []
    offset = 0
    view = memoryview(data)
    while offset < len(data):
        body = _framed_body(view, offset)
        if body is None:
            if _is_tail(view, offset):
                return LogRead(records, len(data) - offset)
            raise InputLogError(
                f"corrupt input log record at byte {offset} after tick "
                f"{records[-1].tick if records else 'none'}, with more records after it"
            )
        records.append(decode_body(body))
        offset += _FRAME.size + len(body)
    return LogRead(records)


def _framed_body(view: memoryview, offset: int) -> bytes | None:
    """The body of the record at `offset` if it is whole and its checksum holds."""
    if len(view) - offset < _FRAME.size:
        return None
    magic, length, crc = _FRAME.unpack_from(view, offset)
    start = offset + _FRAME.size
    if magic != RECORD_MAGIC or start + length > len(view):
        return None
    body = bytes(view[start : start + length])
    return body if zlib.crc32(body) == crc else None


def _is_tail(view: memoryview, offset: int) -> bool:
    """Whether a bad record at `offset` is the torn end of the log rather than corruption.

    A process killed mid-write leaves a prefix of the record; a machine that lost
    power may also leave the file extended with zeros. Either way nothing whole
    follows: a record whose announced length reaches the end, or zeros to the end.
    """
    if len(view) - offset < _FRAME.size:
        return True
    magic, length, _ = _FRAME.unpack_from(view, offset)
    if magic == RECORD_MAGIC and offset + _FRAME.size + length >= len(view):
        return True
    return not any(view[offset:])


def decode_body(body: bytes) -> LogRecord:
    """One record from its body (the bytes after the frame)."""
    try:
        return _Reader(body).record()
    except (struct.error, KeyError, ValueError) as exc:
        if isinstance(exc, InputLogError):
            raise
        raise InputLogError(f"unreadable input log record: {exc}") from exc


class _Reader:
    """Walks one record body front to back."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.offset = 0

    def take(self, layout: struct.Struct) -> tuple[int, ...]:
        values = layout.unpack_from(self.body, self.offset)
        self.offset += layout.size
        return tuple(int(v) for v in values)

    def array(self, expected: np.dtype) -> np.ndarray:
        tag, itemsize, rows = self.take(_ARRAY)
        dtype = _DTYPES[tag]
        if dtype.itemsize != itemsize or dtype != expected:
            raise InputLogError(f"array of tag {tag} has {itemsize}-byte rows; expected {dtype}")
        end = self.offset + rows * itemsize
        if end > len(self.body):
            raise InputLogError("array runs past the end of its record")
        out = np.frombuffer(self.body, dtype, count=rows, offset=self.offset).copy()
        self.offset = end
        return out

    def record(self) -> LogRecord:
        tick, now_ms, n_messages, fmt, rng_length, flags = self.take(_HEAD)
        if fmt != RECORD_FORMAT:
            raise InputLogError(f"input log format {fmt}, this build reads {RECORD_FORMAT}")
        rng = self.body[self.offset : self.offset + rng_length]
        self.offset += rng_length
        commands = self.array(COMMAND_DTYPE)
        spawns = self.array(SPAWN_DTYPE)
        despawns = self.array(IDS_DTYPE).astype(np.uint64)
        answers = self.array(ANSWER_DTYPE)
        messages = tuple(self.message() for _ in range(n_messages))
        if self.offset != len(self.body):
            raise InputLogError(f"{len(self.body) - self.offset} stray bytes after the record")
        inputs = StepInputs(
            now_ms, messages, commands, spawns, despawns, answers, bool(flags & FLAG_DELEGATE)
        )
        return LogRecord(tick=tick, inputs=inputs, rng=rng)

    def message(self) -> Message:
        kind, src, dst, hlc = self.take(_MESSAGE)
        if kind in (_KINDS[Gossip], _NAMED_GOSSIP):
            (version,) = self.take(_VERSION)
            starts = self.array(STARTS_DTYPE)
            owners = self.array(OWNERS_DTYPE) if kind == _NAMED_GOSSIP else None
            ranges = RangeMap(starts=starts, version=version, owners=owners)
            return Gossip(src=src, dst=dst, hlc=hlc, ranges=ranges)
        cls = _CLASSES[kind]
        name, dtype = _PAYLOAD[cls]
        message: Message = cls(src=src, dst=dst, hlc=hlc, **{name: self.array(dtype)})
        return message


# --- replay --------------------------------------------------------------------------------


def replay(state: ZoneState, records: list[LogRecord], params: ZoneParams) -> ZoneState:
    """`state` advanced through every record after its tick, with the pure `step`.

    Records at or before `state.tick` are already in the state and skipped; a
    missing tick is an error, since every tick after it would replay differently.
    """
    for record in records:
        if record.tick <= state.tick:
            continue
        if record.tick != state.tick + 1:
            raise InputLogError(f"input log jumps from tick {state.tick} to {record.tick}")
        state, _ = step(state, record.inputs, params)
    return state


def state_hash(state: ZoneState) -> str:
    """A digest of everything in a zone's state: equal states, equal digests."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(struct.pack("<qqQQ", state.zone, state.tick, state.hlc, state.ranges.version))
    digest.update(state.ranges.starts.tobytes())
    if not state.ranges.named_by_index:  # maps by index hash as they always did
        digest.update(state.ranges.zone_of_range.tobytes())
    for name in _ARRAY_FIELDS:
        array = np.ascontiguousarray(getattr(state, name))
        digest.update(f"{name}:{array.dtype.str}:{array.shape}".encode())
        digest.update(array.tobytes())
    for name, column in state.decisions.to_arrays().items():  # in an order of their own
        digest.update(f"{name}:{column.dtype.str}:{column.shape}".encode())
        digest.update(column.tobytes())
    return digest.hexdigest()


# --- the worker's random generator ---------------------------------------------------------


def rng_state(rng: np.random.Generator) -> bytes:
    """A PCG64 generator's exact position, in 40 bytes."""
    state = rng.bit_generator.state
    if state["bit_generator"] != "PCG64":
        raise ValueError(f"only PCG64 generators are logged, not {state['bit_generator']}")
    inner = state["state"]
    return _PCG64.pack(
        inner["state"] & _MASK64,
        inner["state"] >> 64,
        inner["inc"] & _MASK64,
        inner["inc"] >> 64,
        state["has_uint32"],
        state["uinteger"],
    )


def rng_restore(rng: np.random.Generator, data: bytes) -> None:
    """Put `rng` (a PCG64 generator) back at the position `rng_state` recorded."""
    state_lo, state_hi, inc_lo, inc_hi, has_uint32, uinteger = _PCG64.unpack(data)
    rng.bit_generator.state = {
        "bit_generator": "PCG64",
        "state": {"state": state_hi << 64 | state_lo, "inc": inc_hi << 64 | inc_lo},
        "has_uint32": has_uint32,
        "uinteger": uinteger,
    }
