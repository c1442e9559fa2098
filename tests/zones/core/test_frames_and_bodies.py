"""Interest frames on the wire, and the 55-bone bodies inside them (docs/protocol.md §2)."""

import numpy as np
import pytest

from zones.core.crowd import FLOOR_Y_M
from zones.core.skeleton import (
    BONE_NAMES,
    REST_POSE,
    bodies,
    body_offsets,
    bone_positions,
)
from zones.core.wire import (
    BODY_DTYPE,
    BONES_PER_BODY,
    FRAME_FAR_ROWS,
    FRAME_HEADER_DTYPE,
    FRAME_MAGIC,
    FRAME_ROW_DTYPE,
    INPUT_DTYPE,
    ROW_DTYPE,
    RowFlag,
    frame_decode,
    frame_encode,
    frame_rows,
    frames_encode,
)

HEADER = 24
TICK_MS = 1_795_000_000_050


def random_rows(rng: np.random.Generator, n: int) -> np.ndarray:
    rows = np.zeros(n, ROW_DTYPE)
    rows["id"] = rng.integers(1, 2**62, n, dtype=np.uint64)
    rows["pos"] = rng.uniform(0, 128, (n, 3))
    rows["vel"] = rng.uniform(-4, 4, (n, 3))
    rows["hlc"] = rng.integers(0, 2**63, n, dtype=np.uint64)
    rows["epoch"] = rng.integers(1, 2**32, n, dtype=np.uint32)
    rows["flags"] = RowFlag.AUTHORITATIVE | RowFlag.VISITOR_ROOT
    rows["zone"] = rng.integers(0, 32, n)
    return rows


def walker(vel: tuple[float, float, float], ident: int = 1099511627777) -> np.ndarray:
    """One visitor root at (0, FLOOR_Y_M, 0) — stride start — with velocity `vel`."""
    row = np.zeros(1, ROW_DTYPE)
    row["id"], row["pos"], row["vel"] = ident, (0.0, FLOOR_Y_M, 0.0), vel
    row["flags"] = RowFlag.AUTHORITATIVE | RowFlag.VISITOR_ROOT
    return row


def bone(name: str) -> int:
    return BONE_NAMES.index(name)


# --- sizes the protocol document promises -----------------------------------------------------


def test_the_wire_sizes_are_those_of_the_protocol():
    assert FRAME_HEADER_DTYPE.itemsize == HEADER
    assert ROW_DTYPE.itemsize == 52
    assert FRAME_ROW_DTYPE.itemsize == 24
    assert {n: FRAME_ROW_DTYPE.fields[n][1] for n in FRAME_ROW_DTYPE.names} == {
        "id": 0,
        "pos": 8,
        "vel": 14,
        "flags": 20,
        "zone": 22,
    }
    assert BODY_DTYPE.itemsize == 8 + BONES_PER_BODY * 3 * 2 == 338
    assert INPUT_DTYPE.itemsize == 16
    assert BONES_PER_BODY == len(BONE_NAMES) == len(set(BONE_NAMES)) == 55
    offsets = {name: FRAME_HEADER_DTYPE.fields[name][1] for name in FRAME_HEADER_DTYPE.names}
    assert offsets == {
        "magic": 0,
        "version": 2,
        "kind": 3,
        "ack_seq": 4,
        "tick_ms": 8,
        "rows": 16,
        "bodies": 18,
        "flags": 20,
    }


# --- frames ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n_rows", "n_bodies", "far"), [(0, 0, False), (1, 0, True), (17, 5, False)]
)
def test_a_frame_decodes_to_what_was_encoded(n_rows, n_bodies, far):
    rng = np.random.default_rng(n_rows)
    rows = random_rows(rng, n_rows)
    blocks = bodies(rows[:n_bodies])
    data = frame_encode(rows, blocks, ack_seq=4_000_000_000, tick_ms=TICK_MS, far=far)
    assert len(data) == HEADER + 24 * n_rows + 338 * n_bodies
    assert data[:2] == b"FM"
    header, got_rows, got_bodies = frame_decode(data)
    assert header["magic"] == FRAME_MAGIC and header["version"] == 2 and header["kind"] == 1
    assert header["ack_seq"] == 4_000_000_000
    assert header["tick_ms"] == TICK_MS
    assert (header["rows"], header["bodies"]) == (n_rows, n_bodies)
    assert header["flags"] == (FRAME_FAR_ROWS if far else 0)
    np.testing.assert_array_equal(got_rows["id"], rows["id"])
    np.testing.assert_array_equal(got_rows["flags"], rows["flags"])
    np.testing.assert_array_equal(got_rows["zone"], rows["zone"])
    np.testing.assert_allclose(got_rows["pos"], rows["pos"], atol=0.005 + 1e-6)  # to the cm
    np.testing.assert_allclose(got_rows["vel"], rows["vel"], atol=0.005 + 1e-6)
    assert got_bodies.tobytes() == blocks.tobytes()
    np.testing.assert_array_equal(got_bodies["bones"], blocks["bones"])


