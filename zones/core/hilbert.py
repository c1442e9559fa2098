"""The 3-D Hilbert curve that orders the market's cells.

A position is quantised per axis into ``2**HILBERT_ORDER`` cells of the
market's bounds and the cell is mapped to a code in ``[0, CODE_SPACE)`` by the
Hilbert curve of Skilling (2004, "Programming the Hilbert curve",
AxestoTranspose followed by interleaving the transpose).  The most significant
bits of a code are bit ``b-1`` of axes 0, 1, 2, then bit ``b-2`` of axes 0, 1,
2, and so on.

The axis order of a cell is ``(a0, a1, a2) = (x, z, y)`` with y up, so the
first splits of the code space divide the floor.

Two encoders are provided:

``encode_per_bit``
    Skilling's algorithm ported line by line, each step a numpy operation over
    all points.  It is the reference the fast codec is checked against.

``encode`` / ``decode``
    The same map run as a finite-state transducer.  Skilling's loop, read from
    the most significant bit down, keeps applying "invert axis 0" and "swap
    axis 0 with axis i" to all lower bits; the accumulated operations at any
    level form a signed permutation ``T`` of the three axes, and the Gray-code
    step needs one parity bit ``p`` carried down from the higher levels.  The
    pair ``(T, p)`` is the transducer's state (48 are reachable).  Five levels
    are composed into one table indexed by (state, 15 input bits), so an
    order-10 code costs two table look-ups per point.  Orders below 10 use the
    same tables: the cell is read as an order-10 cell whose top levels are zero,
    starting from the state that those zero levels lead back to the identity.
"""

from functools import cache
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from zones.core.constants import CODE_SPACE, HILBERT_ORDER

__all__ = [
    "MAX_ORDER",
    "decode",
    "encode",
    "encode_per_bit",
    "encode_positions",
    "position_encoder",
    "PositionEncoder",
    "quantise",
]

MAX_ORDER: Final = HILBERT_ORDER
"""Largest supported order; codes of that order fill ``[0, CODE_SPACE)``."""

_CHUNK: Final = 5
"""Levels consumed per table look-up."""

_CHUNK_MASK: Final = (1 << _CHUNK) - 1
_SWIZZLE: Final = [0, 2, 1]
"""World axes (x, y, z) in the curve's axis order (x, z, y)."""
_DIGITS_BITS: Final = 3 * _CHUNK
_DIGITS_MASK: Final = (1 << _DIGITS_BITS) - 1
_TABLE_SIZE: Final = 1 << _DIGITS_BITS

# The encoder packs a cell into one word, a0 << 20 | a1 << 10 | a2, and
# extracts the high (or low) five bits of the three axes as one 15-bit table
# index with a mask and a multiplication: with only those fields set, the
# product by 2**2 + 2**17 holds one copy of each field in bits 17-31 and the
# other copies fall below bit 17 (without carrying into it) or past bit 31.
_ENC_SHIFT: Final = (20, 10, 0)
_ENC_HIGH_BITS: Final = sum(_CHUNK_MASK << (s + _CHUNK) for s in _ENC_SHIFT)
_ENC_LOW_BITS: Final = sum(_CHUNK_MASK << s for s in _ENC_SHIFT)
_GATHER: Final = (1 << 2) | (1 << 17)
_GATHER_SHIFT: Final = 17

# The decoder assembles a cell in one word, a0 << 21 | a1 << 10 | a2.  Its
# high-chunk table holds the high five bits of each axis in place and the next
# state in bits 20-25, which the low five bits of axis 0 fill in later.  Its
# low-chunk table holds the low five bits of axes (a1, a0, a2) packed into 15
# bits; multiplying by 2**16 + 1 and masking spreads them into place.
_DEC_SHIFT: Final = (21, 10, 0)
_DEC_LOW_FIELD: Final = (1, 2, 0)
_DEC_STATE_SHIFT: Final = 20
_DEC_STATE_MASK: Final = 0x3F << _DEC_STATE_SHIFT
_DEC_HIGH_BITS: Final = sum(_CHUNK_MASK << (s + _CHUNK) for s in _DEC_SHIFT)
_DEC_LOW_BITS: Final = sum(_CHUNK_MASK << s for s in _DEC_SHIFT)
_SPREAD: Final = (1 << 16) | 1
_AXIS_MASK: Final = (1 << MAX_ORDER) - 1

