"""The harness's compiled frame reader: every visitor socket read by one thread, no Python a frame.

A thousand visitors receive 20,000 frames a second; with a Python callback per frame the
harness spends more CPU on them than the machine's budget allows it. `FrameReader` reads
every socket of a run in one thread running a numba-compiled loop (`_run`, without the GIL):

* it wakes at most every `pace_ms` (5 ms): `epoll_wait` (edge-triggered), then for each
  socket with news one `recvmsg` into that socket's carry buffer (more only when the buffer
  filled), so a wake-up reads about a hundred frames, not one or two;
* every read is dated by the kernel (`SO_TIMESTAMPNS`: when the bytes reached the socket,
  wall clock), so waking late does not age a frame; the wake-up's own clock reading stands
  in when the kernel gives none;
* the websocket frames are walked in place, and each interest frame of a welcomed visitor
  is read as the lean visitor reads it (`LeanVisitor._binary`: header checks, the own row by
  its id, counters, the frame's age) into the slot's row of `counts`. Nothing is allocated
  and no Python runs per frame.

Everything else goes to Python through a byte ring (`take_messages`): text, close, ping and
fragmented frames, interest frames that arrived before the visitor was welcomed, a socket
that ended (`EOF`) and a slot given back (`RELEASED`). Each message carries the moment its
bytes were received. Frame ages go through a second ring (`take_ages`).

Python asks the reader through a request ring and an eventfd that wakes it: `START` (walk
what the slot's socket read before it was handed over) and `RELEASE` (forget the socket:
only the reader removes a socket from its epoll set, so it never reads a descriptor that
Python has closed and the kernel given to another socket).

A frame longer than `CARRY` (128 KiB) ends its socket (`TOO_BIG`, and the visitor closes it
with 1009): the market sends none that long (an interest frame is at most about 4 KB, a
welcome of 32 booths about 3 KB). A masked frame from the server or one with reserved bits
set ends it too (`PROTOCOL`, closed with 1002). Both are counted as bad frames.

This module knows websocket framing and the interest frame's layout (docs/protocol.md) and
nothing of visitors: `zones/load/rawsocket.py` builds the visitors' sockets on it.
"""

import contextlib
import ctypes
import os
import threading
import time
from collections.abc import Iterator

import numba
import numpy as np

from zones.core.wire import (
    BODY_DTYPE,
    FRAME_FAR_ROWS,
    FRAME_HEADER_DTYPE,
    FRAME_KIND_INTEREST,
    FRAME_MAGIC,
    FRAME_ROW_DTYPE,
    FRAME_VERSION,
    RowFlag,
)

# bytes a socket may hold of frames not yet whole: the longest frame it reads (untouched
# pages of the carry cost no memory)
CARRY = 1 << 17
MESSAGE_RING = 1 << 23  # bytes of messages to Python not yet taken
AGE_RING = 1 << 21  # frame ages not yet taken (100 s of 1,000 visitors at 20 frames a second)
REQUEST_RING = 1 << 16
MAX_EVENTS = 1024
START_TIMEOUT_S = 120.0  # compiling the loop takes seconds; a reader that never starts fails
WAIT_MS = 100  # the longest epoll wait: how soon `stop` is heard at the latest

# modes of a slot
FREE, PASS, COUNT, ENDED = 0, 1, 2, 3  # PASS: every frame to Python; COUNT: interest frames here
# per-slot counters and state: one row of `counts` a slot
(
    FD,
    MODE,
    OWN,
    HELD,
    FRAMES,
    BYTES,
    ROWS,
    BODIES,
    FAR,
    BAD,
    ACK_SEQ,
    TICK_MS,
    MOTION_SEEN,
    ZONE_SEEN,
    ZONE,
    MOTION,
) = range(16)
FIELDS = MOTION + 8  # the own row's pos ×3, vel ×3, flags, zone (cm, cm/s)
# the control row
STOP, MSG_HEAD, MSG_TAIL, AGE_HEAD, AGE_TAIL, REQ_HEAD, REQ_TAIL, MSG_DROPPED, AGE_DROPPED = range(
    9
)
WAKES, READY = 9, 10
CONTROL = 11
# requests
START, RELEASE = 1, 2
# message kinds beside the websocket opcodes (0-15)
EOF, RELEASED, TOO_BIG, PROTOCOL = 256, 257, 258, 259
MESSAGE_HEAD = 24  # u32 slot, u16 kind, u8 fin, u8 -, u32 size, u32 -, f64 read at (ms)
WRAP = 0xFFFFFFFF  # a slot number that says: the next message starts at the ring's beginning
WAKE_DATA = 0xFFFFFFFF  # epoll data of the wake-up eventfd (a slot's is its number)