@pytest.mark.parametrize("seed", range(6))
def test_many_frames_at_once_are_the_frames_one_at_a_time(seed):
    rng = np.random.default_rng(seed)
    v = int(rng.integers(0, 40))
    row_counts = rng.integers(0, 6, v)
    body_counts = np.where(rng.random(v) < 0.4, rng.integers(0, 4, v), 0)
    rows = frame_rows(random_rows(rng, int(row_counts.sum())))
    blocks = bodies(random_rows(rng, int(body_counts.sum())))
    acks = rng.integers(0, 2**32, v)
    far = rng.random(v) < 0.3
    got = frames_encode(rows, row_counts, blocks, body_counts, acks=acks, tick_ms=TICK_MS, far=far)
    assert len(got) == v
    row_ends, body_ends = np.cumsum(row_counts), np.cumsum(body_counts)
    for i, frame in enumerate(got):
        one = frame_encode(
            rows[row_ends[i] - row_counts[i] : row_ends[i]],
            blocks[body_ends[i] - body_counts[i] : body_ends[i]],
            ack_seq=int(acks[i]),
            tick_ms=TICK_MS,
            far=bool(far[i]),
        )
        assert bytes(frame) == one, f"frame {i} of {v}"


def test_no_visitors_make_no_frames():
    none = np.zeros(0, np.int64)
    got = frames_encode(
        np.zeros(0, FRAME_ROW_DTYPE),
        none,
        np.zeros(0, BODY_DTYPE),
        none,
        acks=none,
        tick_ms=TICK_MS,
        far=np.zeros(0, bool),
    )
    assert got == []


def test_the_header_is_little_endian_at_the_documented_offsets():
    data = frame_encode(
        random_rows(np.random.default_rng(0), 2),
        np.zeros(0, BODY_DTYPE),
        ack_seq=0x01020304,
        tick_ms=0x0A0B0C0D0E0F,
        far=True,
    )
    assert data[0:4] == bytes([0x46, 0x4D, 2, 1])
    assert int.from_bytes(data[4:8], "little") == 0x01020304
    assert int.from_bytes(data[8:16], "little") == 0x0A0B0C0D0E0F
    assert int.from_bytes(data[16:18], "little") == 2
    assert int.from_bytes(data[18:20], "little") == 0
    assert int.from_bytes(data[20:24], "little") == FRAME_FAR_ROWS


def good_frame() -> bytes:
    rows = random_rows(np.random.default_rng(7), 3)
    return frame_encode(rows, bodies(rows[:1]), ack_seq=9, tick_ms=TICK_MS, far=False)


def patched(data: bytes, offset: int, value: bytes) -> bytes:
    return data[:offset] + value + data[offset + len(value) :]


@pytest.mark.parametrize(
    ("mangle", "complaint"),
    [
        (lambda d: b"", "shorter than the header"),
        (lambda d: d[: HEADER - 1], "shorter than the header"),
        (lambda d: patched(d, 0, b"MF"), "bad magic"),
        (lambda d: patched(d, 0, b"\0\0"), "bad magic"),
        (lambda d: patched(d, 3, b"\x02"), "bad magic or kind"),
        (lambda d: patched(d, 2, b"\x01"), "version 1"),
        (lambda d: patched(d, 2, b"\x00"), "version 0"),
        (lambda d: d[:-1], "the header announces"),
        (lambda d: d + b"\0", "the header announces"),
        (lambda d: patched(d, 16, (4).to_bytes(2, "little")), "the header announces"),
        (lambda d: patched(d, 18, (0).to_bytes(2, "little")), "the header announces"),
        (lambda d: d[:HEADER], "the header announces"),
    ],
    ids=[
        "empty",
        "short",
        "swapped-magic",
        "zero-magic",
        "wrong-kind",
        "version-1",
        "version-0",
        "one-byte-short",
        "one-byte-long",
        "more-rows-announced",
        "fewer-bodies-announced",
        "header-only",
    ],
)
def test_a_frame_of_the_wrong_shape_is_refused(mangle, complaint):
    data = good_frame()
    frame_decode(data)  # the unmangled frame is fine
    with pytest.raises(ValueError, match=complaint):
        frame_decode(mangle(data))


