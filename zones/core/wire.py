"""Fixed binary row formats shared by zones, gateways and clients.

All little-endian, packed, so a row array's bytes are its wire form. Byte
offsets are listed so other languages can read them.
"""

import struct

import numpy as np

ROW_DTYPE = np.dtype(
    [
        ("id", "<u8"),  # 0: entity id
        ("pos", "<f4", (3,)),  # 8: metres, world (x, y, z), y up
        ("vel", "<f4", (3,)),  # 20: metres per second
        ("hlc", "<u8"),  # 32: hybrid logical clock of this state
        ("epoch", "<u4"),  # 40: fencing epoch of the holder's record
        ("flags", "<u2"),  # 44: RowFlag bits
        ("zone", "<u2"),  # 46: publishing zone
        ("seq", "<u4"),  # 48: highest input seq this entity's zones have taken (visitors)
    ]
)
"""An interest row: one entity's state as published each tick (52 bytes).

`seq` is what a visitor's frames acknowledge: a zone publishes a tick's rows only after
its input log holds that tick, so an input a row counts survives the zone's worker."""

MIGRANT_DTYPE = np.dtype(
    [
        ("id", "<u8"),  # 0
        ("pos", "<f4", (3,)),  # 8
        ("vel", "<f4", (3,)),  # 20
        ("epoch", "<u4"),  # 32: the proposed fencing epoch of this transfer
        ("kind", "<u2"),  # 36: entity kind bits (RowFlag.KIND_MASK)
        ("attempt", "<u2"),  # 38: 1 for the first send, then retransmissions
        ("arrival", "<u8"),  # 40: HLC at which the target takes authority
        ("needs", "<f4", (4,)),  # 48: hunger, hygiene, fun, energy (NPCs; 0 otherwise)
        ("goal", "<f4", (3,)),  # 64: where the NPC is walking to, metres
        ("target", "<u8"),  # 76: item or entity id its action is about
        ("lease", "<u4"),  # 84: sequence number of its newest decision lease
        ("lease_left", "<u2"),  # 88: ticks before that lease lapses; 0: none in flight
        ("action_left", "<u2"),  # 90: ticks left of its current action
        ("decide_in", "<u2"),  # 92: ticks until its next decision is due
        ("npc_state", "<u1"),  # 94: NpcState
        ("action", "<u1"),  # 95: Action
        ("seq", "<u4"),  # 96: highest input seq taken for this entity (visitors)
    ]
)
"""An entity's full row inside a migration intent (100 bytes): the fabric's 48 bytes,
then an NPC's needs, action and decision lease, so they survive a handoff, and the
highest input seq taken, so a visitor's acknowledgements never go back. Ticks are
carried as counts left, not as tick numbers: every zone counts its own ticks."""

ANSWER_DTYPE = np.dtype(
    [
        ("id", "<u8"),  # 0: the NPC decided for
        ("lease", "<u4"),  # 8: the lease the decision answers
        ("action", "<u1"),  # 12: Action
        ("_pad", "<u1"),
        ("ticks", "<u2"),  # 14: how long to wait (wait)
        ("target", "<u8"),  # 16: item (use_item) or entity (talk_to)
        ("goal", "<f4", (3,)),  # 24: where to walk (move_to), metres
    ]
)
"""A decision for one NPC as the zone applies it (36 bytes)."""


class NpcState:
    """Values of ZoneState.npc_state."""

    IDLE = 0
    MOVING = 1
    INTERACTING = 2


class Action:
    """Values of ZoneState.action and ANSWER_DTYPE.action."""

    NONE = 0
    MOVE_TO = 1
    USE_ITEM = 2
    TALK_TO = 3
    WAIT = 4


ACTION_NAMES = {
    Action.MOVE_TO: "move_to",
    Action.USE_ITEM: "use_item",
    Action.TALK_TO: "talk_to",
    Action.WAIT: "wait",
}