HEADER_SIZE = FRAME_HEADER_DTYPE.itemsize
ROW_SIZE = FRAME_ROW_DTYPE.itemsize
BODY_SIZE = BODY_DTYPE.itemsize
ROW_POS_AT = FRAME_ROW_DTYPE.fields["pos"][1]
ROW_VEL_AT = FRAME_ROW_DTYPE.fields["vel"][1]
ROW_FLAGS_AT = FRAME_ROW_DTYPE.fields["flags"][1]
ROW_ZONE_AT = FRAME_ROW_DTYPE.fields["zone"][1]
FRAME_IDENT = FRAME_MAGIC | FRAME_VERSION << 16 | FRAME_KIND_INTEREST << 24
AUTHORITATIVE = int(RowFlag.AUTHORITATIVE)
assert FRAME_ROW_DTYPE.fields["id"][1] == 0 and FRAME_ROW_DTYPE.fields["id"][0].itemsize == 8
_HEADER_AT = {name: FRAME_HEADER_DTYPE.fields[name][1] for name in FRAME_HEADER_DTYPE.names}
_HEADER_LAYOUT = {
    "magic": 0, "version": 2, "kind": 3, "ack_seq": 4, "tick_ms": 8, "rows": 16, "bodies": 18,
    "flags": 20,
}  # fmt: skip
assert _HEADER_LAYOUT == _HEADER_AT
assert HEADER_SIZE == 24

EAGAIN, EINTR = 11, 4
MSG_DONTWAIT = 0x40
EPOLLIN, EPOLLET = 0x1, 1 << 31
EPOLL_CTL_ADD, EPOLL_CTL_DEL = 1, 2
CLOCK_REALTIME, CLOCK_MONOTONIC = 0, 1
SOL_SOCKET, SO_TIMESTAMPNS = 1, 35
SCM_TIMESTAMPNS_HEAD = SOL_SOCKET | SO_TIMESTAMPNS << 32  # cmsg_level, cmsg_type as one i64
CMSG_BYTES = 64
PACE_MS = 5.0  # the reader wakes at most this often

_libc = ctypes.CDLL(None, use_errno=True)  # the Python side's epoll calls
_libc.epoll_ctl.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_void_p]

# libc for the compiled loop, bound by name (so numba can cache the loop); pointers travel as
# u64 addresses (an array's `ctypes.data`)
_i32, _i64, _u64 = numba.types.int32, numba.types.int64, numba.types.uint64
_recvmsg = numba.types.ExternalFunction("recvmsg", _i64(_i32, _u64, _i32))
_nanosleep = numba.types.ExternalFunction("nanosleep", _i32(_u64, _u64))
_read = numba.types.ExternalFunction("read", _i64(_i32, _u64, _u64))
_write = numba.types.ExternalFunction("write", _i64(_i32, _u64, _u64))
_epoll_wait = numba.types.ExternalFunction("epoll_wait", _i32(_i32, _u64, _i32, _i32))
_epoll_ctl = numba.types.ExternalFunction("epoll_ctl", _i32(_i32, _i32, _i32, _u64))
_clock_gettime = numba.types.ExternalFunction("clock_gettime", _i32(_i32, _u64))
_errno = numba.types.ExternalFunction("__errno_location", numba.types.CPointer(_i32)())


class _EpollEvent(ctypes.Structure):
    _pack_ = 1  # as the kernel's struct epoll_event on x86-64
    _fields_ = (("events", ctypes.c_uint32), ("data", ctypes.c_uint64))


# --- the compiled loop ------------------------------------------------------------------------


@numba.njit(nogil=True, cache=True, inline="always")
def _u16(buf: np.ndarray, at: int) -> int:
    return np.int64(buf[at]) | np.int64(buf[at + 1]) << 8


@numba.njit(nogil=True, cache=True, inline="always")
def _u32(buf: np.ndarray, at: int) -> int:
    return _u16(buf, at) | _u16(buf, at + 2) << 16


@numba.njit(nogil=True, cache=True, inline="always")
def _u64(buf: np.ndarray, at: int) -> int:
    # an entity id or a wall-clock millisecond: below 2**63, so int64 holds it
    return _u32(buf, at) | _u32(buf, at + 4) << 32


