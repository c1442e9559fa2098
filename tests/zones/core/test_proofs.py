"""SMT proofs of the fabric core's rules, over all values rather than samples.

Each proof states a claim about free z3 variables and asserts that its negation
is unsatisfiable, i.e. that no assignment of the variables breaks it. The
admission quotas and the interest band are not re-implemented here: the real
functions from zones.core are called with z3 terms through `Z3`, an `Ops`
whose min/max build z3 expressions, so what is proved is the code that runs.
Where the code cannot take z3 terms (numpy's searchsorted, the gossip rule,
the range map validation), the rule is modelled in a line or two and a
hypothesis test checks the model against the real code on concrete values.

Each control plants a bug and asserts that the same claim then has a
counterexample, so the proofs cannot pass vacuously.

Arithmetic model: the rules run on numpy int64 (codes and range starts are
uint32 but are only compared, never combined arithmetically). Every rule is a
few additions, subtractions, multiplications by small constants and min/max,
so for inputs below 2^40 in magnitude no intermediate value exceeds 2^43, far
from int64's limit of 2^63: numpy computes exactly the mathematical integers.
The proofs therefore use z3.Int (unbounded integers). A claim proved over all
integers holds in particular for every such int64 input, and linear integer
arithmetic is decided much faster than 64-bit bit-vectors, which would need
the same no-overflow side conditions to say the same thing.
"""

from itertools import pairwise
from typing import Any, NamedTuple

import numpy as np
import pytest
import z3
from hypothesis import given
from hypothesis import strategies as st

from zones.core.admission import inbound_quota, spawn_quota
from zones.core.constants import (
    AOI_CELLS,
    CODE_SPACE,
    LATENCY_TICKS,
    MAX_INBOUND_PER_TICK,
    MAX_ZONES,
    MIGRATION_HEADROOM,
    MIN_RANGE_CODES,
    SPAWN_CAP,
    SPLIT_ALIGN_CODES,
    ZONE_CAPACITY,
)
from zones.core.ranges import RangeMap, RangeMapError, adopt, interest_band
from zones.core.repartition import RepartitionError, merge_plan, split_plan, split_point

SOLVER_TIMEOUT_MS = 30_000
ZONE_COUNTS = range(1, MAX_ZONES + 1)


class Z3Ops:
    """The `Ops` protocol on z3 integer terms."""

    def minimum(self, a: Any, b: Any) -> Any:
        return z3.If(a <= b, a, b)

    def maximum(self, a: Any, b: Any) -> Any:
        return z3.If(a >= b, a, b)


Z3 = Z3Ops()


class MinimumIsMaximum(Z3Ops):
    """A planted bug: every minimum computed as a maximum."""

    def minimum(self, a: Any, b: Any) -> Any:
        return self.maximum(a, b)


def prove(claim: z3.BoolRef) -> None:
    """Assert that `claim` holds for every value of its free variables."""
    solver = z3.Solver()
    solver.set("timeout", SOLVER_TIMEOUT_MS)
    solver.add(z3.Not(claim))
    result = solver.check()
    if result == z3.sat:
        print(f"counterexample: {solver.model()}")
    detail = solver.model() if result == z3.sat else solver.reason_unknown()
    assert result == z3.unsat, f"claim not proved ({result}): {detail}"


def counterexample(claim: z3.BoolRef) -> z3.ModelRef:
    """Assert that some value of the free variables breaks `claim`, and return it."""
    solver = z3.Solver()
    solver.set("timeout", SOLVER_TIMEOUT_MS)
    solver.add(z3.Not(claim))
    assert solver.check() == z3.sat, "a planted bug went unnoticed"
    return solver.model()


def value(model: z3.ModelRef, term: z3.ArithRef) -> int:
    return model.eval(term, model_completion=True).as_long()


# --- range maps ------------------------------------------------------------------------


def symbolic_starts(n: int, name: str = "s") -> list[z3.ArithRef]:
    return [z3.Int(f"{name}{i}") for i in range(n)]


def well_formed(starts: list[Any]) -> z3.BoolRef:
    """s_0 = 0 < s_1 < ... < s_{n-1} < CODE_SPACE."""
    return z3.And(starts[0] == 0, *(a < b for a, b in pairwise(starts)), starts[-1] < CODE_SPACE)


