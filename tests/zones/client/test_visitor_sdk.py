"""The visitor SDK against a small in-test market that speaks docs/protocol.md."""

import json

import numpy as np
import pytest

from tests.subprocesses import embedded_environment, run_python
from tests.zones.client.fake_market import KEY_ID_BASE, FakeMarket
from zones.client import JoinRefused, Layout, Visitor, VisitorClosed, example, join_ticket
from zones.client.visitor import visit_url
from zones.core import hilbert
from zones.core.constants import HILBERT_ORDER
from zones.core.wire import FRAME_FAR_ROWS, RowFlag

KEY = "a-visitor-key-of-enough-length"


@pytest.fixture
async def market():
    async with FakeMarket() as market:
        yield market


def near_border(market: FakeMarket) -> tuple[np.ndarray, np.ndarray, int]:
    """A spawn point in zone 0, 2 m from the nearest floor point of another zone, and that point."""
    layout = Layout.from_welcome(market.layout)
    start = market.booth_point(0)
    target, zone = layout.nearest_in_other_zone(start)
    direction = (target - start) / np.linalg.norm(target - start)
    return target - 2.0 * direction, target, zone


# --- welcome and layout --------------------------------------------------------


async def test_welcome_gives_identity_booth_and_a_layout_that_agrees_with_the_range_map(market):
    visitor = await Visitor.connect(market.base_url, 1, booth=2)
    try:
        assert visitor.entity == visitor.welcome["entity"] > 0
        assert visitor.zone == visitor.booth == 2
        assert not visitor.resumed
        layout = visitor.layout
        assert layout.version == 1 and layout.zones == 3
        np.testing.assert_array_equal(layout.starts, market.ranges.starts)
        np.testing.assert_array_equal(layout.hi, [128, 64, 128])
        points = np.random.default_rng(1).uniform(layout.lo, layout.hi, size=(2000, 3))
        expected = market.ranges.assign_positions(points, layout.lo, layout.hi)
        np.testing.assert_array_equal(layout.zone_at(points), expected)
        assert set(np.unique(expected)) == {0, 1, 2}  # the sample crosses every zone
        assert layout.zone_of(market.booth_point(1)) == 1
        assert layout.booth(2)["name"] == "Button Bazaar"
    finally:
        await visitor.close()


def test_zone_at_puts_each_zones_first_cell_in_that_zone_and_the_cell_before_in_the_previous():
    layout = Layout.from_welcome(FakeMarket(zones=4).layout)
    starts = layout.starts.astype(np.int64)
    codes = np.concatenate([starts, starts[1:] - 1])
    cells = hilbert.decode(codes).astype(np.float64)  # axis order (x, z, y)
    side = 1 << HILBERT_ORDER
    centres = layout.lo + (cells[:, [0, 2, 1]] + 0.5) / side * (layout.hi - layout.lo)
    expected = np.concatenate([np.arange(4), np.arange(3)])
    np.testing.assert_array_equal(layout.zone_at(centres), expected)


def test_layout_refuses_starts_that_are_not_a_covering_range_map():
    good = {"version": 3, "bounds": [[0, 0, 0], [10, 10, 10]], "starts": [0, 5], "booths": []}
    assert Layout.from_welcome(good).zones == 2
    for starts in ([5, 0], [0, 0], [1, 5], []):
        with pytest.raises(ValueError):
            Layout.from_welcome({**good, "starts": starts})
    with pytest.raises(ValueError):
        Layout.from_welcome({**good, "bounds": [[0, 0, 0], [0, 10, 10]]})


def test_nearest_point_in_another_zone_is_in_another_zone_and_nothing_nearer_is():
    layout = Layout.from_welcome(FakeMarket().layout)
    start = np.array([20.5, 1.0, 20.5])
    point, zone = layout.nearest_in_other_zone(start)
    assert zone != layout.zone_of(start) and layout.zone_of(point) == zone
    floor = layout.floor_points()
    others = floor[layout.zone_at(floor) != layout.zone_of(start)]
    assert np.linalg.norm(point - start) == pytest.approx(
        np.linalg.norm(others - start, axis=1).min()
    )