@numba.njit(nogil=True, cache=True)
def _message(
    control: np.ndarray,
    ring: np.ndarray,
    slot: int,
    kind: int,
    fin: int,
    buf: np.ndarray,
    at: int,
    size: int,
    now_ms: float,
) -> bool:
    """Append a message for Python to the ring; False (and counted) when it has no room."""
    need = MESSAGE_HEAD + ((size + 7) & ~7)
    head = control[MSG_HEAD]
    used = head - control[MSG_TAIL]
    pos = head % MESSAGE_RING
    skip = MESSAGE_RING - pos if pos + need > MESSAGE_RING else 0
    if used + skip + need > MESSAGE_RING:
        control[MSG_DROPPED] += 1
        return False
    if skip:
        ring[pos : pos + 4] = 0xFF  # WRAP
        pos = 0
    header = ring[pos : pos + MESSAGE_HEAD]
    header[:] = 0
    for i in range(4):
        header[i] = (slot >> (8 * i)) & 0xFF
        header[8 + i] = (size >> (8 * i)) & 0xFF
    header[4] = kind & 0xFF
    header[5] = kind >> 8
    header[6] = fin
    header[16:24] = np.array([now_ms]).view(np.uint8)
    if size:
        ring[pos + MESSAGE_HEAD : pos + MESSAGE_HEAD + size] = buf[at : at + size]
    control[MSG_HEAD] = head + skip + need
    return True


@numba.njit(nogil=True, cache=True)
def _interest(
    counts: np.ndarray, ages: np.ndarray, age_slots: np.ndarray, control: np.ndarray,
    slot: int, buf: np.ndarray, at: int, size: int, now_ms: float,
) -> None:  # fmt: skip
    """An interest frame of a welcomed visitor: `LeanVisitor._binary`'s checks and figures."""
    row = counts[slot]
    if size < HEADER_SIZE:
        row[BAD] += 1
        return
    n_rows, n_bodies = _u16(buf, at + 16), _u16(buf, at + 18)
    rows_end = HEADER_SIZE + n_rows * ROW_SIZE
    if _u32(buf, at) != FRAME_IDENT or size != rows_end + n_bodies * BODY_SIZE:
        row[BAD] += 1
        return
    tick_ms = _u64(buf, at + 8)
    row[ACK_SEQ] = _u32(buf, at + 4)
    row[TICK_MS] = tick_ms
    own = row[OWN]
    for r in range(n_rows):
        q = at + HEADER_SIZE + r * ROW_SIZE
        if _u64(buf, q) == own:
            for i in range(3):
                row[MOTION + i] = _u16(buf, q + ROW_POS_AT + 2 * i)
                vel = _u16(buf, q + ROW_VEL_AT + 2 * i)
                row[MOTION + 3 + i] = vel - 65536 if vel >= 32768 else vel
            flags = _u16(buf, q + ROW_FLAGS_AT)
            row[MOTION + 6] = flags
            row[MOTION + 7] = _u16(buf, q + ROW_ZONE_AT)
            row[MOTION_SEEN] += 1
            if flags & AUTHORITATIVE:
                row[ZONE] = row[MOTION + 7]
                row[ZONE_SEEN] += 1
            break
    row[FRAMES] += 1
    row[BYTES] += size
    row[ROWS] += n_rows
    row[BODIES] += n_bodies
    if _u32(buf, at + 20) & FRAME_FAR_ROWS:
        row[FAR] += 1
    head = control[AGE_HEAD]
    if head - control[AGE_TAIL] < AGE_RING:
        ages[head % AGE_RING] = now_ms - tick_ms
        age_slots[head % AGE_RING] = slot
        control[AGE_HEAD] = head + 1
    else:
        control[AGE_DROPPED] += 1


@numba.njit(nogil=True, cache=True)
def _end(epfd: int, counts: np.ndarray, control: np.ndarray, ring: np.ndarray, slot: int,
         kind: int, code: int, now_ms: float) -> None:  # fmt: skip
    """Stop reading the slot's socket and tell Python why (`code`: errno, 0 for an orderly end)."""
    row = counts[slot]
    if row[MODE] == PASS or row[MODE] == COUNT:
        _epoll_ctl(epfd, EPOLL_CTL_DEL, row[FD], 0)
    row[MODE] = ENDED
    why = np.zeros(4, np.uint8)
    for i in range(4):
        why[i] = (code >> (8 * i)) & 0xFF
    _message(control, ring, slot, kind, 1, why, 0, 4, now_ms)