def validation_checks(starts: list[Any]) -> list[Any]:
    """The conditions RangeMap.__post_init__ tests, written as the code writes them.

    Works on Python integers and on z3 terms alike. np.diff is taken in int64,
    which for starts below 2^40 in magnitude is exact subtraction.
    """
    return [
        starts[0] == 0,
        *(b - a > 0 for a, b in pairwise(starts)),
        starts[-1] < CODE_SPACE,
    ]


def range_ends(starts: list[Any]) -> list[Any]:
    """Range i is [starts[i], ends[i]); the last range ends at CODE_SPACE."""
    return [*starts[1:], z3.IntVal(CODE_SPACE)]


def holders(starts: list[Any], code: Any) -> z3.ArithRef:
    """How many ranges contain `code`."""
    return z3.Sum(
        [
            z3.If(z3.And(lo <= code, code < hi), 1, 0)
            for lo, hi in zip(starts, range_ends(starts), strict=True)
        ]
    )


def zone_by_counting(starts: list[Any], code: Any, indicator: Any) -> Any:
    """(number of starts at or below the code) - 1.

    For sorted starts this is np.searchsorted(starts, code, side="right") - 1.
    """
    return sum(indicator(start <= code) for start in starts) - 1


def z3_indicator(condition: z3.BoolRef) -> z3.ArithRef:
    return z3.If(condition, 1, 0)


def disjoint_and_covering(starts: list[Any], code: z3.ArithRef) -> z3.BoolRef:
    """Every code of the code space lies in exactly one range."""
    in_space = z3.And(code >= 0, code < CODE_SPACE)
    return z3.Implies(in_space, holders(starts, code) == 1)


@st.composite
def range_maps(draw: Any, version: Any = None) -> RangeMap:
    n = draw(st.integers(1, MAX_ZONES))
    cuts = draw(
        st.lists(st.integers(1, CODE_SPACE - 1), min_size=n - 1, max_size=n - 1, unique=True)
    )
    return RangeMap(
        starts=np.array([0, *sorted(cuts)], dtype=np.int64),
        version=draw(version if version is not None else st.integers(0, 10)),
    )


@st.composite
def maps_and_codes(draw: Any) -> tuple[RangeMap, list[int]]:
    ranges = draw(range_maps())
    starts = [int(s) for s in ranges.starts]
    edges = sorted({c for s in starts for c in (s - 1, s, s + 1) if 0 <= c < CODE_SPACE})
    codes = draw(
        st.lists(
            st.one_of(st.integers(0, CODE_SPACE - 1), st.sampled_from(edges)),
            min_size=1,
            max_size=100,
        )
    )
    return ranges, codes


def test_assigned_zone_is_in_range_and_its_range_holds_the_code() -> None:
    """For every map of n = 1..32 zones and every code c in [0, 2^30), the zone
    a = #{i : s_i <= c} - 1 satisfies 0 <= a < n and s_a <= c < e_a."""
    code = z3.Int("c")
    for n in ZONE_COUNTS:
        starts = symbolic_starts(n)
        zone = zone_by_counting(starts, code, z3_indicator)
        ends = range_ends(starts)
        holds = [z3.Implies(zone == i, z3.And(starts[i] <= code, code < ends[i])) for i in range(n)]
        prove(
            z3.Implies(
                z3.And(well_formed(starts), code >= 0, code < CODE_SPACE),
                z3.And(zone >= 0, zone < n, *holds),
            )
        )


@given(maps_and_codes())
def test_assign_computes_the_counting_formula(map_and_codes: tuple[RangeMap, list[int]]) -> None:
    """RangeMap.assign is the zone index proved correct above, on concrete maps and codes."""
    ranges, codes = map_and_codes
    starts = [int(s) for s in ranges.starts]
    expected = [zone_by_counting(starts, c, int) for c in codes]
    assert ranges.assign(np.array(codes, dtype=np.uint32)).tolist() == expected


def test_ranges_are_disjoint_and_cover_the_code_space() -> None:
    """For every map of n = 1..32 zones, each code in [0, 2^30) lies in exactly one
    range: never in two (disjoint), never in none (covering)."""
    code = z3.Int("c")
    for n in ZONE_COUNTS:
        starts = symbolic_starts(n)
        prove(z3.Implies(well_formed(starts), disjoint_and_covering(starts, code)))