@pytest.mark.parametrize(
    ("base", "expected"),
    [
        ("http://127.0.0.1:8000", "ws://127.0.0.1:8000/ws/markets/4/visit/?ticket=a%2Bb%3D"),
        ("https://fabric.example/", "wss://fabric.example/ws/markets/4/visit/?ticket=a%2Bb%3D"),
    ],
)
def test_socket_url_follows_the_base_url_scheme_and_quotes_the_ticket(base, expected):
    ticket = {"ticket": "a+b=", "ws": "/ws/markets/4/visit/"}
    assert visit_url(base, 4, ticket) == expected


# --- interest frames -------------------------------------------------------------


async def test_frames_give_own_position_rows_bodies_latency_and_far_flag():
    seen = []

    def record(visitor, header, rows, bodies, received_ms):
        seen.append((int(header["flags"]), set(rows["id"].tolist()), set(bodies["id"].tolist())))

    async with FakeMarket(frame_age_ms=40) as market:
        at = market.booth_point(1)
        market.npcs = np.array([at + [3.0, 0, 0], at + [0, 0, 12.0]])  # one near, one far
        visitor = await Visitor.connect(market.base_url, 1, at=at, on_frame=record)
        await visitor.wait_for(lambda v: v.stats.frames >= 12, timeout=3)
        await visitor.close()

    np.testing.assert_allclose(visitor.position, at, atol=1e-5)
    own = visitor.rows[visitor.rows["id"] == visitor.entity]
    assert own.size == 1 and own["flags"][0] & RowFlag.VISITOR_ROOT
    stats = visitor.stats
    assert stats.bytes > stats.frames * 24
    assert len(stats.latencies_ms) == stats.frames
    assert stats.latency_percentile(0) >= 39 and stats.latency_percentile(50) < 1000
    near, far = 1000, 1001
    assert stats.far_frames == sum(1 for flags, _, _ in seen if flags & FRAME_FAR_ROWS) > 0
    for flags, ids, body_ids in seen:
        assert visitor.entity in ids and near in ids
        assert (far in ids) == bool(flags & FRAME_FAR_ROWS)
        assert body_ids <= {visitor.entity}
    assert any(body_ids == {visitor.entity} for _, _, body_ids in seen)
    assert any(not body_ids for _, _, body_ids in seen)  # bodies come every 2nd tick


async def test_zone_follows_the_own_row_only_while_it_is_authoritative(market):
    visitor = await Visitor.connect(market.base_url, 1, booth=0)
    root = RowFlag.VISITOR_ROOT
    try:
        market.row_override[visitor.entity] = (2, root | RowFlag.GHOST)
        await visitor.wait_for(
            lambda v: v.rows["zone"][v.rows["id"] == v.entity].tolist() == [2], 2
        )
        assert visitor.zone == 0  # a ghost row says nothing about authority
        market.row_override[visitor.entity] = (1, root | RowFlag.AUTHORITATIVE)
        await visitor.wait_for(lambda v: v.zone == 1, timeout=2)
        assert not visitor.events  # no zone_changed was needed
    finally:
        await visitor.close()


# --- inputs ------------------------------------------------------------------------