@numba.njit(nogil=True, cache=True)
def _walk(
    epfd: int, counts: np.ndarray, carry: np.ndarray, control: np.ndarray, ring: np.ndarray,
    ages: np.ndarray, age_slots: np.ndarray, slot: int, now_ms: float,
) -> int:  # fmt: skip
    """The whole frames the slot holds: counted or passed on; the rest kept. Messages made."""
    row = counts[slot]
    buf = carry[slot]
    held = row[HELD]
    at = 0
    made = 0
    while held - at >= 2:
        first, second = buf[at], buf[at + 1]
        size = np.int64(second & 0x7F)
        start = at + 2
        if size == 126:
            if held - at < 4:
                break
            size = np.int64(buf[at + 2]) << 8 | buf[at + 3]
            start = at + 4
        elif size == 127:
            if held - at < 10:
                break
            size = 0
            for i in range(8):
                size = size << 8 | buf[at + 2 + i]
            start = at + 10
        if second & 0x80 or first & 0x70:  # masked by the server, or reserved bits
            row[BAD] += 1
            _end(epfd, counts, control, ring, slot, PROTOCOL, 0, now_ms)
            return made + 1
        if size < 0 or start - at + size > CARRY:
            row[BAD] += 1
            _end(epfd, counts, control, ring, slot, TOO_BIG, 0, now_ms)
            return made + 1
        if start + size > held:
            break
        opcode, fin = first & 0x0F, first >> 7
        if opcode == 2 and fin and row[MODE] == COUNT:
            _interest(counts, ages, age_slots, control, slot, buf, start, size, now_ms)
        else:
            if not _message(control, ring, slot, opcode, fin, buf, start, size, now_ms):
                row[BAD] += 1  # no room: counted as lost, as a frame that could not be read
            made += 1
        at = start + size
    if at:
        if held > at:
            buf[: held - at] = buf[at:held].copy()
        row[HELD] = held - at
    return made