# --- bodies ----------------------------------------------------------------------------------


def test_every_visitor_gets_a_body_of_55_bones_in_millimetres():
    rows = random_rows(np.random.default_rng(3), 6)
    blocks = bodies(rows)
    assert blocks.dtype == BODY_DTYPE
    np.testing.assert_array_equal(blocks["id"], rows["id"])
    assert blocks["bones"].shape == (6, 55, 3)
    offsets = body_offsets(rows)
    # millimetres, rounded: never more than half a millimetre from the float pose
    assert np.abs(blocks["bones"] / 1000.0 - offsets).max() <= 0.0005 + 1e-6
    # a body is human-sized: no bone further than 1.2 m from its root
    assert np.abs(blocks["bones"]).max() < 1200
    assert bodies(rows[:0]).size == 0


def test_the_feet_stand_near_the_floor_below_the_root_and_the_head_is_above_it():
    for vel in [(0.0, 0.0, 0.0), (1.5, 0.0, 0.0), (0.0, 0.0, -3.0)]:
        root = walker(vel)
        world = bone_positions(root, bodies(root))[0]
        for foot in ("foot_l", "foot_r", "toes_l", "toes_r"):
            y = world[bone(foot), 1]
            assert 0.0 <= y <= 0.2, (vel, foot, y)
            horizontal = np.hypot(*(world[bone(foot), [0, 2]] - root["pos"][0, [0, 2]]))
            assert horizontal < 0.4, (vel, foot, horizontal)
        assert world[bone("head_top"), 1] > root["pos"][0, 1] + 0.6
        assert world[:, 1].min() >= 0.0  # nothing below the floor


def test_a_standing_visitor_is_in_the_rest_pose_wherever_it_stands():
    root = walker((0.0, 0.0, 0.0))
    for x in (0.0, 3.3, 77.7):
        root["pos"][0, 0] = x
        np.testing.assert_allclose(body_offsets(root)[0], REST_POSE, atol=1e-6)
    left, right = REST_POSE[bone("hand_l")], REST_POSE[bone("hand_r")]
    np.testing.assert_allclose(left * [-1, 1, 1], right)  # mirror images
    assert REST_POSE[bone("toes_l"), 2] > 0.1  # the rest pose faces +z


def test_a_body_turns_to_face_the_walking_direction():
    along_z = body_offsets(walker((0.0, 0.0, 2.0)))[0]
    along_x = body_offsets(walker((2.0, 0.0, 0.0)))[0]
    # the same stride (same id and distance walked), turned a quarter to the right
    np.testing.assert_allclose(along_x[:, 0], along_z[:, 2], atol=1e-5)
    np.testing.assert_allclose(along_x[:, 2], -along_z[:, 0], atol=1e-5)
    np.testing.assert_allclose(along_x[:, 1], along_z[:, 1], atol=1e-6)
    assert not np.allclose(along_x, along_z, atol=0.01)


def test_mid_stride_the_toes_point_where_the_visitor_walks():
    # at the origin a visitor whose id is a multiple of 97 is at stride phase 0: the rest pose
    ident = 97 * 11_335_171_423
    toes = bone("toes_l")
    for vel, forward in [
        ((0.0, 0.0, 2.0), (0.0, 0.0, 1.0)),
        ((2.0, 0.0, 0.0), (1.0, 0.0, 0.0)),
        ((0.0, 0.0, -2.0), (0.0, 0.0, -1.0)),
        ((-1.0, 0.0, 1.0), (-(0.5**0.5), 0.0, 0.5**0.5)),
    ]:
        pose = body_offsets(walker(vel, ident))[0]
        reach = float(np.dot(pose[toes] - pose[bone("foot_l")], forward))
        assert abs(reach - 0.14) < 1e-5, (vel, reach)
        np.testing.assert_allclose(pose[:, 1], REST_POSE[:, 1], atol=1e-6)


def test_turning_keeps_every_bone_at_the_same_distance_from_the_root():
    # at the origin the stride phase does not depend on the heading, so only the turn differs
    angles = np.linspace(0, 2 * np.pi, 13)
    poses = [body_offsets(walker((2.0 * np.sin(a), 0.0, 2.0 * np.cos(a))))[0] for a in angles]
    lengths = np.linalg.norm(poses, axis=2)
    np.testing.assert_allclose(lengths, np.broadcast_to(lengths[0], lengths.shape), atol=1e-5)
    assert not np.allclose(poses[0], poses[3], atol=0.01)


