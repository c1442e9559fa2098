from hypothesis import given
from hypothesis import strategies as st

from zones.core.constants import HLC_LOGICAL_MASK, TICK_MS
from zones.core.hlc import (
    hlc_after_ticks,
    hlc_logical,
    hlc_now,
    hlc_pack,
    hlc_physical,
    hlc_receive,
)

wall = st.integers(min_value=0, max_value=2**40)
events = st.lists(
    st.tuples(st.sampled_from(["local", "recv"]), wall, wall), min_size=1, max_size=200
)


def test_pack_round_trips_physical_and_logical():
    stamp = hlc_pack(1_700_000_000_123, 42)
    assert (hlc_physical(stamp), hlc_logical(stamp)) == (1_700_000_000_123, 42)


def test_pack_refuses_values_that_do_not_fit():
    for bad in [(-1, 0), (1 << 48, 0), (0, 1 << 16), (0, -1)]:
        try:
            hlc_pack(*bad)
        except ValueError as exc:
            assert "fit" in str(exc)
        else:
            raise AssertionError(f"{bad} accepted")


def test_wall_clock_ahead_resets_the_counter():
    assert hlc_now(hlc_pack(100, 7), 200) == hlc_pack(200, 0)


def test_counter_never_wraps_it_carries_into_milliseconds():
    stamp = hlc_pack(100, HLC_LOGICAL_MASK)
    after = hlc_now(stamp, 50)  # wall clock behind: logical increment
    assert after > stamp
    assert hlc_physical(after) == 101 and hlc_logical(after) == 0


def test_ten_thousand_events_in_one_millisecond_stay_ordered():
    stamp = hlc_pack(1000)
    seen = [stamp]
    for _ in range(10_000):
        stamp = hlc_now(stamp, 1000)
        seen.append(stamp)
    assert seen == sorted(set(seen))


@given(events, wall)
def test_clock_is_strictly_monotonic_under_skew_and_receipt(history, start):
    clock = hlc_pack(start)
    for kind, local_wall, remote_wall in history:
        remote = hlc_pack(remote_wall, 0)
        nxt = (
            hlc_now(clock, local_wall)
            if kind == "local"
            else hlc_receive(clock, remote, local_wall)
        )
        assert nxt > clock
        if kind == "recv":
            assert nxt > remote
        assert hlc_physical(nxt) >= local_wall
        clock = nxt


def test_arrival_is_latency_ticks_later_in_physical_time():
    stamp = hlc_pack(5000, 3)
    assert hlc_physical(hlc_after_ticks(stamp, 2)) == 5000 + 2 * TICK_MS
    assert hlc_logical(hlc_after_ticks(stamp, 2)) == 3