def test_validation_implies_disjoint_and_covering() -> None:
    """For n = 1..32, starts that pass RangeMap.__post_init__ (first start 0,
    strictly increasing differences, last start below 2^30) lie in [0, 2^30) -
    so freezing them as uint32 loses nothing - and make non-empty, disjoint,
    covering ranges."""
    code = z3.Int("c")
    for n in ZONE_COUNTS:
        starts = symbolic_starts(n)
        in_space = z3.And(*(z3.And(s >= 0, s < CODE_SPACE) for s in starts))
        non_empty = z3.And(*(lo < hi for lo, hi in zip(starts, range_ends(starts), strict=True)))
        prove(
            z3.Implies(
                z3.And(validation_checks(starts)),
                z3.And(
                    in_space,
                    non_empty,
                    well_formed(starts),
                    disjoint_and_covering(starts, code),
                ),
            )
        )


@st.composite
def start_lists(draw: Any) -> list[int]:
    """Valid starts, or valid starts with one entry overwritten (often making them invalid)."""
    starts = [int(s) for s in draw(range_maps()).starts]
    if draw(st.booleans()):
        edges = [*starts, -1, CODE_SPACE - 1, CODE_SPACE]
        replacement = st.one_of(st.integers(-(2**40) + 1, 2**40 - 1), st.sampled_from(edges))
        starts[draw(st.integers(0, len(starts) - 1))] = draw(replacement)
    return starts


@given(start_lists())
def test_range_map_accepts_exactly_the_modelled_validation_checks(starts: list[int]) -> None:
    """A gossiped map is accepted iff it passes the checks the proof above assumes."""
    try:
        RangeMap.from_wire({"version": 0, "starts": starts})
    except RangeMapError:
        accepted = False
    else:
        accepted = True
    assert accepted == all(validation_checks(starts))


class SymbolicMap(NamedTuple):
    """A range map of a symbolic number of zones: only starts[:n] are meaningful."""

    n: Any
    starts: list[Any]
    version: Any


def symbolic_map(name: str) -> SymbolicMap:
    return SymbolicMap(
        z3.Int(f"{name}_n"), symbolic_starts(MAX_ZONES, f"{name}_s"), z3.Int(f"{name}_version")
    )


def valid_map(m: SymbolicMap) -> z3.BoolRef:
    """1 <= n <= 32, s_0 = 0 < s_1 < ... < s_{n-1} < CODE_SPACE, version >= 0."""
    return z3.And(
        m.n >= 1,
        m.n <= MAX_ZONES,
        m.starts[0] == 0,
        *(z3.Implies(i + 1 < m.n, a < b) for i, (a, b) in enumerate(pairwise(m.starts))),
        *(z3.Implies(m.n == i + 1, s < CODE_SPACE) for i, s in enumerate(m.starts)),
        m.version >= 0,
    )


def map_holders(m: SymbolicMap, code: z3.ArithRef) -> z3.ArithRef:
    """How many of the n ranges of `m` contain `code`."""
    ends = [z3.If(m.n == i + 1, CODE_SPACE, nxt) for i, nxt in enumerate(m.starts[1:])]
    ends.append(z3.IntVal(CODE_SPACE))
    return z3.Sum(
        [
            z3.If(z3.And(i < m.n, lo <= code, code < hi), 1, 0)
            for i, (lo, hi) in enumerate(zip(m.starts, ends, strict=True))
        ]
    )


def adopt_model(current: SymbolicMap, received: SymbolicMap) -> SymbolicMap:
    """`adopt`: the received map if its version is newer, else the current one."""
    newer = received.version > current.version
    return SymbolicMap(
        z3.If(newer, received.n, current.n),
        [z3.If(newer, r, c) for r, c in zip(received.starts, current.starts, strict=True)],
        z3.If(newer, received.version, current.version),
    )


def test_adopted_map_is_valid_disjoint_and_covering() -> None:
    """For any two valid maps with any zone counts (both symbolic, 1..32) and any
    versions, the map gossip adopts is valid, its ranges are disjoint and cover the
    code space, and its version never goes back."""
    current, received = symbolic_map("current"), symbolic_map("received")
    adopted = adopt_model(current, received)
    code = z3.Int("c")
    in_space = z3.And(code >= 0, code < CODE_SPACE)
    prove(
        z3.Implies(
            z3.And(valid_map(current), valid_map(received)),
            z3.And(
                valid_map(adopted),
                z3.Implies(in_space, map_holders(adopted, code) == 1),
                adopted.version >= current.version,
            ),
        )
    )