def test_a_walker_swings_its_limbs_as_it_walks_and_each_visitor_keeps_its_own_phase():
    poses = []
    for z in np.arange(0.0, 1.4, 0.07):  # one stride, as positions along the way
        root = walker((0.0, 0.0, 1.4))
        root["pos"][0, 2] = z
        poses.append(body_offsets(root)[0])
    foot = bone("foot_l")
    swing = [p[foot, 2] for p in poses]
    assert max(swing) - min(swing) > 0.1  # the foot moves forward and back
    torso = [p[bone("head"), 2] for p in poses]
    assert max(torso) - min(torso) < 1e-6  # the head does not
    two = np.concatenate([walker((0.0, 0.0, 1.4), 1 << 40), walker((0.0, 0.0, 1.4), (1 << 40) + 1)])
    a, b = body_offsets(two)
    assert not np.allclose(a, b, atol=1e-3)  # a crowd does not march in step


def test_bodies_are_deterministic_for_the_same_rows():
    rows = random_rows(np.random.default_rng(11), 20)
    first = bodies(rows)
    assert bodies(rows.copy()).tobytes() == first.tobytes()
    assert bodies(rows).tobytes() == first.tobytes()
    walked = rows.copy()
    walked["pos"] += walked["vel"] * np.float32(0.25)
    assert bodies(walked).tobytes() != first.tobytes()  # they do walk
    # a body does not depend on who else is in the batch
    one_by_one = np.concatenate([bodies(rows[i : i + 1]) for i in range(rows.size)])
    assert one_by_one.tobytes() == first.tobytes()


def test_bone_positions_are_the_root_plus_the_offsets():
    rows = random_rows(np.random.default_rng(5), 4)
    blocks = bodies(rows)
    world = bone_positions(rows, blocks)
    assert world.shape == (4, 55, 3)
    expected = rows["pos"][:, None, :].astype(np.float64) + body_offsets(rows)
    np.testing.assert_allclose(world, expected, atol=0.0006)
    moved = rows.copy()
    moved["pos"] += np.float32(3.0)
    np.testing.assert_allclose(bone_positions(moved, blocks) - world, 3.0, atol=1e-4)
    with pytest.raises(TypeError):
        bone_positions(rows[["id", "pos"]], blocks)


def test_rows_packet_round_trip_and_malformed_packets():
    from zones.core.wire import ROWS_HEADER_DTYPE, rows_packet, rows_unpack

    rows = np.zeros(4, ROW_DTYPE)
    rows["id"] = [5, 6, 7, 8]
    data = rows_packet(31, 1234, 1_800_000_000_050, rows)
    assert len(data) == ROWS_HEADER_DTYPE.itemsize + 4 * ROW_DTYPE.itemsize == 24 + 208
    zone, tick, tick_ms, back = rows_unpack(data)
    assert (zone, tick, tick_ms) == (31, 1234, 1_800_000_000_050)
    assert np.array_equal(back, rows)
    assert rows_unpack(rows_packet(0, 1, 2, rows[:0]))[3].size == 0
    for bad, reason in [
        (b"", "shorter than the header"),
        (data[:-1], "not whole 52-byte rows"),
        (b"\x00" + data[1:], "bad magic or kind"),
        (data[:3] + b"\x01" + data[4:], "bad magic or kind"),  # an interest frame's kind
        (data[:2] + b"\x09" + data[3:], "version 9, expected 2"),
    ]:
        with pytest.raises(ValueError, match=reason):
            rows_unpack(bad)


def test_frame_rows_are_centimetres_clamped_to_what_the_format_holds():
    from zones.core.wire import frame_rows, view_rows

    rows = np.zeros(4, ROW_DTYPE)
    rows["pos"] = [[1.234, 0.0, 127.996], [-0.5, 0.0, 1000.0], [655.35, 1.0, 0.004], [0, 0, 0]]
    rows["vel"] = [[10.0, -10.0, 0.006], [400.0, -400.0, 0.0], [0, 0, 0], [0, 0, 0]]
    q = frame_rows(rows)
    assert q["pos"].tolist() == [[123, 0, 12800], [0, 0, 65535], [65535, 100, 0], [0, 0, 0]]
    assert q["vel"].tolist() == [[1000, -1000, 1], [32767, -32767, 0], [0, 0, 0], [0, 0, 0]]
    back = view_rows(q)
    np.testing.assert_allclose(back["pos"][0], [1.23, 0.0, 128.0], atol=1e-5)
    np.testing.assert_allclose(back["vel"][0], [10.0, -10.0, 0.01], atol=1e-5)