async def test_walk_binary_walk_and_move_arrive_in_order_with_increasing_seq(market):
    at = market.booth_point(0)
    visitor = await Visitor.connect(market.base_url, 1, at=at)
    try:
        seqs = [
            await visitor.walk([1.0, 0.0, 0.5]),
            await visitor.walk_binary([0.0, 0.0, -2.0]),
            await visitor.move(at + [0.1, 0, 0.1]),
        ]
        await visitor.wait_for(lambda v: v.ack_seq >= 3, timeout=2)
    finally:
        await visitor.close()
    assert seqs == [1, 2, 3] and visitor.seq == 3
    got = [(r.kind, r.seq, r.vec) for r in market.received]
    assert got == [
        ("input", 1, [1.0, 0.0, 0.5]),
        ("binary", 2, [0.0, 0.0, -2.0]),
        ("move", 3, pytest.approx((at + [0.1, 0, 0.1]).tolist())),
    ]
    assert market.taken(visitor.entity) == [1, 2, 3]


async def test_walking_moves_the_own_row(market):
    at = market.booth_point(0)
    visitor = await Visitor.connect(market.base_url, 1, at=at)
    try:
        await visitor.walk([0.0, 0.0, 5.0])
        await visitor.wait_for(lambda v: v.position is not None and v.position[2] > at[2] + 0.2, 2)
        np.testing.assert_allclose(visitor.velocity, [0, 0, 5.0])
    finally:
        await visitor.close()


async def test_ping_measures_a_round_trip_answered_by_its_pong(market):
    visitor = await Visitor.connect(market.base_url, 1)
    try:
        rtts = [await visitor.ping() for _ in range(3)]
    finally:
        await visitor.close()
    assert all(0 < rtt < 1000 for rtt in rtts)
    assert [p["id"] for p in market.pings] == [1, 2, 3]


# --- events and errors -------------------------------------------------------------


async def test_crossing_a_border_records_booth_entered_then_zone_changed(market):
    start, target, zone = near_border(market)
    visitor = await Visitor.connect(market.base_url, 1, at=start)
    try:
        assert visitor.zone == visitor.booth == 0
        await visitor.walk(target - start)  # 2 m/s: one second to the border
        entered = await visitor.wait_event("booth_entered", timeout=3)
        await visitor.walk([0, 0, 0])
        changed = await visitor.wait_event("zone_changed", timeout=3)
        own_zone = lambda v: v.rows[v.rows["id"] == v.entity]["zone"].tolist()  # noqa: E731
        await visitor.wait_for(lambda v: own_zone(v) == [zone], timeout=2)
    finally:
        await visitor.close()
    assert entered["zone"] == zone and entered["name"] == market.layout["booths"][zone]["name"]
    assert (changed["from"], changed["to"]) == (0, zone)
    assert visitor.booth == visitor.zone == zone
    assert [e["type"] for e in visitor.events][:2] == ["booth_entered", "zone_changed"]
    assert entered["received_ms"] <= changed["received_ms"]


async def test_refused_messages_are_recorded_as_error_frames(market):
    visitor = await Visitor.connect(market.base_url, 1)
    try:
        await visitor.send_raw("not json")
        await visitor.send_raw(b"\x00" * 5)
        await visitor.send_raw(json.dumps({"type": "dance"}))
        seq = await visitor.move(visitor.welcome["layout"]["bounds"][1])  # far away: too fast
        codes = [(await visitor.wait_event("error", timeout=2))["code"] for _ in range(4)]
    finally:
        await visitor.close()
    assert codes == ["bad_json", "bad_binary", "unknown_type", "too_fast"]
    assert visitor.errors[-1]["seq"] == seq
    assert not visitor.events  # errors are not events


async def test_wait_for_times_out_when_the_predicate_never_holds(market):
    visitor = await Visitor.connect(market.base_url, 1)
    try:
        with pytest.raises(TimeoutError):
            await visitor.wait_for(lambda v: False, timeout=0.05)
        with pytest.raises(TimeoutError):
            await visitor.wait_event("zone_changed", timeout=0.05)
    finally:
        await visitor.close()