if MAX_ORDER != 2 * _CHUNK or CODE_SPACE != 1 << (3 * MAX_ORDER):
    raise ImportError("the Hilbert codec's tables and layouts are built for order 10")

_Perm = tuple[int, ...]
"""A map of 3-bit vectors, as the images of 0..7; bit 2 is axis 0."""


def _bits(v: int) -> list[int]:
    return [(v >> 2) & 1, (v >> 1) & 1, v & 1]


def _pack(x: list[int]) -> int:
    return (x[0] << 2) | (x[1] << 1) | x[2]


def _invert_axis0(v: int) -> int:
    return v ^ 0b100


def _swap_axis0(v: int, i: int) -> int:
    x = _bits(v)
    x[0], x[i] = x[i], x[0]
    return _pack(x)


def _step(t: _Perm, p: int, v: int) -> tuple[int, _Perm, int]:
    """One level of Skilling's loop: the digit and the next ``(T, p)``.

    ``v`` is the level's bit of each axis as given; ``T`` is what the higher
    levels did to it, so Skilling's loop sees ``w = T(v)``.  The loop then, for
    i = 0, 1, 2, inverts axis 0 of the lower bits if ``w[i]`` is set and swaps
    axes 0 and i otherwise.  The Gray code gives ``g = (w0, w0^w1, w0^w1^w2)``
    and the parity of ``g2`` over the higher levels flips every digit bit.
    """
    w = _bits(t[v])
    nxt = t
    for i in range(3):
        if w[i]:
            nxt = tuple(_invert_axis0(u) for u in nxt)
        else:
            nxt = tuple(_swap_axis0(u, i) for u in nxt)
    g0 = w[0]
    g1 = g0 ^ w[1]
    g2 = g1 ^ w[2]
    digit = ((g0 << 2) | (g1 << 1) | g2) ^ (7 * p)
    return digit, nxt, p ^ g2


@cache
def _machine() -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp], tuple[int, ...]]:
    """The one-level transducer over its reachable states.

    Returns ``digit[s, v]``, ``next[s, v]`` and the start state for each order
    1..MAX_ORDER (index ``order``; index 0 unused).
    """
    start = (tuple(range(8)), 0)
    index = {start: 0}
    queue = [start]
    rows: list[tuple[list[int], list[int]]] = []
    for t, p in queue:
        digits: list[int] = []
        nexts: list[int] = []
        for v in range(8):
            digit, next_t, next_p = _step(t, p, v)
            key = (next_t, next_p)
            if key not in index:
                index[key] = len(queue)
                queue.append(key)
            digits.append(digit)
            nexts.append(index[key])
        rows.append((digits, nexts))
    digit_table = np.array([r[0] for r in rows], dtype=np.intp)
    next_table = np.array([r[1] for r in rows], dtype=np.intp)

    # All-zero levels from the identity cycle through states that emit digit
    # 0; an order-m cell read at order MAX_ORDER starts where MAX_ORDER - m
    # zero levels return to the identity.
    cycle = [0]
    while True:
        s = cycle[-1]
        if digit_table[s, 0] != 0:
            raise AssertionError("zero levels must emit zero digits")
        nxt = int(next_table[s, 0])
        if nxt == 0:
            break
        cycle.append(nxt)
    starts = [0] + [cycle[-(MAX_ORDER - m) % len(cycle)] for m in range(1, MAX_ORDER + 1)]
    return digit_table, next_table, tuple(starts)


@cache
def _chunk_machine() -> tuple[npt.NDArray[np.int32], npt.NDArray[np.int32]]:
    """The transducer over five levels at once.

    Indexed ``[state, c0 << 10 | c1 << 5 | c2]`` with ``c_i`` five bits of axis
    i, returns the 15 digits (first level most significant) and the next state.
    """
    digit_table, next_table, _ = _machine()
    n_states = digit_table.shape[0]
    step = (next_table << 3 | digit_table).astype(np.int32)
    # Grow the tables one level at a time, indexed by the levels' inputs v
    # concatenated (three bits each, first level most significant).
    digits = np.zeros((n_states, 1), dtype=np.int32)
    state = np.arange(n_states, dtype=np.int32)[:, None]
    for _ in range(_CHUNK):
        out = step[state]
        digits = ((digits[:, :, None] << 3) | (out & 7)).reshape(n_states, -1)
        state = (out >> 3).reshape(n_states, -1)
    # Reorder the columns from level-major to axis-major input bits.
    canonical = np.arange(_TABLE_SIZE, dtype=np.intp)
    level_major = np.zeros_like(canonical)
    for level in range(_CHUNK):
        for i in range(3):
            bit = (canonical >> (_CHUNK * (2 - i) + level)) & 1
            level_major |= bit << (3 * level + 2 - i)
    return digits[:, level_major], state[:, level_major]