class AnswerReason:
    """What became of a decision: applied, or why it changed nothing."""

    APPLIED = 0
    NOT_HELD = 1  # this zone does not own that NPC (gone, handed on, in a handoff, not an NPC)
    STALE_LEASE = 2  # not the lease in flight: late, duplicate, expired or someone else's
    UNKNOWN_ACTION = 3
    OUT_OF_RANGE = 4  # farther than the NPC may walk for one decision, or outside the market
    NO_SUCH_TARGET = 5  # no such item or entity here
    OCCUPIED = 6  # every slot of the item is taken
    BAD_VALUE = 7  # a number that is not finite, or a wait of no time or too long


REASON_NAMES = {
    AnswerReason.APPLIED: "applied",
    AnswerReason.NOT_HELD: "not_held",
    AnswerReason.STALE_LEASE: "stale_lease",
    AnswerReason.UNKNOWN_ACTION: "unknown_action",
    AnswerReason.OUT_OF_RANGE: "out_of_range",
    AnswerReason.NO_SUCH_TARGET: "no_such_target",
    AnswerReason.OCCUPIED: "occupied",
    AnswerReason.BAD_VALUE: "bad_value",
}

REPLY_DTYPE = np.dtype([("id", "<u8"), ("epoch", "<u4"), ("reason", "<u4")])
"""One answer to an intent: ack or nack for (entity, epoch), with a reason code."""

TRANSFER_DTYPE = np.dtype([("id", "<u8"), ("epoch", "<u4")])
"""A transfer a zone has in flight: the entity and the epoch it proposed (12 bytes)."""

COMMAND_DTYPE = np.dtype(
    [
        ("id", "<u8"),  # 0: entity the command moves
        ("kind", "<u1"),  # 8: CommandKind
        ("_pad", "<u1", (3,)),
        ("vec", "<f4", (3,)),  # 12: velocity (m/s) or target position (m)
        ("seq", "<u4"),  # 24: client sequence number
    ]
)
"""A movement command for one entity (28 bytes)."""

SPAWN_DTYPE = np.dtype([("id", "<u8"), ("pos", "<f4", (3,)), ("vel", "<f4", (3,)), ("kind", "<u2")])
"""A request to create an entity in a zone."""


class RowFlag:
    """Bits of ROW_DTYPE.flags."""

    AUTHORITATIVE = 0x1  # the publishing zone holds authority (owned or staging)
    GHOST = 0x2  # a copy kept while a transfer is in flight
    STAGING = 0x4  # leaving this zone, awaiting the target's ack
    INCOMING = 0x8  # admitted here, not yet promoted
    KIND_MASK = 0xFF00
    VISITOR_ROOT = 0x100
    BONE = 0x200
    NPC = 0x400


class CommandKind:
    """Values of COMMAND_DTYPE.kind."""

    VELOCITY = 0  # set velocity; clamped to V_MAX
    MOVE = 1  # move to a position; refused if it implies more than V_MAX


class ReplyReason:
    """Values of REPLY_DTYPE.reason."""

    ACCEPTED = 0
    FULL = 1  # no free authority slot
    RATE = 2  # per-tick admission rate reached
    REFUSED = 3  # refused earlier for this epoch; decisions never change
    QUARANTINED = 4  # the target zone is quarantined; answered by its supervisor, not the zone


def empty(dtype: np.dtype) -> np.ndarray:
    """A zero-length array of a wire dtype."""
    return np.zeros(0, dtype=dtype)


def from_bytes(data: bytes, dtype: np.dtype, what: str) -> np.ndarray:
    """Rows from their wire bytes; a length that is not whole rows is an error."""
    if len(data) % dtype.itemsize:
        raise ValueError(
            f"{what}: {len(data)} bytes is not a whole number of {dtype.itemsize}-byte rows"
        )
    return np.frombuffer(data, dtype=dtype).copy()


