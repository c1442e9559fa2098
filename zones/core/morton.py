"""Morton (Z-order) codes of the market's cells: the baseline the Hilbert order is measured against.

A cell ``(a0, a1, a2)`` of ``hilbert.quantise`` (axis order x, z, y) maps to the
code whose bits, from the most significant down, are bit ``b-1`` of a0, a1, a2,
then bit ``b-2`` of each, and so on: the same bit layout as the Hilbert codes, so
the two orders differ only by the curve. Unlike the Hilbert curve, consecutive
Morton codes may jump across the market; that is what a tree built over them pays.
"""

from typing import Any, Final

import numpy as np
import numpy.typing as npt

from .constants import HILBERT_ORDER
from .hilbert import quantise

__all__ = ["encode", "encode_positions"]

# Spreading a 10-bit axis value to every third bit of a 30-bit word, by halves.
_SPREAD: Final = (
    (16, 0x030000FF),
    (8, 0x0300F00F),
    (4, 0x030C30C3),
    (2, 0x09249249),
)


def _spread(axis: npt.NDArray[np.uint32]) -> npt.NDArray[np.uint32]:
    v = axis.copy()
    for shift, mask in _SPREAD:
        v = (v | (v << np.uint32(shift))) & np.uint32(mask)
    return v


def encode(cells: npt.NDArray[Any]) -> npt.NDArray[np.uint32]:
    """Morton codes of ``(N, 3)`` integer cells ``(a0, a1, a2)``, each below ``2**HILBERT_ORDER``."""
    cells = np.asarray(cells)
    if cells.ndim != 2 or cells.shape[1] != 3:
        raise ValueError(f"cells must have shape (N, 3), got {cells.shape}")
    if cells.dtype.kind not in "iu":
        raise ValueError(f"cells must have an integer dtype, got {cells.dtype}")
    if cells.size and (int(cells.min()) < 0 or int(cells.max()) >= 1 << HILBERT_ORDER):
        raise ValueError(f"cells must be in [0, {1 << HILBERT_ORDER})")
    wide = cells.astype(np.uint32)
    code: npt.NDArray[np.uint32] = (
        (_spread(wide[:, 0]) << np.uint32(2)) | (_spread(wide[:, 1]) << np.uint32(1))
    ) | _spread(wide[:, 2])
    return code


def encode_positions(
    positions: npt.NDArray[Any], lo: npt.ArrayLike, hi: npt.ArrayLike
) -> npt.NDArray[np.uint32]:
    """Morton codes of world positions within ``lo``..``hi``: ``encode(quantise(...))``."""
    return encode(quantise(positions, lo, hi))
