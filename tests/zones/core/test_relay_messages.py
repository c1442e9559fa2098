"""Gateway ↔ zone messages: every one round-trips through plain data; malformed ones are refused."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from zones.core.messages import MessageError
from zones.core.relay_messages import (
    TO_ZONE_TYPES,
    Despawn,
    Inputs,
    Load,
    Rejected,
    Spawn,
    Spawned,
    relay_to_wire,
    to_gateway_from_wire,
    to_zone_from_wire,
)
from zones.core.wire import COMMAND_DTYPE, SPAWN_DTYPE, RowFlag


def commands(n: int) -> np.ndarray:
    rows = np.zeros(n, COMMAND_DTYPE)
    rows["id"] = np.arange(n, dtype=np.uint64) + (1 << 40)
    rows["vec"] = [1.5, 0.0, -0.5]
    rows["seq"] = np.arange(n) + 1
    return rows


def spawn_rows(n: int) -> np.ndarray:
    rows = np.zeros(n, SPAWN_DTYPE)
    rows["id"] = np.arange(n, dtype=np.uint64) + (1 << 41)
    rows["pos"] = [10.0, 1.0, 12.0]
    rows["kind"] = RowFlag.VISITOR_ROOT
    return rows


def ids(n: int) -> np.ndarray:
    return np.arange(n, dtype=np.uint64) * 3 + 2**63


@given(st.integers(0, 30), st.integers(0, 65535), st.sampled_from(["booth_full", "quarantined"]))
def test_every_message_round_trips_through_plain_data(n, zone, reason):
    to_zone = [
        Inputs(gateway="specific.abc!def", commands=commands(n), alive=ids(n)),
        Spawn(gateway="specific.abc!def", rows=spawn_rows(n)),
        Despawn(ids=ids(n)),
        Load(
            zone=zone % 32,
            version=n,
            slots=n,
            tick_us=zone,
            worker_us=2 * zone,
            codes=np.arange(n, dtype=np.uint32) * 7,
        ),
    ]
    to_gateway = [
        Spawned(zone=zone, spawned=ids(n), refused=ids(n // 2), reason=reason),
        Rejected(zone=zone, commands=commands(n)),
    ]
    for messages, from_wire in ((to_zone, to_zone_from_wire), (to_gateway, to_gateway_from_wire)):
        for message in messages:
            wire = relay_to_wire(message)
            assert all(isinstance(v, (int, str, bytes)) for v in wire.values())
            back = from_wire(wire)
            assert type(back) is type(message)
            assert relay_to_wire(back) == wire


def test_ids_go_as_little_endian_u64_whatever_integers_they_were_given_as():
    wire = relay_to_wire(Despawn(ids=np.array([1, 2**40], np.int64)))
    assert wire["ids"] == np.array([1, 2**40], "<u8").tobytes()
    assert to_zone_from_wire(wire).ids.dtype == np.dtype("<u8")


def test_the_zone_tells_relay_messages_from_zone_messages_by_type():
    assert {"zone.inputs", "zone.spawn", "zone.despawn", "zone.load"} == TO_ZONE_TYPES


def test_a_load_with_a_negative_figure_or_codes_of_the_wrong_size_is_refused():
    good = relay_to_wire(
        Load(
            zone=1, version=2, slots=3, tick_us=4, worker_us=5, codes=np.arange(3, dtype=np.uint32)
        )
    )
    assert to_zone_from_wire(good).codes.tolist() == [0, 1, 2]
    with pytest.raises(MessageError, match="slots must be a non-negative integer"):
        to_zone_from_wire({**good, "slots": -1})
    with pytest.raises(MessageError, match="codes"):
        to_zone_from_wire({**good, "codes": b"\x00" * 5})


GOOD_INPUTS = {"type": "zone.inputs", "gateway": "g", "commands": b"", "alive": b""}
GOOD_SPAWNED = {"type": "zone.spawned", "zone": 1, "spawned": b"", "refused": b"", "reason": "x"}


def without(wire: dict, key: str) -> dict:
    return {k: v for k, v in wire.items() if k != key}


@pytest.mark.parametrize(
    "wire, message",
    [
        ("zone.inputs", "must be a dict"),
        ({"type": "zone.teleport"}, "unknown message type for a zone"),
        ({}, "unknown message type for a zone: None"),
        (GOOD_SPAWNED, "unknown message type for a zone: 'zone.spawned'"),  # the wrong side
        ({"type": "zone.intent", "src": 0, "dst": 1, "hlc": 0, "rows": b""}, "unknown"),
        (without(GOOD_INPUTS, "gateway"), "zone.inputs: missing field 'gateway'"),
        (without(GOOD_INPUTS, "commands"), "missing field 'commands'"),
        (without(GOOD_INPUTS, "alive"), "missing field 'alive'"),
        ({**GOOD_INPUTS, "gateway": 7}, "gateway must be a string"),
        ({**GOOD_INPUTS, "commands": "text"}, "commands must be bytes, got str"),
        ({**GOOD_INPUTS, "alive": [1, 2]}, "alive must be bytes, got list"),
        ({**GOOD_INPUTS, "commands": b"\x00" * 27}, "27 bytes is not a whole number of 28"),
        ({**GOOD_INPUTS, "alive": b"\x00" * 12}, "alive: 12 bytes is not a whole number of 8"),
        ({"type": "zone.spawn", "gateway": "g"}, "zone.spawn: missing field 'rows'"),
        ({"type": "zone.spawn", "rows": b""}, "zone.spawn: missing field 'gateway'"),
        ({"type": "zone.spawn", "gateway": "g", "rows": b"123"}, "not a whole number"),
        ({"type": "zone.spawn", "gateway": None, "rows": b""}, "gateway must be a string"),
        ({"type": "zone.despawn"}, "zone.despawn: missing field 'ids'"),
        ({"type": "zone.despawn", "ids": 5}, "ids must be bytes, got int"),
        ({"type": "zone.despawn", "ids": b"\x01" * 9}, "9 bytes is not a whole number"),
    ],
)
def test_malformed_messages_to_a_zone_raise_a_clear_error(wire, message):
    with pytest.raises(MessageError, match=message):
        to_zone_from_wire(wire)


@pytest.mark.parametrize(
    "wire, message",
    [
        (None, "must be a dict, got NoneType"),
        (GOOD_INPUTS, "unknown message type for a gateway: 'zone.inputs'"),  # the wrong side
        (without(GOOD_SPAWNED, "zone"), "zone.spawned: missing field 'zone'"),
        (without(GOOD_SPAWNED, "spawned"), "missing field 'spawned'"),
        (without(GOOD_SPAWNED, "refused"), "missing field 'refused'"),
        (without(GOOD_SPAWNED, "reason"), "missing field 'reason'"),
        ({**GOOD_SPAWNED, "zone": -1}, "zone must be a non-negative integer"),
        ({**GOOD_SPAWNED, "zone": "1"}, "zone must be a non-negative integer"),
        ({**GOOD_SPAWNED, "zone": True}, "zone must be a non-negative integer"),
        ({**GOOD_SPAWNED, "reason": b"full"}, "reason must be a string"),
        ({**GOOD_SPAWNED, "spawned": b"\x00" * 7}, "spawned: 7 bytes"),
        ({**GOOD_SPAWNED, "refused": bytearray(15)}, "refused: 15 bytes"),
        ({"type": "zone.rejected", "zone": 0}, "zone.rejected: missing field 'commands'"),
        ({"type": "zone.rejected", "commands": b""}, "zone.rejected: missing field 'zone'"),
        ({"type": "zone.rejected", "zone": 0, "commands": b"\x00" * 29}, "29 bytes"),
        ({"type": "zone.rejected", "zone": 1.0, "commands": b""}, "non-negative integer"),
    ],
)
def test_malformed_messages_to_a_gateway_raise_a_clear_error(wire, message):
    with pytest.raises(MessageError, match=message):
        to_gateway_from_wire(wire)


def test_a_bytearray_payload_is_taken_like_bytes():
    wire = {**GOOD_INPUTS, "alive": bytearray(np.array([9], "<u8").tobytes())}
    inputs = to_zone_from_wire(wire)
    assert isinstance(inputs, Inputs) and inputs.alive.tolist() == [9]