FRAME_MAGIC = 0x4D46  # bytes "FM" little-endian
FRAME_VERSION = 2  # 2: rows quantised to FRAME_ROW_DTYPE (version 1 carried ROW_DTYPE rows)
FRAME_KIND_INTEREST = 1
FRAME_FAR_ROWS = 0x1  # FRAME_HEADER_DTYPE.flags: this frame includes rows beyond the radius

FRAME_HEADER_DTYPE = np.dtype(
    [
        ("magic", "<u2"),  # 0: FRAME_MAGIC
        ("version", "<u1"),  # 2: FRAME_VERSION
        ("kind", "<u1"),  # 3: FRAME_KIND_INTEREST
        ("ack_seq", "<u4"),  # 4: highest input seq taken from this visitor
        ("tick_ms", "<u8"),  # 8: wall-clock ms of the newest zone tick in the frame
        ("rows", "<u2"),  # 16: FRAME_ROW_DTYPE rows that follow
        ("bodies", "<u2"),  # 18: BODY_DTYPE blocks that follow the rows
        ("flags", "<u4"),  # 20: FRAME_FAR_ROWS
    ]
)
"""The 24-byte header of a binary interest frame sent to a visitor."""

FRAME_HEADER = struct.Struct("<HBBIQHHI")
"""FRAME_HEADER_DTYPE for struct: packing one header this way costs a tenth of numpy's."""
assert FRAME_HEADER.size == FRAME_HEADER_DTYPE.itemsize

BONES_PER_BODY = 55
BODY_DTYPE = np.dtype([("id", "<u8"), ("bones", "<i2", (BONES_PER_BODY, 3))])
"""One visitor's 55 bones: root id, then each bone's offset from the root in mm (338 bytes)."""

FRAME_ROW_DTYPE = np.dtype(
    [
        ("id", "<u8"),  # 0: entity id
        ("pos", "<u2", (3,)),  # 8: centimetres from the market's origin, (x, y, z)
        ("vel", "<i2", (3,)),  # 14: centimetres per second
        ("flags", "<u2"),  # 20: RowFlag bits
        ("zone", "<u2"),  # 22: publishing zone
    ]
)
"""A row as a visitor receives it (24 bytes): ROW_DTYPE without the clock and epoch, which
only zones need, and quantised to the centimetre: a market is at most 655 m a side, and
nothing moves faster than V_MAX (10 m/s), far inside ±327 m/s."""

VIEW_DTYPE = np.dtype(
    [("id", "<u8"), ("pos", "<f4", (3,)), ("vel", "<f4", (3,)), ("flags", "<u2"), ("zone", "<u2")]
)
"""A received row decoded back to metres (what `frame_decode` returns)."""

CM_PER_M = 100.0
POS_MAX_CM = np.iinfo(np.uint16).max
VEL_MAX_CM = np.iinfo(np.int16).max


def frame_rows(rows: np.ndarray) -> np.ndarray:
    """ROW_DTYPE rows quantised for a frame (positions clamped to what the format holds)."""
    out = np.empty(rows.size, FRAME_ROW_DTYPE)
    out["id"], out["flags"], out["zone"] = rows["id"], rows["flags"], rows["zone"]
    out["pos"] = np.clip(np.rint(rows["pos"] * CM_PER_M), 0, POS_MAX_CM)
    out["vel"] = np.clip(np.rint(rows["vel"] * CM_PER_M), -VEL_MAX_CM, VEL_MAX_CM)
    return out


def view_rows(rows: np.ndarray) -> np.ndarray:
    """FRAME_ROW_DTYPE rows in metres again."""
    out = np.empty(rows.size, VIEW_DTYPE)
    out["id"], out["flags"], out["zone"] = rows["id"], rows["flags"], rows["zone"]
    out["pos"] = rows["pos"] / np.float32(CM_PER_M)
    out["vel"] = rows["vel"] / np.float32(CM_PER_M)
    return out


