"""A zone's state as bytes, and back: what a zone worker writes before it sends.

The format is numpy's .npz (a zip of .npy arrays, uncompressed): every array of
the state, the scalars, the range map, and the decision table with the other
zones' in-flight reports as the arrays `Decisions.to_arrays` names.
Reading refuses anything that is not a whole, consistent snapshot.
"""

import io
import zipfile

import numpy as np

from .decisions import DECISION_ARRAYS, Decisions
from .ranges import RangeMap
from .state import _ARRAY_FIELDS, ZoneState

SNAPSHOT_FORMAT = 5  # 4: NPC needs, actions and decision leases; 5: input seqs


class SnapshotError(ValueError):
    """Bytes that are not a readable zone snapshot."""


def state_to_bytes(state: ZoneState) -> bytes:
    """The snapshot bytes of `state`."""
    arrays = {name: getattr(state, name) for name in _ARRAY_FIELDS}
    arrays["scalars"] = np.array(
        [SNAPSHOT_FORMAT, state.zone, state.tick, state.hlc, state.ranges.version], dtype=np.uint64
    )
    arrays["range_starts"] = state.ranges.starts.astype(np.int64)
    arrays["range_owners"] = state.ranges.zone_of_range.astype(np.int64)
    arrays.update(state.decisions.to_arrays())
    buffer = io.BytesIO()
    np.savez(buffer, allow_pickle=False, **arrays)
    return buffer.getvalue()


def state_from_bytes(data: bytes) -> ZoneState:
    """The state a snapshot holds."""
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise SnapshotError(f"not a zone snapshot: {exc}") from exc
    missing = {*_ARRAY_FIELDS, *DECISION_ARRAYS, "scalars", "range_starts"}
    missing -= arrays.keys()
    if missing:
        raise SnapshotError(f"zone snapshot lacks {sorted(missing)}")
    fmt, zone, tick, hlc, version = (int(v) for v in arrays["scalars"])
    if fmt != SNAPSHOT_FORMAT:
        raise SnapshotError(f"zone snapshot format {fmt}, this build reads {SNAPSHOT_FORMAT}")
    capacity = arrays["status"].size
    if any(arrays[name].shape[0] != capacity for name in _ARRAY_FIELDS if name not in _PER_PEER):
        raise SnapshotError("zone snapshot arrays disagree on the capacity")
    state = object.__new__(ZoneState)
    for name in _ARRAY_FIELDS:
        setattr(state, name, arrays[name])
    state.zone, state.tick, state.hlc = zone, tick, hlc
    # snapshots written before maps named their zones hold none: zone i owned range i
    owners = arrays.get("range_owners")
    try:
        state.ranges = RangeMap(starts=arrays["range_starts"], version=version, owners=owners)
    except ValueError as exc:
        raise SnapshotError(f"zone snapshot's range map: {exc}") from exc
    try:
        state.decisions = Decisions.from_arrays(arrays)
    except ValueError as exc:
        raise SnapshotError(f"zone snapshot's decisions: {exc}") from exc
    state._index = None
    return state


_PER_PEER = ("srtt", "rttvar")