@given(range_maps(version=st.integers(0, 3)), range_maps(version=st.integers(0, 3)))
def test_adopt_keeps_the_newer_map(current: RangeMap, received: RangeMap) -> None:
    """`adopt` behaves as the rule modelled in the proof above."""
    expected = received if received.version > current.version else current
    assert adopt(current, received) is expected


# --- interest band ---------------------------------------------------------------------


def band_of_symbolic_range() -> tuple[z3.BoolRef, Any, Any, Any, Any]:
    lo, hi = z3.Ints("lo hi")
    band_lo, band_hi = interest_band(lo, hi, ops=Z3)
    return z3.And(lo >= 0, lo < hi, hi <= CODE_SPACE), lo, hi, band_lo, band_hi


def test_interest_band_covers_its_range_within_the_code_space() -> None:
    """For all 0 <= lo < hi <= 2^30, interest_band(lo, hi) = [bl, bh) has
    bl <= lo, hi <= bh, 0 <= bl and bh <= 2^30."""
    in_space, lo, hi, band_lo, band_hi = band_of_symbolic_range()
    prove(
        z3.Implies(
            in_space, z3.And(band_lo <= lo, hi <= band_hi, band_lo >= 0, band_hi <= CODE_SPACE)
        )
    )


def test_interest_band_width_bound_does_not_depend_on_zone_count() -> None:
    """For all 0 <= lo < hi <= 2^30: bh - bl <= (1 + 2 AOI_CELLS)(hi - lo).

    The zone count n appears nowhere in the claim: the bound holds for a range of
    any width, whichever map it belongs to."""
    in_space, lo, hi, band_lo, band_hi = band_of_symbolic_range()
    prove(z3.Implies(in_space, band_hi - band_lo <= (1 + 2 * AOI_CELLS) * (hi - lo)))


# --- admission -------------------------------------------------------------------------


def inbound_claim(
    live: Any, requested: Any, admitted: Any, quota: Any, capacity: Any, per_tick: Any
) -> z3.BoolRef:
    """With live in [0, capacity], requested >= 0 and admitted in [0, per_tick], the
    quota is in [0, requested] and leaves both the capacity and the rate respected."""
    return z3.Implies(
        z3.And(live >= 0, live <= capacity, requested >= 0, admitted >= 0, admitted <= per_tick),
        z3.And(
            quota >= 0,
            quota <= requested,
            live + quota <= capacity,
            admitted + quota <= per_tick,
        ),
    )


def test_inbound_quota_never_exceeds_capacity_or_rate() -> None:
    """For the default limits and for any capacity and rate a zone may be given:
    0 <= q <= requested, live + q <= capacity, admitted + q <= per-tick rate.

    Since q >= 0, live + q and admitted + q again satisfy the preconditions: the
    claim is an inductive invariant, so it holds after any number of batches."""
    live, requested, admitted = z3.Ints("live requested admitted")
    quota = inbound_quota(live, requested, admitted, ops=Z3)
    prove(inbound_claim(live, requested, admitted, quota, ZONE_CAPACITY, MAX_INBOUND_PER_TICK))
    capacity, per_tick = z3.Ints("capacity per_tick")
    quota = inbound_quota(live, requested, admitted, capacity=capacity, per_tick=per_tick, ops=Z3)
    prove(inbound_claim(live, requested, admitted, quota, capacity, per_tick))


def test_batches_within_a_tick_never_exceed_capacity_or_rate() -> None:
    """Four intents in one tick, each quota computed from the live count and
    admitted count the previous ones left, with any request sizes: live never
    passes ZONE_CAPACITY and the tick never admits more than MAX_INBOUND_PER_TICK."""
    live = start_live = z3.Int("live")
    admitted: Any = 0
    requests = z3.Ints("r0 r1 r2 r3")
    bounds = []
    for requested in requests:
        quota = inbound_quota(live, requested, admitted, ops=Z3)
        live, admitted = live + quota, admitted + quota
        bounds += [quota >= 0, live <= ZONE_CAPACITY, admitted <= MAX_INBOUND_PER_TICK]
    prove(
        z3.Implies(
            z3.And(start_live >= 0, start_live <= ZONE_CAPACITY, *(r >= 0 for r in requests)),
            z3.And(bounds),
        )
    )