INPUT_DTYPE = np.dtype([("seq", "<u4"), ("vel", "<f4", (3,))])
"""A visitor's binary input frame: sequence number and velocity (16 bytes)."""


def frame_encode(
    rows: np.ndarray,
    bodies: np.ndarray,
    *,
    ack_seq: int,
    tick_ms: int,
    far: bool,
) -> bytes:
    """An interest frame's bytes: header, then rows, then bodies.

    `rows` are FRAME_ROW_DTYPE rows, or ROW_DTYPE rows to be quantised here.
    """
    if rows.dtype != FRAME_ROW_DTYPE:
        rows = frame_rows(rows)
    header = FRAME_HEADER.pack(
        FRAME_MAGIC,
        FRAME_VERSION,
        FRAME_KIND_INTEREST,
        ack_seq,
        tick_ms,
        rows.size,
        bodies.size,
        FRAME_FAR_ROWS if far else 0,
    )
    return b"".join((header, rows.tobytes(), bodies.tobytes()))


ROW_RECORD = np.dtype((np.void, FRAME_ROW_DTYPE.itemsize))
"""A frame row as 24 opaque bytes, the size of the frame header too: gathering records
copies whole rows at once, where a gather of FRAME_ROW_DTYPE copies field by field
(about 20 times as long for a tick's rows)."""
BODY_RECORD = np.dtype((np.void, BODY_DTYPE.itemsize))
assert ROW_RECORD.itemsize == FRAME_HEADER_DTYPE.itemsize


def frames_encode(
    rows: np.ndarray,
    row_counts: np.ndarray,
    bodies: np.ndarray,
    body_counts: np.ndarray,
    *,
    acks: np.ndarray,
    tick_ms: int,
    far: np.ndarray,
) -> list[bytes | memoryview]:
    """V interest frames at once, each as frame_encode makes it.

    `rows` (FRAME_ROW_DTYPE) and `bodies` (BODY_DTYPE) hold every frame's rows and
    bodies in turn, `row_counts` and `body_counts` (V,) how many of each are a frame's;
    `acks` (V,) its ack_seq, `far` (V,) bool its flag. The headers and rows are laid out
    in one buffer as 24-byte records, so a frame without bodies is a memoryview of it
    (no copy); a frame with bodies is bytes. The views keep the buffer alive.
    """
    v = row_counts.size
    header = np.zeros(v, FRAME_HEADER_DTYPE)
    header["magic"], header["version"] = FRAME_MAGIC, FRAME_VERSION
    header["kind"], header["tick_ms"] = FRAME_KIND_INTEREST, tick_ms
    header["ack_seq"], header["rows"], header["bodies"] = acks, row_counts, body_counts
    header["flags"] = np.where(far, FRAME_FAR_ROWS, 0)
    ends = np.cumsum(row_counts + 1)  # in records: each frame's header, then its rows
    starts = ends - row_counts - 1
    records = np.empty(int(ends[-1]) if v else 0, ROW_RECORD)
    is_row = np.ones(records.size, bool)
    is_row[starts] = False
    records[starts] = header.view(ROW_RECORD)
    records[is_row] = rows.view(ROW_RECORD)
    laid = records.view(np.uint8).data
    size = ROW_RECORD.itemsize
    out: list[bytes | memoryview] = [
        laid[a:b] for a, b in zip((starts * size).tolist(), (ends * size).tolist(), strict=True)
    ]
    dressed = np.flatnonzero(body_counts)
    if dressed.size:
        blocks = bodies.view(np.uint8).data
        body_ends = np.cumsum(body_counts)[dressed] * BODY_DTYPE.itemsize
        body_starts = body_ends - body_counts[dressed] * BODY_DTYPE.itemsize
        for i, a, b in zip(dressed.tolist(), body_starts.tolist(), body_ends.tolist(), strict=True):
            out[i] = b"".join((out[i], blocks[a:b]))
    return out