# --- refusals ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "market_id", "status", "code"),
    [
        ({"key": "short"}, 1, 400, "bad_request"),
        ({"key": KEY, "resume": "r1.x"}, 1, 400, "bad_request"),
        ({"resume": "r1.forged"}, 1, 400, "bad_resume"),
        ({"booth": 9}, 1, 400, "bad_request"),
        ({"at": [500, 1, 1]}, 1, 400, "bad_request"),
        ({}, 2, 404, "no_market"),
    ],
)
async def test_rest_errors_raise_join_refused_with_status_and_code(
    market, body, market_id, status, code
):
    with pytest.raises(JoinRefused) as refused:
        await join_ticket(market.base_url, market_id, **body)
    assert (refused.value.status, refused.value.code) == (status, code)
    assert refused.value.detail


async def test_a_market_not_live_refuses_the_join_with_409(market):
    market.live = False
    with pytest.raises(JoinRefused) as refused:
        await Visitor.connect(market.base_url, 1)
    assert (refused.value.status, refused.value.code) == (409, "market_not_live")


async def test_connect_passes_key_and_resume_through_for_the_market_to_refuse(market):
    with pytest.raises(JoinRefused) as refused:
        await Visitor.connect(market.base_url, 1, key=KEY, resume="r1.x")
    assert refused.value.code == "bad_request"
    assert market.joins == [{"key": KEY, "resume": "r1.x"}]


async def test_join_ticket_sends_only_the_fields_given(market):
    answer = await join_ticket(market.base_url, 1, key=KEY, at=np.array([10, 1, 10]))
    assert market.joins == [{"key": KEY, "at": [10.0, 1.0, 10.0]}]
    assert answer["entity"] > KEY_ID_BASE and answer["ws"] == "/ws/markets/1/visit/"


async def test_a_refused_spawn_raises_visitor_closed_with_the_error_frame(market):
    market.refuse_next = ("booth_full", "Loom Hall is full")
    with pytest.raises(VisitorClosed) as closed:
        await Visitor.connect(market.base_url, 1)
    assert closed.value.close_code == 4503
    assert closed.value.error["code"] == "booth_full"
    assert closed.value.error["message"] == "Loom Hall is full"


@pytest.mark.parametrize(("knob", "close_code"), [("forge", 4401), ("expire", 4402)])
async def test_a_refused_ticket_raises_visitor_closed_with_its_close_code(market, knob, close_code):
    market.forge_tickets = knob == "forge"
    market.ticket_ttl_s = -1.0 if knob == "expire" else 10.0
    with pytest.raises(VisitorClosed) as closed:
        await Visitor.connect(market.base_url, 1)
    assert closed.value.close_code == close_code and closed.value.error is None


async def test_a_second_socket_of_the_same_key_closes_the_first_with_4409(market):
    first = await Visitor.connect(market.base_url, 1, key=KEY)
    second = await Visitor.connect(market.base_url, 1, key=KEY)
    try:
        await first.wait_for(lambda v: v.close_code is not None, timeout=2)
        assert first.close_code == 4409 and first.closed
        assert second.entity == first.entity and second.resumed
        with pytest.raises(VisitorClosed):
            await first.wait_for(lambda v: False, timeout=1)
        with pytest.raises(VisitorClosed) as closed:
            await first.walk([1.0, 0, 0])
        assert closed.value.close_code == 4409
    finally:
        await second.close()


async def test_leave_waits_for_the_close_with_1000(market):
    visitor = await Visitor.connect(market.base_url, 1)
    assert await visitor.leave() == 1000
    assert visitor.entity not in market.entities


# --- reconnect -----------------------------------------------------------------------