@pytest.mark.parametrize(
    "quota_of",
    [
        pytest.param(
            lambda live, requested, admitted: inbound_quota(
                live, requested, admitted, ops=MinimumIsMaximum()
            ),
            id="minimum-replaced-by-maximum",
        ),
        pytest.param(
            lambda live, requested, admitted: inbound_quota(
                live, requested, admitted, capacity=ZONE_CAPACITY + 1, ops=Z3
            ),
            id="capacity-plus-one",
        ),
    ],
)
def test_control_planted_admission_bug_breaks_the_capacity_claim(quota_of: Any) -> None:
    live, requested, admitted = z3.Ints("live requested admitted")
    quota = quota_of(live, requested, admitted)
    claim = inbound_claim(live, requested, admitted, quota, ZONE_CAPACITY, MAX_INBOUND_PER_TICK)
    model = counterexample(claim)
    assert z3.is_false(model.eval(claim, model_completion=True))


def test_spawns_never_pass_the_spawn_cap() -> None:
    """For all live >= 0 and requested >= 0, for SPAWN_CAP and for any spawn cap a
    zone may be given: 0 <= q <= requested, and q > 0 implies live + q <= cap."""
    live, requested, cap = z3.Ints("live requested spawn_cap")
    for spawn_cap in (SPAWN_CAP, cap):
        quota = spawn_quota(live, requested, spawn_cap=spawn_cap, ops=Z3)
        prove(
            z3.Implies(
                z3.And(live >= 0, requested >= 0),
                z3.And(
                    quota >= 0, quota <= requested, z3.Implies(quota > 0, live + quota <= spawn_cap)
                ),
            )
        )


# --- the headroom theorem ----------------------------------------------------------------
#
# A migrant is promoted LATENCY_TICKS ticks after it is sent, and a zone admits at most
# MAX_INBOUND_PER_TICK intents per tick, so the largest burst that can arrive before the
# first migrant of it is promoted is MAX_INBOUND_PER_TICK x LATENCY_TICKS. Spawns stop
# at SPAWN_CAP (test_spawns_never_pass_the_spawn_cap), leaving MIGRATION_HEADROOM slots,
# which must hold that burst.


def test_headroom_holds_the_largest_burst_before_promotion() -> None:
    """MIGRATION_HEADROOM >= MAX_INBOUND_PER_TICK x LATENCY_TICKS, and the spawn cap
    plus that burst fits in ZONE_CAPACITY."""
    headroom = z3.IntVal(MIGRATION_HEADROOM)
    burst = z3.IntVal(MAX_INBOUND_PER_TICK) * z3.IntVal(LATENCY_TICKS)
    prove(z3.And(headroom >= burst, z3.IntVal(SPAWN_CAP) + burst <= ZONE_CAPACITY))


def burst_claim(spawn_cap: int) -> tuple[z3.BoolRef, z3.ArithRef, list[z3.ArithRef]]:
    """With 0 <= live <= spawn_cap and requests 0 <= r_t <= MAX_INBOUND_PER_TICK, one per tick
    (admitted reset to 0 each tick, live growing): every quota equals its request."""
    live = start_live = z3.Int("live")
    requests = [z3.Int(f"r{t}") for t in range(1, LATENCY_TICKS + 1)]
    admitted_in_full = []
    for requested in requests:
        quota = inbound_quota(live, requested, 0, ops=Z3)
        admitted_in_full.append(quota == requested)
        live = live + quota
    precondition = z3.And(
        start_live >= 0,
        start_live <= spawn_cap,
        *(z3.And(r >= 0, r <= MAX_INBOUND_PER_TICK) for r in requests),
    )
    return z3.Implies(precondition, z3.And(admitted_in_full)), start_live, requests