def _gather(word: npt.NDArray[np.intp]) -> npt.NDArray[np.intp]:
    """The table index the encoder computes from a masked packed word."""
    return ((word * _GATHER) & 0xFFFFFFFF) >> _GATHER_SHIFT


def _encode_index(high: bool) -> npt.NDArray[np.intp]:
    """Where each canonical index ``c0 << 10 | c1 << 5 | c2`` lands in a table.

    The encoder packs a cell as ``a0 << 20 | a1 << 10 | a2``, masks one chunk of
    each axis and multiplies; the chunks arrive at the top in an order of their
    own.  The result must be a permutation of the table's rows.
    """
    canonical = np.arange(_TABLE_SIZE, dtype=np.intp)
    offset = _CHUNK if high else 0
    word = np.zeros_like(canonical)
    for i, shift in enumerate(_ENC_SHIFT):
        chunk = (canonical >> (_CHUNK * (2 - i))) & _CHUNK_MASK
        word |= chunk << (shift + offset)
    index = _gather(word)
    if not np.array_equal(np.sort(index), canonical):
        raise AssertionError("the gather constant must permute the chunk bits")
    return index


@cache
def _encode_tables() -> tuple[npt.NDArray[np.uint32], npt.NDArray[np.uint16]]:
    """Encode tables, indexed ``[state, gathered chunk bits]``.

    The first holds ``digits << 15 | next_state`` for the high chunk; the second
    only the digits, for the low chunk.
    """
    digits, state = _chunk_machine()
    high = np.empty(digits.shape, dtype=np.uint32)
    high[:, _encode_index(high=True)] = (digits << _DIGITS_BITS) | state
    low = np.empty(digits.shape, dtype=np.uint16)
    low[:, _encode_index(high=False)] = digits
    return high, low.ravel()


@cache
def _decode_tables() -> tuple[npt.NDArray[np.uint32], npt.NDArray[np.uint16]]:
    """Decode tables, indexed ``[state, 15 code bits]``: the encoder's inverted.

    The first holds the high chunk of each axis and the next state in the
    ``_DEC_SHIFT`` layout; the second the low chunk packed as ``_DEC_LOW_FIELD``.
    """
    digits, state = _chunk_machine()
    canonical = np.arange(_TABLE_SIZE, dtype=np.uint32)
    spread = np.zeros_like(canonical)
    packed = np.zeros_like(canonical)
    for i in range(3):
        axis = (canonical >> (_CHUNK * (2 - i))) & _CHUNK_MASK
        spread |= axis << _DEC_SHIFT[i]
        packed |= axis << (_CHUNK * _DEC_LOW_FIELD[i])
    if not np.array_equal((packed * _SPREAD) & _DEC_LOW_BITS, spread):
        raise AssertionError("the spread constant must place every low chunk")
    # Each chunk and next state goes to the column of the digits it emits.
    high = np.empty(digits.shape, dtype=np.uint32)
    high_values = (spread << _CHUNK) | (state.astype(np.uint32) << _DEC_STATE_SHIFT)
    np.put_along_axis(high, digits, high_values, axis=1)
    low = np.empty(digits.shape, dtype=np.uint16)
    np.put_along_axis(low, digits, np.broadcast_to(packed.astype(np.uint16), digits.shape), axis=1)
    return high, low.ravel()


def _check_order(order: int) -> None:
    if isinstance(order, bool) or not isinstance(order, (int, np.integer)):
        raise TypeError(f"order must be an int, got {type(order).__name__}")
    if not 1 <= order <= MAX_ORDER:
        raise ValueError(f"order must be in 1..{MAX_ORDER}, got {order}")


def _check_integer(array: npt.NDArray[Any], what: str) -> None:
    if array.dtype.kind not in "iu":
        raise ValueError(f"{what} must have an integer dtype, got {array.dtype}")


