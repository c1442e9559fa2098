"""The operators' overview frame: every visitor and NPC, handovers shown with their target."""

import numpy as np
import pytest

from zones.core.interest import resolve_authority
from zones.core.overview import (
    NO_ZONE,
    OVERVIEW_DTYPE,
    OVERVIEW_HEADER_DTYPE,
    DotKind,
    overview_decode,
    overview_encode,
    overview_rows,
)
from zones.core.wire import ROW_DTYPE, RowFlag


def row(ident, pos, flags, zone, epoch=1):
    r = np.zeros(1, ROW_DTYPE)
    r["id"], r["pos"], r["flags"], r["zone"], r["epoch"] = ident, pos, flags, zone, epoch
    return r


AUTH = RowFlag.AUTHORITATIVE


def test_visitors_and_npcs_are_told_apart_and_placed_to_the_centimetre():
    raw = np.concatenate(
        [
            row(1, (10.004, 1.0, 20.5), AUTH | RowFlag.VISITOR_ROOT, 0),
            row(2, (127.99, 0.5, 0.0), AUTH | RowFlag.NPC, 2),
        ]
    )
    records = overview_rows(raw, resolve_authority(raw))
    assert records["id"].tolist() == [1, 2]
    assert records["pos_cm"].tolist() == [[1000, 100, 2050], [12799, 50, 0]]
    assert records["kind"].tolist() == [DotKind.VISITOR, DotKind.NPC]
    assert records["zone"].tolist() == [0, 2]
    assert records["to"].tolist() == [NO_ZONE, NO_ZONE]


def test_a_handover_shows_once_owned_by_the_source_and_heading_for_the_target():
    raw = np.concatenate(
        [
            row(5, (40, 1, 40), AUTH | RowFlag.STAGING | RowFlag.VISITOR_ROOT, 1, epoch=3),
            row(5, (40, 1, 40), RowFlag.GHOST | RowFlag.INCOMING | RowFlag.VISITOR_ROOT, 2),
            row(6, (41, 1, 40), AUTH | RowFlag.NPC, 1),
        ]
    )
    records = overview_rows(raw, resolve_authority(raw))
    assert records["id"].tolist() == [5, 6]
    assert records["zone"].tolist() == [1, 1]
    assert records["to"].tolist() == [2, NO_ZONE]
    assert records["kind"].tolist() == [DotKind.VISITOR | DotKind.MIGRATING, DotKind.NPC]


def test_rows_that_are_neither_visitor_nor_npc_are_left_out():
    raw = np.concatenate([row(9, (1, 1, 1), AUTH | RowFlag.BONE, 0), row(10, (1, 1, 1), AUTH, 0)])
    assert overview_rows(raw, resolve_authority(raw)).size == 0


def test_a_frame_round_trips_and_an_empty_market_is_a_valid_frame():
    raw = row(1, (3, 1, 4), AUTH | RowFlag.NPC, 0)
    records = overview_rows(raw, raw)
    data = overview_encode(records, 1_800_000_000_050)
    assert len(data) == OVERVIEW_HEADER_DTYPE.itemsize + OVERVIEW_DTYPE.itemsize == 16 + 18
    tick_ms, back = overview_decode(data)
    assert tick_ms == 1_800_000_000_050
    assert back.tobytes() == records.tobytes()
    tick_ms, none = overview_decode(overview_encode(np.zeros(0, OVERVIEW_DTYPE), 7))
    assert (tick_ms, none.size) == (7, 0)


@pytest.mark.parametrize(
    "mangle, message",
    [
        (lambda d: d[:10], "shorter than the header"),
        (lambda d: d[:-1], "do not hold 1 records"),
        (lambda d: b"XX" + d[2:], "bad magic or kind"),
        (lambda d: d[:3] + b"\x01" + d[4:], "bad magic or kind"),
        (lambda d: d[:2] + b"\x09" + d[3:], "version 9"),
    ],
)
def test_malformed_frames_are_refused_with_the_reason(mangle, message):
    data = overview_encode(
        overview_rows(
            row(1, (3, 1, 4), AUTH | RowFlag.NPC, 0), row(1, (3, 1, 4), AUTH | RowFlag.NPC, 0)
        ),
        1,
    )
    with pytest.raises(ValueError, match=message):
        overview_decode(mangle(data))