async def test_reconnect_resends_only_inputs_after_last_seq_and_keeps_the_entity(market):
    visitor = await Visitor.connect(market.base_url, 1)
    entity = visitor.entity
    for _ in range(3):
        await visitor.walk([0.1, 0, 0])
    await visitor.wait_for(lambda v: v.ack_seq == 3, timeout=2)
    market.hold_inputs = True  # these two are lost with the socket
    await visitor.walk([0.2, 0, 0])
    await visitor.walk_binary([0.3, 0, 0])
    await visitor.wait_for(lambda v: len(market.received) == 5, timeout=2)
    market.hold_inputs = False
    try:
        resent = await visitor.reconnect()
        assert resent == [4, 5]
        assert visitor.resumed and visitor.entity == entity
        assert visitor.welcome["last_seq"] == 3
        await visitor.wait_for(lambda v: v.ack_seq == 5, timeout=2)
        assert await visitor.walk([0, 0, 0]) == 6  # the counter goes on
        await visitor.wait_for(lambda v: v.ack_seq == 6, timeout=2)
    finally:
        await visitor.close()
    assert market.taken(entity) == [1, 2, 3, 4, 5, 6]
    assert [r.seq for r in market.received] == [1, 2, 3, 4, 5, 4, 5, 6]
    assert [r.kind for r in market.received][5:7] == ["input", "binary"]
    assert market.joins[-1].keys() == {"resume"}


async def test_a_key_visitor_in_a_new_process_continues_after_the_markets_last_seq(market):
    first = await Visitor.connect(market.base_url, 1, key=KEY)
    for _ in range(4):
        await first.walk([0, 0, 0])
    await first.wait_for(lambda v: v.ack_seq == 4, timeout=2)
    await first.close()
    again = await Visitor.connect(market.base_url, 1, key=KEY)
    try:
        assert again.entity == first.entity and again.resumed
        assert await again.walk([0, 0, 1.0]) == 5
        await again.wait_for(lambda v: v.ack_seq == 5, timeout=2)
        assert await again.reconnect() == []  # nothing pending: nothing resent
        assert market.joins[-1] == {"key": KEY}
    finally:
        await again.close()


# --- the example ---------------------------------------------------------------------


async def test_the_example_walks_across_a_border_and_leaves(market, capsys):
    market.spawn_at, _, zone = near_border(market)
    status = await example.main(["--url", market.base_url, "--market", "1", "--speed", "5"])
    out = capsys.readouterr().out
    assert status == 0, out
    assert "welcome: entity" in out and f"walking to booth {zone}" in out
    assert out.index("booth_entered:") < out.index("zone_changed:") < out.index("ping:")
    assert "left with close code 1000" in out
    assert not market.entities


async def test_the_example_reports_a_refused_join(market, capsys):
    assert await example.main(["--url", market.base_url, "--market", "7"]) == 2
    assert "404 no_market" in capsys.readouterr().err


def test_the_sdk_loads_no_web_framework(tmp_path):
    code = (
        "import sys, json, zones.client, zones.client.example; "
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    result = run_python(code, embedded_environment(tmp_path))
    assert result.returncode == 0, result.stderr
    loaded = set(json.loads(result.stdout))
    assert "websockets" in loaded  # the probe sees what the SDK imports
    assert not loaded & {"django", "channels", "daphne", "market", "fabric_site"}


async def test_reconnect_never_resends_inputs_the_frames_acknowledged_when_the_market_forgot(
    market,
):
    visitor = await Visitor.connect(market.base_url, 1, key=KEY)
    entity = visitor.entity
    for _ in range(3):
        await visitor.walk([0.1, 0, 0])
    await visitor.wait_for(lambda v: v.ack_seq == 3, timeout=2)
    market.hold_inputs = True  # this one is lost with the socket
    await visitor.walk([0.2, 0, 0])
    await visitor.wait_for(lambda v: len(market.received) == 4, timeout=2)
    market.hold_inputs = False
    market.last_seq.clear()  # a web process killed outright kept no count of what it took
    try:
        resent = await visitor.reconnect()
        assert visitor.welcome["last_seq"] == 0 and visitor.entity == entity
        assert resent == [4]
        await visitor.wait_for(lambda v: v.ack_seq == 4, timeout=2)
    finally:
        await visitor.close()
    assert market.taken(entity) == [1, 2, 3, 4]  # none of the first three twice