def frame_header(data: bytes, dtype: np.dtype, kind: int, version: int, what: str) -> np.void:
    """The checked header of a binary frame of `kind` and `version`; ValueError says why not."""
    if len(data) < dtype.itemsize:
        raise ValueError(f"{what} frame: {len(data)} bytes is shorter than the header")
    header = np.frombuffer(data, dtype, count=1)[0]
    if header["magic"] != FRAME_MAGIC or header["kind"] != kind:
        raise ValueError(f"{what} frame: bad magic or kind")
    if header["version"] != version:
        raise ValueError(f"{what} frame: version {header['version']}, expected {version}")
    return header


def frame_decode(data: bytes) -> tuple[np.void, np.ndarray, np.ndarray]:
    """(header, rows, bodies) from an interest frame; a frame of the wrong shape is an error.

    The rows come back in metres (VIEW_DTYPE); the bodies are a read-only view of `data`.
    """
    size = FRAME_HEADER_DTYPE.itemsize
    header = frame_header(data, FRAME_HEADER_DTYPE, FRAME_KIND_INTEREST, FRAME_VERSION, "interest")
    n_rows, n_bodies = int(header["rows"]), int(header["bodies"])
    expected = size + n_rows * FRAME_ROW_DTYPE.itemsize + n_bodies * BODY_DTYPE.itemsize
    if len(data) != expected:
        raise ValueError(f"interest frame: {len(data)} bytes, the header announces {expected}")
    rows = view_rows(np.frombuffer(data, FRAME_ROW_DTYPE, count=n_rows, offset=size))
    bodies = np.frombuffer(
        data, BODY_DTYPE, count=n_bodies, offset=size + n_rows * FRAME_ROW_DTYPE.itemsize
    )
    return header, rows, bodies


FRAME_KIND_ROWS = 3  # a zone's rows on the rows bus (interest frames are 1, overview 2)
ROWS_VERSION = 2  # 2: rows carry the input seq (52 bytes)
ROWS_HEADER_DTYPE = np.dtype(
    [
        ("magic", "<u2"),  # 0: FRAME_MAGIC
        ("version", "<u1"),  # 2: ROWS_VERSION
        ("kind", "<u1"),  # 3: FRAME_KIND_ROWS
        ("zone", "<u2"),  # 4: publishing zone
        ("_pad", "<u2"),
        ("tick", "<u8"),  # 8: the zone's own tick counter
        ("tick_ms", "<u8"),  # 16: wall-clock ms of the tick's slot
    ]
)
"""The 24-byte header of a zone's rows as published once per tick; ROW_DTYPE rows follow."""


def rows_packet(zone: int, tick: int, tick_ms: int, rows: np.ndarray) -> bytes:
    """One tick's rows of one zone, as they travel on the rows bus."""
    header = np.zeros(1, ROWS_HEADER_DTYPE)
    header["magic"], header["version"], header["kind"] = FRAME_MAGIC, ROWS_VERSION, FRAME_KIND_ROWS
    header["zone"], header["tick"], header["tick_ms"] = zone, tick, tick_ms
    return header.tobytes() + rows.tobytes()


def rows_unpack(data: bytes) -> tuple[int, int, int, np.ndarray]:
    """(zone, tick, tick_ms, rows) of a rows packet; ValueError says what is wrong with it.

    The rows are a read-only view of `data`.
    """
    header = frame_header(data, ROWS_HEADER_DTYPE, FRAME_KIND_ROWS, ROWS_VERSION, "rows")
    body = len(data) - ROWS_HEADER_DTYPE.itemsize
    if body % ROW_DTYPE.itemsize:
        raise ValueError(
            f"rows frame: {body} bytes after the header is not whole {ROW_DTYPE.itemsize}-byte rows"
        )
    rows = np.frombuffer(data, ROW_DTYPE, offset=ROWS_HEADER_DTYPE.itemsize)
    return int(header["zone"]), int(header["tick"]), int(header["tick_ms"]), rows
