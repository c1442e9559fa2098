import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from zones.core.messages import (
    Ack,
    Forward,
    Gossip,
    Intent,
    MessageError,
    Nack,
    message_from_wire,
    message_to_wire,
    replies,
)
from zones.core.ranges import floor_ranges
from zones.core.wire import COMMAND_DTYPE, MIGRANT_DTYPE, REPLY_DTYPE, ROW_DTYPE


def test_wire_dtypes_have_documented_sizes():
    assert (
        ROW_DTYPE.itemsize,
        MIGRANT_DTYPE.itemsize,
        REPLY_DTYPE.itemsize,
        COMMAND_DTYPE.itemsize,
    ) == (52, 100, 16, 28)


@given(st.integers(0, 40), st.integers(0, 2**63))
def test_every_message_round_trips_through_plain_data(n, hlc):
    rows = np.zeros(n, MIGRANT_DTYPE)
    rows["id"] = np.arange(n) + 7
    rows["epoch"] = 3
    answers = replies(np.arange(n, dtype=np.uint64), np.ones(n), np.zeros(n))
    commands = np.zeros(n, COMMAND_DTYPE)
    for message in [
        Intent(src=0, dst=1, hlc=hlc, rows=rows),
        Ack(src=1, dst=0, hlc=hlc, replies=answers),
        Nack(src=1, dst=0, hlc=hlc, replies=answers),
        Forward(src=0, dst=2, hlc=hlc, commands=commands),
        Gossip(src=2, dst=0, hlc=hlc, ranges=floor_ranges(3, version=5)),
    ]:
        wire = message_to_wire(message)
        assert all(isinstance(v, (int, str, bytes, dict)) for v in wire.values())
        back = message_from_wire(wire)
        assert type(back) is type(message) and back.hlc == hlc and back.dst == message.dst
        if isinstance(message, Gossip):
            assert np.array_equal(back.ranges.starts, message.ranges.starts)
        else:
            field = {
                "zone.intent": "rows",
                "zone.ack": "replies",
                "zone.nack": "replies",
                "zone.forward": "commands",
            }[message.type]
            assert getattr(back, field).tobytes() == getattr(message, field).tobytes()


@pytest.mark.parametrize(
    "wire, message",
    [
        ("intent", "must be a dict"),
        ({"type": "zone.teleport"}, "unknown zone message type"),
        ({"type": "zone.ack", "src": 1, "dst": 0}, "missing field"),
        ({"type": "zone.ack", "src": -1, "dst": 0, "hlc": 0, "replies": b""}, "non-negative"),
        ({"type": "zone.ack", "src": 1, "dst": 0, "hlc": 0, "replies": "text"}, "must be bytes"),
        (
            {"type": "zone.intent", "src": 1, "dst": 0, "hlc": 0, "rows": b"\x00" * 47},
            "whole number",
        ),
        (
            {
                "type": "zone.gossip",
                "src": 1,
                "dst": 0,
                "hlc": 0,
                "ranges": {"version": 1, "starts": [0, 0]},
            },
            "strictly",
        ),
    ],
)
def test_malformed_messages_raise_a_clear_error(wire, message):
    with pytest.raises(MessageError, match=message):
        message_from_wire(wire)
