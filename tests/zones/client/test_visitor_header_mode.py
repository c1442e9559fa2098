"""A visitor opened with decode="header" keeps the statistics and its own motion, nothing else."""

import time

import numpy as np
import pytest

from tests.zones.client.fake_market import FakeMarket
from zones.client import Visitor
from zones.core.wire import BODY_DTYPE, ROW_DTYPE, RowFlag, frame_encode

OWN = 1 << 41


def frame(rows: np.ndarray, bodies: int = 0, far: bool = False) -> bytes:
    return frame_encode(
        rows, np.zeros(bodies, BODY_DTYPE), ack_seq=7, tick_ms=time.time_ns() // 10**6, far=far
    )


def rows_with_own(count: int, own_index: int) -> np.ndarray:
    rows = np.zeros(count, ROW_DTYPE)
    rows["id"] = np.arange(count) + 100
    rows["id"][own_index] = OWN
    rows["pos"][own_index] = [3.0, 1.0, 4.0]
    rows["vel"][own_index] = [0.5, 0.0, -0.5]
    rows["flags"][own_index] = RowFlag.AUTHORITATIVE | RowFlag.VISITOR_ROOT
    rows["zone"][own_index] = 2
    return rows


def both_modes() -> tuple[Visitor, Visitor]:
    full, header = Visitor("http://x", 1), Visitor("http://x", 1, decode="header")
    full.entity = header.entity = OWN
    return full, header


def test_header_mode_counts_and_locates_exactly_as_the_full_decode():
    full, header = both_modes()
    frames = [frame(rows_with_own(30, 11), bodies=4, far=True), frame(rows_with_own(3, 0))]
    for data in frames:
        full._frame(data)
        header._frame_header(data)
    for field in ("frames", "bytes", "far_frames", "bad_frames", "rows", "bodies"):
        assert getattr(header.stats, field) == getattr(full.stats, field), field
    assert header.stats.rows == 33 and header.stats.bodies == 4
    np.testing.assert_array_equal(header.position, full.position)
    np.testing.assert_array_equal(header.velocity, full.velocity)
    assert header.zone == full.zone == 2
    assert header.ack_seq == 7 and header.tick_ms == full.tick_ms
    assert len(header.stats.latencies_ms) == 2
    assert header.rows.size == 0 and header.bodies.size == 0


def test_the_own_id_inside_another_field_is_not_taken_for_the_own_row():
    _, header = both_modes()
    rows = rows_with_own(4, 3)
    rows["hlc"][0] = OWN  # the same 8 bytes, at offset 32 of row 0
    rows["hlc"][1] = OWN << 8  # and straddling two fields of row 1
    header._frame_header(frame(rows))
    np.testing.assert_array_equal(header.position, [3.0, 1.0, 4.0])


def test_a_frame_of_the_wrong_shape_is_counted_as_bad_and_changes_nothing():
    _, header = both_modes()
    good = frame(rows_with_own(5, 2))
    for bad in (good[:-1], good[:10], b"XX" + good[2:]):
        header._frame_header(bad)
    assert header.stats.bad_frames == 3 and header.stats.frames == 0
    assert header.position is None


def test_header_mode_refuses_a_frame_callback_and_unknown_modes():
    with pytest.raises(ValueError, match="decode='full'"):
        Visitor("http://x", 1, decode="header", on_frame=lambda *args: None)
    with pytest.raises(ValueError, match="decode must be one of"):
        Visitor("http://x", 1, decode="rows")


async def test_a_header_mode_visitor_walks_and_sees_its_own_position_move():
    async with FakeMarket() as market:
        at = market.booth_point(0)
        visitor = await Visitor.connect(market.base_url, 1, at=at, decode="header")
        try:
            await visitor.walk([0.0, 0.0, 5.0])
            await visitor.wait_for(
                lambda v: v.position is not None and v.position[2] > at[2] + 0.2, 2
            )
        finally:
            await visitor.close()
    np.testing.assert_allclose(visitor.velocity, [0, 0, 5.0])
    assert visitor.stats.frames > 0 and visitor.stats.rows >= visitor.stats.frames
    assert visitor.rows.size == 0
