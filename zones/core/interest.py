"""Interest rows: what a zone publishes about its entities each tick.

One array of ROW_DTYPE per tick, published once on the rows bus for the gateways.
During a transfer both zones publish the entity: the source's row is
authoritative and flagged STAGING, the target's is a GHOST flagged INCOMING,
so subscribers never see a gap; after promotion the target's row carries the
higher epoch and wins.
"""

import numpy as np

from .state import Status, ZoneState
from .wire import ROW_DTYPE, RowFlag

_FLAGS_BY_STATUS = np.zeros(4, dtype=np.uint16)
_FLAGS_BY_STATUS[Status.OWNED] = RowFlag.AUTHORITATIVE
_FLAGS_BY_STATUS[Status.STAGING] = RowFlag.AUTHORITATIVE | RowFlag.STAGING | RowFlag.GHOST
_FLAGS_BY_STATUS[Status.INCOMING] = RowFlag.GHOST | RowFlag.INCOMING


def interest_rows(state: ZoneState, live: np.ndarray | None = None) -> np.ndarray:
    """Rows for every live entity, in slot order.

    `live`, when the caller has it, is np.flatnonzero(state.status).
    """
    if live is None:
        live = np.flatnonzero(state.status)
    rows = np.empty(live.size, dtype=ROW_DTYPE)
    if live.size == 0:
        return rows
    rows["id"] = state.id.take(live)
    rows["pos"] = state.pos.take(live, axis=0)
    rows["vel"] = state.vel.take(live, axis=0)
    rows["hlc"] = state.hlc
    rows["epoch"] = state.epoch.take(live)
    rows["flags"] = _FLAGS_BY_STATUS.take(state.status.take(live)) | state.kind.take(live)
    rows["zone"] = state.zone
    rows["seq"] = state.seq.take(live)
    return rows


def within_radius(rows: np.ndarray, centre: np.ndarray, radius: float) -> np.ndarray:
    """Mask of rows within `radius` metres of `centre` (world x, y, z)."""
    offset = rows["pos"] - np.asarray(centre, dtype=np.float32)
    return np.einsum("ij,ij->i", offset, offset) <= radius * radius


def resolve_authority(rows: np.ndarray) -> np.ndarray:
    """One row per entity from rows gathered from several zones.

    Authoritative rows beat ghosts; among those, the higher fencing epoch wins.
    This is how a subscriber of several zones sees each entity exactly once.
    """
    if rows.size == 0:
        return rows
    authoritative = (rows["flags"] & RowFlag.AUTHORITATIVE) != 0
    order = np.lexsort((rows["epoch"], authoritative, rows["id"]))
    ordered = rows[order]
    last_of_id = np.append(ordered["id"][1:] != ordered["id"][:-1], True)
    return ordered[last_of_id]