def _check_range(array: npt.NDArray[Any], limit: int, what: str) -> None:
    """Raise if any value is outside ``[0, limit)``, naming the first one."""
    if array.size == 0:
        return
    # Read as unsigned, a negative value is above any limit: one pass finds both.
    unsigned = array.view(np.dtype(f"u{array.dtype.itemsize}").newbyteorder(array.dtype.byteorder))
    if int(unsigned.max()) < limit:
        return
    bad = (array < 0) | (array >= limit)
    flat = int(np.flatnonzero(bad)[0])
    row = flat // (array.size // array.shape[0])
    value = int(array.reshape(-1)[flat])
    raise ValueError(f"{what} must be in [0, {limit}): row {row} holds {value}")


def _check_cells(cells: npt.NDArray[Any], order: int) -> None:
    _check_order(order)
    if cells.ndim != 2 or cells.shape[1] != 3:
        raise ValueError(f"cells must have shape (N, 3), got {cells.shape}")
    _check_integer(cells, "cells")
    _check_range(cells, 1 << order, f"cells at order {order}")


def _check_codes(codes: npt.NDArray[Any], order: int) -> None:
    _check_order(order)
    if codes.ndim != 1:
        raise ValueError(f"codes must have shape (N,), got {codes.shape}")
    _check_integer(codes, "codes")
    _check_range(codes, 1 << (3 * order), f"codes at order {order}")


def encode(cells: npt.NDArray[Any], order: int = HILBERT_ORDER) -> npt.NDArray[np.uint32]:
    """Hilbert codes of ``(N, 3)`` integer cells ``(a0, a1, a2)``, each below ``2**order``.

    Returns an ``(N,)`` uint32 array of codes in ``[0, 2**(3*order))``.
    """
    cells = np.asarray(cells)
    _check_cells(cells, order)
    high_table, low_table = _encode_tables()
    first = high_table[_machine()[2][order]]
    n = cells.shape[0]
    if cells.dtype != np.uint16:
        cells = cells.astype(np.uint16)
    word = np.empty(n, dtype=np.uint32)
    tmp = np.empty(n, dtype=np.uint32)
    index = np.empty(n, dtype=np.intp)
    code = np.empty(n, dtype=np.uint32)
    digits = np.empty(n, dtype=np.uint16)

    # word = a0 << 20 | a1 << 10 | a2
    np.left_shift(cells[:, 0], _ENC_SHIFT[0], out=word, dtype=np.uint32)
    np.left_shift(cells[:, 1], _ENC_SHIFT[1], out=tmp, dtype=np.uint32)
    np.bitwise_or(word, tmp, out=word)
    np.bitwise_or(word, cells[:, 2], out=word)

    # High five bits of each axis: digits and the state for the rest.
    np.bitwise_and(word, _ENC_HIGH_BITS, out=tmp)
    np.multiply(tmp, _GATHER, out=tmp)
    np.right_shift(tmp, _GATHER_SHIFT, out=index)
    np.take(first, index, out=code, mode="wrap")

    # Low five bits, looked up in the row of that state.
    np.bitwise_and(word, _ENC_LOW_BITS, out=word)
    np.multiply(word, _GATHER, out=word)
    np.right_shift(word, _GATHER_SHIFT, out=word)
    np.bitwise_and(code, _DIGITS_MASK, out=tmp)
    np.left_shift(tmp, _DIGITS_BITS, out=tmp)
    np.bitwise_or(tmp, word, out=index)
    np.take(low_table, index, out=digits, mode="wrap")
    np.bitwise_and(code, ~np.uint32(_DIGITS_MASK), out=code)
    np.bitwise_or(code, digits, out=code)
    return code