@numba.njit(nogil=True, cache=True)
def _run(
    epfd: int, wake_fd: int, notify_fd: int, control: np.ndarray, counts: np.ndarray,
    carry: np.ndarray, ring: np.ndarray, ages: np.ndarray, age_slots: np.ndarray,
    requests: np.ndarray, pace_ns: int,
) -> None:  # fmt: skip
    """Read every slot's socket until control[STOP]; see the module's docstring."""
    events = np.zeros(MAX_EVENTS * 3, np.uint32)  # struct epoll_event is 12 bytes, packed
    clock = np.zeros(2, np.int64)
    word = np.ones(1, np.uint64)
    errno = _errno()
    # one struct msghdr (x86-64: name, namelen, iov, iovlen, control, controllen, flags), its
    # iovec and room for one SCM_TIMESTAMPNS control message
    cmsg = np.zeros(CMSG_BYTES // 8, np.int64)
    iov = np.zeros(2, np.uint64)
    msg = np.zeros(7, np.uint64)
    msg[2], msg[3], msg[4] = iov.ctypes.data, 1, cmsg.ctypes.data
    control[READY] = 1
    while control[STOP] == 0:
        ready = _epoll_wait(epfd, events.ctypes.data, MAX_EVENTS, WAIT_MS)
        if ready < 0:
            continue  # EINTR: a signal for another thread
        control[WAKES] += 1
        _clock_gettime(CLOCK_MONOTONIC, clock.ctypes.data)
        woke_ns = clock[0] * 1_000_000_000 + clock[1]
        _clock_gettime(CLOCK_REALTIME, clock.ctypes.data)
        now_ms = clock[0] * 1000.0 + clock[1] / 1e6
        made = 0
        for k in range(ready):
            data = events[3 * k + 1]
            if data == WAKE_DATA:
                _read(wake_fd, word.ctypes.data, 8)
                continue
            slot = np.int64(data)
            row = counts[slot]
            if row[MODE] != PASS and row[MODE] != COUNT:
                continue  # ended in this wake-up already
            # edge-triggered: read until the socket is drained, which a short read says
            while row[MODE] == PASS or row[MODE] == COUNT:
                held = row[HELD]
                room = CARRY - held
                iov[0], iov[1] = carry.ctypes.data + slot * CARRY + held, room
                msg[5] = CMSG_BYTES
                got = _recvmsg(row[FD], msg.ctypes.data, MSG_DONTWAIT)
                if got > 0:
                    read_ms = now_ms  # when the kernel received the bytes, when it says
                    if msg[5] >= 32 and cmsg[1] == SCM_TIMESTAMPNS_HEAD:
                        read_ms = cmsg[2] * 1000.0 + cmsg[3] / 1e6
                    row[HELD] = held + got
                    made += _walk(epfd, counts, carry, control, ring, ages, age_slots, slot,
                                  read_ms)  # fmt: skip
                    if got < room:
                        break
                elif got == 0:
                    _end(epfd, counts, control, ring, slot, EOF, 0, now_ms)
                    made += 1
                elif errno[0] == EAGAIN:
                    break
                elif errno[0] != EINTR:
                    _end(epfd, counts, control, ring, slot, EOF, errno[0], now_ms)
                    made += 1
        tail = control[REQ_TAIL]
        while tail < control[REQ_HEAD]:
            request = requests[tail % REQUEST_RING]
            slot, kind = request >> 2, request & 3
            row = counts[slot]
            if kind == START and (row[MODE] == PASS or row[MODE] == COUNT):
                made += _walk(epfd, counts, carry, control, ring, ages, age_slots, slot, now_ms)
            elif kind == RELEASE:
                if row[MODE] == PASS or row[MODE] == COUNT:
                    _epoll_ctl(epfd, EPOLL_CTL_DEL, row[FD], 0)
                row[MODE] = FREE
                _message(control, ring, slot, RELEASED, 1, ring, 0, 0, now_ms)
                made += 1
            tail += 1
        control[REQ_TAIL] = tail
        if made:
            _write(notify_fd, word.ctypes.data, 8)
        if pace_ns > 0:  # let more frames arrive before the next wake-up: they keep their time
            _clock_gettime(CLOCK_MONOTONIC, clock.ctypes.data)
            left = pace_ns - (clock[0] * 1_000_000_000 + clock[1] - woke_ns)
            if left > 0:
                clock[0], clock[1] = left // 1_000_000_000, left % 1_000_000_000
                _nanosleep(clock.ctypes.data, 0)


# --- the Python side --------------------------------------------------------------------------


_NO_SLOTS, _NO_AGES = np.zeros(0, np.int64), np.zeros(0, np.float64)


class FrameReader:
    """The reader thread and its shared arrays; every method is called from one Python thread.

    `notify_fd` becomes readable when messages wait (`take_messages`); the owner watches it
    (an event loop's add_reader) and calls `take_messages` then.
    """

    def __init__(self, slots: int, pace_ms: float = PACE_MS) -> None:
        if slots < 1:
            raise ValueError("a frame reader needs at least one slot")
        if not 0 <= pace_ms <= WAIT_MS:
            raise ValueError(f"the reader's pace must be 0 to {WAIT_MS} ms, not {pace_ms:g}")
        self.slots, self.pace_ms = slots, pace_ms
        self.counts = np.zeros((slots, FIELDS), np.int64)
        self.carry = np.zeros((slots, CARRY), np.uint8)  # untouched pages cost no memory
        self.control = np.zeros(CONTROL, np.int64)
        self.ring = np.zeros(MESSAGE_RING, np.uint8)
        self.ages = np.zeros(AGE_RING, np.float64)
        self.age_slots = np.zeros(AGE_RING, np.int64)
        self.requests = np.zeros(REQUEST_RING, np.int64)
        self.epfd = _epoll_create()
        self.wake_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self.notify_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        _epoll_add(self.epfd, self.wake_fd, WAKE_DATA)
        self._free = list(range(slots - 1, -1, -1))
        self._thread: threading.Thread | None = None

    def start(self, timeout: float = START_TIMEOUT_S) -> None:
        """Start the thread and wait until it reads (the loop is compiled on its first use in
        a checkout, in seconds, then loaded from numba's cache)."""
        if self._thread is not None:
            return
        args = (self.epfd, self.wake_fd, self.notify_fd, self.control, self.counts)
        args += (self.carry, self.ring, self.ages, self.age_slots, self.requests)
        args += (round(self.pace_ms * 1e6),)
        self._thread = threading.Thread(target=_run, args=args, name="frame-reader", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.control[READY]:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the frame reader's thread did not start")
            time.sleep(0.005)

    def add(self, fd: int, early: bytes) -> int:
        """A socket to read, with what was read of it already; its slot, in mode PASS."""
        if not self._free:
            raise RuntimeError(f"all {self.slots} slots of the frame reader are taken")
        if len(early) > CARRY:
            raise ValueError(f"more than {CARRY} bytes arrived before the socket was handed over")
        slot = self._free.pop()
        row = self.counts[slot]
        row[:] = 0
        row[FD], row[HELD], row[MODE] = fd, len(early), PASS
        self.carry[slot, : len(early)] = np.frombuffer(early, np.uint8)
        on = ctypes.c_int(1)  # the kernel dates what it receives: a frame's age is not the reader's
        _libc.setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, ctypes.byref(on), 4)
        try:
            _epoll_add(self.epfd, fd, slot, EPOLLIN | EPOLLET)
        except OSError:
            row[MODE] = FREE
            self._free.append(slot)
            raise
        self._request(slot, START)
        return slot

    def count(self, slot: int, own: int) -> None:
        """From now on the slot's interest frames are counted here, its own row found by `own`."""
        row = self.counts[slot]
        row[OWN] = own
        if row[MODE] == PASS:
            row[MODE] = COUNT

    def release(self, slot: int) -> None:
        """Stop reading the slot's socket; a RELEASED message says when it may be closed."""
        self._request(slot, RELEASE)

    def free(self, slot: int) -> None:
        """The slot's RELEASED message has been taken: it can serve another socket."""
        self._free.append(slot)

    def _request(self, slot: int, kind: int) -> None:
        head = int(self.control[REQ_HEAD])
        if head - int(self.control[REQ_TAIL]) >= REQUEST_RING:
            raise RuntimeError("the frame reader is not taking requests")
        self.requests[head % REQUEST_RING] = slot << 2 | kind
        self.control[REQ_HEAD] = head + 1
        os.eventfd_write(self.wake_fd, 1)

    def take_messages(self) -> Iterator[tuple[int, int, bool, bytes, float]]:
        """(slot, kind, fin, payload, read at ms) of every message waiting, oldest first."""
        with contextlib.suppress(BlockingIOError):
            os.eventfd_read(self.notify_fd)
        control, ring = self.control, self.ring
        tail, head = int(control[MSG_TAIL]), int(control[MSG_HEAD])
        while tail < head:
            pos = tail % MESSAGE_RING
            header = ring[pos : pos + MESSAGE_HEAD]
            slot = int(header[:4].view(np.uint32)[0])
            if slot == WRAP:
                tail += MESSAGE_RING - pos
                continue
            kind = int(header[4:6].view(np.uint16)[0])
            size = int(header[8:12].view(np.uint32)[0])
            at_ms = float(header[16:24].view(np.float64)[0])
            payload = ring[pos + MESSAGE_HEAD : pos + MESSAGE_HEAD + size].tobytes()
            tail += MESSAGE_HEAD + ((size + 7) & ~7)
            control[MSG_TAIL] = tail
            yield slot, kind, bool(header[6]), payload, at_ms

    def take_ages(self) -> tuple[np.ndarray, np.ndarray]:
        """(slots, ages in ms) of the frames counted since the last call, oldest first."""
        tail, head = int(self.control[AGE_TAIL]), int(self.control[AGE_HEAD])
        if tail == head:  # the common case: every visitor's stats after the first in a sample
            return _NO_SLOTS, _NO_AGES
        index = np.arange(tail, head) % AGE_RING
        taken = self.age_slots[index], self.ages[index]
        self.control[AGE_TAIL] = head
        return taken

    @property
    def dropped(self) -> tuple[int, int]:
        """Messages and frame ages lost because Python did not take them in time."""
        return int(self.control[MSG_DROPPED]), int(self.control[AGE_DROPPED])

    @property
    def wakes(self) -> int:
        """Times the reader woke up so far (one clock read each)."""
        return int(self.control[WAKES])

    def close(self) -> None:
        """Stop the thread and close the reader's descriptors (not the sockets')."""
        if self._thread is not None:
            self.control[STOP] = 1
            os.eventfd_write(self.wake_fd, 1)
            self._thread.join()
            self._thread = None
        for fd in (self.epfd, self.wake_fd, self.notify_fd):
            os.close(fd)
        self.epfd = self.wake_fd = self.notify_fd = -1


def _epoll_create() -> int:
    fd = int(_libc.epoll_create1(0o2000000))  # EPOLL_CLOEXEC
    if fd < 0:
        raise OSError(ctypes.get_errno(), "epoll_create1 failed")
    return fd


def _epoll_add(epfd: int, fd: int, data: int, events: int = EPOLLIN) -> None:
    event = _EpollEvent(events, data)
    if _libc.epoll_ctl(epfd, EPOLL_CTL_ADD, fd, ctypes.byref(event)) < 0:
        error = ctypes.get_errno()
        raise OSError(error, f"epoll_ctl ADD of descriptor {fd}: {os.strerror(error)}")