def test_burst_at_the_full_rate_for_latency_ticks_is_admitted_without_a_nack() -> None:
    """For every live count up to SPAWN_CAP and every burst of up to
    MAX_INBOUND_PER_TICK intents per tick for LATENCY_TICKS ticks, each tick's
    quota equals its request: not a single nack."""
    claim, _, _ = burst_claim(SPAWN_CAP)
    prove(claim)


def test_burst_split_across_neighbours_amid_departures_and_spawns_is_admitted_in_full() -> None:
    """The same burst as the step meets it: each tick, departures, then spawns
    (any number requested, through spawn_quota), then one intent from each of the
    2 AOI_CELLS band neighbours, together at most MAX_INBOUND_PER_TICK. Every
    intent is admitted in full for LATENCY_TICKS ticks."""
    live = start_live = z3.Int("live")
    assumptions = [start_live >= 0, start_live <= SPAWN_CAP]
    admitted_in_full = []
    for t in range(LATENCY_TICKS):
        departed, spawns = z3.Int(f"departed{t}"), z3.Int(f"spawns{t}")
        assumptions += [departed >= 0, departed <= live, spawns >= 0]
        live = live - departed
        live = live + spawn_quota(live, spawns, ops=Z3)
        batch = [z3.Int(f"r{t}_{neighbour}") for neighbour in range(2 * AOI_CELLS)]
        assumptions += [*(r >= 0 for r in batch), z3.Sum(batch) <= MAX_INBOUND_PER_TICK]
        admitted: Any = 0
        for requested in batch:
            quota = inbound_quota(live, requested, admitted, ops=Z3)
            admitted_in_full.append(quota == requested)
            live, admitted = live + quota, admitted + quota
    prove(z3.Implies(z3.And(assumptions), z3.And(admitted_in_full)))


def test_no_more_than_the_burst_is_admitted_before_promotion() -> None:
    """Whatever is requested, LATENCY_TICKS ticks of four intents each admit at
    most MAX_INBOUND_PER_TICK x LATENCY_TICKS migrants: the burst above is the largest."""
    live = start_live = z3.Int("live")
    requests = []
    total: Any = 0
    for t in range(LATENCY_TICKS):
        admitted: Any = 0
        for neighbour in range(2 * AOI_CELLS):
            requested = z3.Int(f"r{t}_{neighbour}")
            requests.append(requested)
            quota = inbound_quota(live, requested, admitted, ops=Z3)
            live, admitted, total = live + quota, admitted + quota, total + quota
    prove(
        z3.Implies(
            z3.And(start_live >= 0, start_live <= ZONE_CAPACITY, *(r >= 0 for r in requests)),
            total <= MAX_INBOUND_PER_TICK * LATENCY_TICKS,
        )
    )


def test_control_headroom_of_399_lets_a_burst_be_nacked() -> None:
    """With one slot less of headroom (spawn cap 1401) the burst claim is false, and
    the counterexample z3 finds makes the real numpy code send a nack."""
    claim, start_live, requests = burst_claim(ZONE_CAPACITY - 399)
    model = counterexample(claim)
    live, nacked = np.int64(value(model, start_live)), False
    for r in requests:
        requested = np.int64(value(model, r))
        quota = inbound_quota(live, requested, np.int64(0))
        nacked |= bool(quota < requested)
        live += quota
    assert nacked


# --- split, merge and gossip of range maps (zones/core/repartition.py, gossip.py) ------------


def ceil_to_column(x: Any) -> Any:
    """The smallest multiple of SPLIT_ALIGN_CODES at or above x (z3 Int division floors
    for a positive divisor, as Python's // does)."""
    return -((-x) / SPLIT_ALIGN_CODES) * SPLIT_ALIGN_CODES


def floor_to_column(x: Any) -> Any:
    return (x / SPLIT_ALIGN_CODES) * SPLIT_ALIGN_CODES


def split_cut_model(lo: Any, hi: Any, candidate: Any, ops: Any = Z3) -> tuple[Any, Any, Any]:
    """`split_point`'s bounds and clamp: (first, last, cut) for a candidate column boundary."""
    first = ceil_to_column(lo + MIN_RANGE_CODES)
    last = floor_to_column(hi - MIN_RANGE_CODES)
    return first, last, ops.minimum(ops.maximum(candidate, first), last)