def decode(codes: npt.NDArray[Any], order: int = HILBERT_ORDER) -> npt.NDArray[np.uint16]:
    """Cells ``(a0, a1, a2)`` of ``(N,)`` integer Hilbert codes below ``2**(3*order)``.

    Returns an ``(N, 3)`` uint16 array; ``decode(encode(c, m), m) == c``.
    """
    codes = np.asarray(codes)
    _check_codes(codes, order)
    high_table, low_table = _decode_tables()
    first = high_table[_machine()[2][order]]
    n = codes.shape[0]
    h = codes.astype(np.uint32)
    index = np.empty(n, dtype=np.intp)
    word = np.empty(n, dtype=np.uint32)
    tmp = np.empty(n, dtype=np.uint32)
    low = np.empty(n, dtype=np.uint16)

    # High 15 code bits: the high chunk of each axis and the next state.
    np.right_shift(h, _DIGITS_BITS, out=index)
    np.take(first, index, out=word, mode="wrap")

    # Low 15 code bits, looked up in the row of that state.
    np.bitwise_and(word, _DEC_STATE_MASK, out=tmp)
    np.right_shift(tmp, _DEC_STATE_SHIFT - _DIGITS_BITS, out=tmp)
    np.bitwise_and(h, _DIGITS_MASK, out=h)
    np.bitwise_or(tmp, h, out=index)
    np.take(low_table, index, out=low, mode="wrap")
    np.multiply(low, _SPREAD, out=tmp, dtype=np.uint32)
    np.bitwise_and(tmp, _DEC_LOW_BITS, out=tmp)
    np.bitwise_and(word, _DEC_HIGH_BITS, out=word)
    np.bitwise_or(word, tmp, out=word)

    out = np.empty((n, 3), dtype=np.uint16)
    np.right_shift(word, _DEC_SHIFT[0], out=out[:, 0], casting="unsafe")
    np.right_shift(word, _DEC_SHIFT[1], out=tmp)
    np.bitwise_and(tmp, _AXIS_MASK, out=out[:, 1], casting="unsafe")
    np.bitwise_and(word, _AXIS_MASK, out=out[:, 2], casting="unsafe")
    return out


def encode_per_bit(cells: npt.NDArray[Any], order: int = HILBERT_ORDER) -> npt.NDArray[np.uint32]:
    """Skilling's AxestoTranspose and interleave, one numpy step per bit and axis.

    Plainly faithful to the published algorithm; ``encode`` must agree with it.
    """
    cells = np.asarray(cells)
    _check_cells(cells, order)
    x = [cells[:, i].astype(np.uint32) for i in range(3)]
    zero = np.uint32(0)
    one = np.uint32(1)
    m = np.uint32(1 << (order - 1))

    # Inverse undo excess work.
    q = m
    while q > one:
        p = q - one
        for i in range(3):
            bit_set = (x[i] & q) != zero
            # if X[i] & Q: invert the low bits of X[0]
            x[0] = np.where(bit_set, x[0] ^ p, x[0])
            # else: exchange the low bits of X[0] and X[i]
            t = np.where(bit_set, zero, (x[0] ^ x[i]) & p)
            x[0] = x[0] ^ t
            x[i] = x[i] ^ t
        q = q >> one

    # Gray encode.
    for i in range(1, 3):
        x[i] = x[i] ^ x[i - 1]
    t = np.zeros_like(x[0])
    q = m
    while q > one:
        t = np.where((x[2] & q) != zero, t ^ (q - one), t)
        q = q >> one
    for i in range(3):
        x[i] = x[i] ^ t

    # Interleave the transpose: bit b-1 of X[0], X[1], X[2] first.
    code = np.zeros_like(x[0])
    for bit in range(order - 1, -1, -1):
        shift = np.uint32(bit)
        for i in range(3):
            code = (code << one) | ((x[i] >> shift) & one)
    return code


def quantise(
    positions: npt.NDArray[Any], lo: npt.ArrayLike, hi: npt.ArrayLike
) -> npt.NDArray[np.uint16]:
    """Cells of world positions ``(x, y, z)`` within the bounds ``lo``..``hi``.

    Each axis is cut into ``2**HILBERT_ORDER`` cells, ``floor((p - lo) / (hi -
    lo) * 2**HILBERT_ORDER)`` clamped to the grid.  Returns ``(N, 3)`` uint16
    cells in the curve's axis order ``(x, z, y)``.
    """
    pos = np.asarray(positions)
    if pos.ndim != 2 or pos.shape[1] != 3:
        raise ValueError(f"positions must have shape (N, 3), got {pos.shape}")
    if pos.dtype.kind not in "fiu":
        raise ValueError(f"positions must be numeric, got {pos.dtype}")
    lo_ = np.asarray(lo, dtype=np.float64)
    hi_ = np.asarray(hi, dtype=np.float64)
    if lo_.shape != (3,) or hi_.shape != (3,):
        raise ValueError(f"bounds must have shape (3,), got {lo_.shape} and {hi_.shape}")
    if not (np.all(np.isfinite(lo_)) and np.all(np.isfinite(hi_))):
        raise ValueError(f"bounds must be finite, got lo={lo_} hi={hi_}")
    if not np.all(lo_ < hi_):
        raise ValueError(f"bounds need lo < hi on every axis, got lo={lo_} hi={hi_}")
    nan = np.isnan(pos)
    if nan.any():
        row = int(np.flatnonzero(nan.any(axis=1))[0])
        raise ValueError(f"positions must not be NaN: row {row} is {pos[row].tolist()}")

    side = 1 << HILBERT_ORDER
    swizzle = _SWIZZLE
    cells = pos[:, swizzle].astype(np.float64)
    cells -= lo_[swizzle]
    cells *= side / (hi_ - lo_)[swizzle]
    # Clamped to [0, side - 1] first, the conversion's truncation is the floor.
    # (maximum/minimum in place: several times faster than np.clip here)
    np.maximum(cells, 0, out=cells)
    np.minimum(cells, side - 1, out=cells)
    return cells.astype(np.uint16)


def encode_positions(
    positions: npt.NDArray[Any], lo: npt.ArrayLike, hi: npt.ArrayLike
) -> npt.NDArray[np.uint32]:
    """Order-``HILBERT_ORDER`` codes of world positions: ``encode(quantise(...))``."""
    return encode(quantise(positions, lo, hi))


class PositionEncoder:
    """``encode_positions`` for one pair of bounds, checked once instead of every call.

    A zone encodes its entities' positions every tick within the same bounds; for
    a handful of entities the checks of ``quantise`` and ``encode`` and their
    twenty-odd numpy calls cost more than the encoding itself. Here the cell is
    computed with ``quantise``'s arithmetic in world axis order and packed into
    the encoder's word by one product with the axes' place values (which is
    where the curve's axis order comes in), then looked up in the same tables:
    the codes are the same bits as ``encode_positions``'.
    """

    def __init__(self, lo: npt.ArrayLike, hi: npt.ArrayLike) -> None:
        self._lo, self._hi = np.asarray(lo), np.asarray(hi)
        quantise(np.zeros((0, 3)), lo, hi)  # raises for bounds quantise would refuse
        lo_ = np.asarray(lo, dtype=np.float64)
        self._offset = lo_
        self._scale = (1 << HILBERT_ORDER) / (np.asarray(hi, dtype=np.float64) - lo_)
        places = np.zeros(3, dtype=np.uint32)
        places[_SWIZZLE] = [1 << s for s in _ENC_SHIFT]
        self._places = places
        high_table, self._low_table = _encode_tables()
        self._first = high_table[_machine()[2][HILBERT_ORDER]]

    def __call__(self, positions: npt.NDArray[np.floating[Any]]) -> npt.NDArray[np.uint32]:
        """Codes of ``(N, 3)`` float positions."""
        if positions.ndim != 2 or positions.shape[1] != 3:
            quantise(positions, self._lo, self._hi)  # raises, naming what is wrong
        cells = positions.astype(np.float64)
        cells -= self._offset
        cells *= self._scale
        np.maximum(cells, 0, out=cells)
        np.minimum(cells, (1 << HILBERT_ORDER) - 1, out=cells)
        if np.isnan(cells.sum()):  # NaN survives the clamps; nothing else makes the sum NaN
            quantise(positions, self._lo, self._hi)  # raises, naming the row
        word = cells.astype(np.uint32) @ self._places
        code = self._first.take(((word & _ENC_HIGH_BITS) * _GATHER) >> _GATHER_SHIFT)
        low = ((word & _ENC_LOW_BITS) * _GATHER) >> _GATHER_SHIFT
        digits = self._low_table.take(((code & _DIGITS_MASK) << _DIGITS_BITS) | low)
        result: npt.NDArray[np.uint32] = (code & ~np.uint32(_DIGITS_MASK)) | digits
        return result


@cache
def _position_encoder(lo: tuple[float, ...], hi: tuple[float, ...]) -> PositionEncoder:
    return PositionEncoder(lo, hi)


def position_encoder(lo: npt.NDArray[Any], hi: npt.NDArray[Any]) -> PositionEncoder:
    """The `PositionEncoder` of these bounds, built once per distinct pair."""
    return _position_encoder(tuple(lo.tolist()), tuple(hi.tolist()))