def split_cut_claim(ops: Any = Z3) -> z3.BoolRef:
    lo, hi, candidate = z3.Ints("lo hi candidate")
    first, last, cut = split_cut_model(lo, hi, candidate, ops)
    return z3.Implies(
        z3.And(
            lo >= 0, lo < hi, hi <= CODE_SPACE, first <= last, candidate % SPLIT_ALIGN_CODES == 0
        ),
        z3.And(
            cut - lo >= MIN_RANGE_CODES,
            hi - cut >= MIN_RANGE_CODES,
            cut % SPLIT_ALIGN_CODES == 0,
        ),
    )


def test_a_split_cut_leaves_both_parts_at_least_a_column_on_a_column_boundary() -> None:
    """For every range [lo, hi) of the code space that split_point accepts (some column
    boundary lies MIN_RANGE_CODES inside each end) and every candidate column boundary,
    the clamped cut leaves both parts at least MIN_RANGE_CODES and lies on a column."""
    prove(split_cut_claim())


def test_control_a_clamp_taking_the_larger_bound_first_cuts_outside_the_range() -> None:
    """min and max swapped in the clamp: a cut that leaves an empty or short part exists."""
    counterexample(split_cut_claim(MinimumIsMaximum()))


@given(st.integers(0, 2**12 - 2), st.integers(2, 2**12), st.data())
def test_split_point_computes_the_modelled_cut(first_column: int, columns: int, data: Any) -> None:
    """split_point returns the model's clamp of one of the two column boundaries around
    the median, and refuses exactly the ranges the model calls too small."""
    lo = first_column * SPLIT_ALIGN_CODES + data.draw(st.integers(0, SPLIT_ALIGN_CODES - 1))
    hi = min(CODE_SPACE, lo + data.draw(st.integers(1, columns * SPLIT_ALIGN_CODES)))
    codes = np.sort(np.array(data.draw(st.lists(st.integers(lo, hi - 1), max_size=20)), np.int64))
    first = -(-(lo + MIN_RANGE_CODES) // SPLIT_ALIGN_CODES) * SPLIT_ALIGN_CODES
    last = (hi - MIN_RANGE_CODES) // SPLIT_ALIGN_CODES * SPLIT_ALIGN_CODES
    try:
        cut = split_point(lo=lo, hi=hi, codes=codes.astype(np.uint32))
    except RepartitionError:
        assert first > last
        return
    median = int(codes[codes.size // 2]) if codes.size else (lo + hi) // 2
    below = median // SPLIT_ALIGN_CODES * SPLIT_ALIGN_CODES
    assert cut in {min(max(c, first), last) for c in (below, below + SPLIT_ALIGN_CODES)}


def split_model(m: SymbolicMap, k: Any, cut: Any) -> SymbolicMap:
    """`split_plan` on range k: the cut inserted after starts[k], one zone more, version + 1."""
    starts = [
        m.starts[0],
        *(
            z3.If(j <= k, m.starts[j], z3.If(j == k + 1, cut, m.starts[j - 1]))
            for j in range(1, MAX_ZONES)
        ),
    ]
    return SymbolicMap(m.n + 1, starts, m.version + 1)


def merge_model(m: SymbolicMap, k: Any, drop_lower: bool = False) -> SymbolicMap:
    """`merge_plan` of ranges k and k + 1: the start of range k + 1 removed, version + 1."""
    gone = k if drop_lower else k + 1
    starts = [
        z3.If(j < gone, m.starts[j], m.starts[j + 1] if j + 1 < MAX_ZONES else z3.IntVal(0))
        for j in range(MAX_ZONES)
    ]
    return SymbolicMap(m.n - 1, starts, m.version + 1)


def start_at(m: SymbolicMap, i: Any) -> z3.ArithRef:
    """starts[i] of a symbolic map, for a symbolic index i."""
    term: z3.ArithRef = z3.IntVal(0)
    for j in reversed(range(MAX_ZONES)):
        term = z3.If(i == j, m.starts[j], term)
    return term


def end_at(m: SymbolicMap, i: Any) -> z3.ArithRef:
    """The end of range i: the next start, or CODE_SPACE for the last range."""
    return z3.If(i + 1 == m.n, z3.IntVal(CODE_SPACE), start_at(m, i + 1))


def split_claim(margin: int = MIN_RANGE_CODES) -> z3.BoolRef:
    m, k, cut = symbolic_map("m"), z3.Int("k"), z3.Int("cut")
    split = split_model(m, k, cut)
    code = z3.Int("c")
    return z3.Implies(
        z3.And(
            valid_map(m),
            m.n < MAX_ZONES,
            k >= 0,
            k < m.n,
            cut - start_at(m, k) >= margin,
            end_at(m, k) - cut >= margin,
        ),
        z3.And(
            valid_map(split),
            z3.Implies(z3.And(code >= 0, code < CODE_SPACE), map_holders(split, code) == 1),
            split.version == m.version + 1,
        ),
    )


def test_a_split_of_a_valid_map_is_a_valid_map_one_version_newer() -> None:
    """For every valid map of n < 32 zones, every range k of it and every cut at least
    MIN_RANGE_CODES inside both ends of range k (what split_point returns, proved above),
    the split map is valid, disjoint and covering, and one version newer."""
    prove(split_claim())


def test_control_a_cut_allowed_on_the_range_start_makes_an_empty_range() -> None:
    """Without the margin, a cut on starts[k] gives range k no codes: the map is invalid."""
    counterexample(split_claim(margin=0))


def merge_claim(drop_lower: bool = False) -> z3.BoolRef:
    m, k = symbolic_map("m"), z3.Int("k")
    merged = merge_model(m, k, drop_lower)
    code = z3.Int("c")
    return z3.Implies(
        z3.And(valid_map(m), m.n >= 2, k >= 0, k + 1 < m.n),
        z3.And(
            valid_map(merged),
            z3.Implies(z3.And(code >= 0, code < CODE_SPACE), map_holders(merged, code) == 1),
            merged.version == m.version + 1,
        ),
    )


def test_a_merge_of_two_adjacent_ranges_of_a_valid_map_is_a_valid_map_one_version_newer() -> None:
    """For every valid map of n >= 2 zones and every pair of adjacent ranges k, k + 1,
    removing the start of range k + 1 leaves a valid, disjoint, covering map one version
    newer."""
    prove(merge_claim())


def test_control_a_merge_removing_the_lower_start_breaks_the_map() -> None:
    """Removing starts[k] instead (merging range 0 into range 1 that way moves the first
    start off 0): the merged map is invalid for some map."""
    counterexample(merge_claim(drop_lower=True))


def test_adopting_a_chain_of_received_maps_keeps_a_valid_view_that_never_goes_back() -> None:
    """For any valid view and any three valid maps received in any order (each of any
    zone count and version, duplicates and older ones included), the view after adopting
    each in turn is valid and covering, and its version never decreases on the way."""
    view = symbolic_map("view")
    received = [symbolic_map(f"r{i}") for i in range(3)]
    code = z3.Int("c")
    claims, current = [], view
    for r in received:
        nxt = adopt_model(current, r)
        claims += [
            valid_map(nxt),
            z3.Implies(z3.And(code >= 0, code < CODE_SPACE), map_holders(nxt, code) == 1),
            nxt.version >= current.version,
        ]
        current = nxt
    prove(z3.Implies(z3.And(valid_map(view), *(valid_map(r) for r in received)), z3.And(*claims)))


@given(st.data())
def test_split_plan_and_merge_plan_compute_the_modelled_starts(data: Any) -> None:
    """split_plan and merge_plan on concrete maps give the starts of the models proved above."""
    ranges = data.draw(range_maps(version=st.integers(0, 5)))
    starts = [int(s) for s in ranges.starts]
    k = data.draw(st.integers(0, ranges.n - 1))
    if ranges.n < MAX_ZONES:
        try:
            plan = split_plan(
                ranges=ranges, zone=k, codes=np.zeros(0, np.uint32), new_zone=MAX_ZONES - 1
            )
        except (RepartitionError, IndexError):
            pass  # a range too small, or the spare number already in use
        else:
            cut = int(plan.ranges.starts[k + 1])
            assert plan.ranges.starts.tolist() == [*starts[: k + 1], cut, *starts[k + 1 :]]
            assert plan.ranges.version == ranges.version + 1
    if k + 1 < ranges.n:
        merged = merge_plan(ranges=ranges, keep=k, absorb=k + 1).ranges
        assert merged.starts.tolist() == starts[: k + 1] + starts[k + 2 :]
        assert merged.version == ranges.version + 1
