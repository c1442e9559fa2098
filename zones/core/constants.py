"""Every tuning constant of the fabric, with where it comes from.

The numbers are those of the multiplayer-fabric zone server (docs/fabric.md);
derived values are computed here, never repeated elsewhere.
"""

from typing import Final

# --- time -------------------------------------------------------------------
SIM_TICK_HZ: Final = 20
"""Simulation rate of every zone (the zone server's fixed physics rate)."""

TICK_MS: Final = 1000 // SIM_TICK_HZ  # 50 ms
TICK_SECONDS: Final = 1.0 / SIM_TICK_HZ

HYSTERESIS_TICKS: Final = SIM_TICK_HZ * 4
"""80: ticks an entity must stay outside its zone's range before it migrates
(four seconds), so an entity pacing along a border does not ping-pong."""

LATENCY_TICKS: Final = max(SIM_TICK_HZ // 10, 1)
"""2: a migration's arrival time is the source's HLC now plus this many ticks."""

# --- slots ------------------------------------------------------------------
ZONE_CAPACITY: Final = 1800
"""Authority slots per zone (the zone server's per-process entity budget)."""

MIGRATION_HEADROOM: Final = 400
"""Slots reserved for entities arriving from neighbours; spawns may not use them."""

SPAWN_CAP: Final = ZONE_CAPACITY - MIGRATION_HEADROOM
"""1400: a zone refuses new spawns at this many live entities."""

INTEREST_CAPACITY: Final = 400
"""Ghost slots for rows seen from neighbours, separate from authority slots."""

MAX_MIGRATIONS_PER_TICK: Final = 50
"""Outbound intents (new and retransmitted) a zone sends per tick."""

AOI_CELLS: Final = 2
"""Width of the interest band on each side, in spans of the zone's own width."""

MAX_INBOUND_PER_TICK: Final = 2 * AOI_CELLS * MAX_MIGRATIONS_PER_TICK
"""200: intents a zone admits per tick. A zone exchanges rows with at most
2·AOI_CELLS band neighbours, each sending at most MAX_MIGRATIONS_PER_TICK; more
than that in one tick is answered with a nack and retried with backoff. With
LATENCY_TICKS ticks between admission and promotion, at most
MAX_INBOUND_PER_TICK × LATENCY_TICKS = 400 = MIGRATION_HEADROOM entities can be
admitted before the first of them is promoted (proved in tests/zones/core/
test_proofs.py)."""

# --- space ------------------------------------------------------------------
HILBERT_ORDER: Final = 10
"""Bits per axis: positions are quantised to 1024 cells per axis."""

HILBERT_BITS: Final = 3 * HILBERT_ORDER
CODE_SPACE: Final = 1 << HILBERT_BITS
"""2^30 codes: every range map covers [0, CODE_SPACE)."""

INTEREST_RADIUS_M: Final = 5.0
"""A visitor sees every entity within this distance."""

V_MAX_M_PER_S: Final = 10.0
"""Physical speed bound; a move implying more is rejected."""

MAX_STEP_M: Final = V_MAX_M_PER_S / SIM_TICK_HZ
"""0.5 m: the farthest an entity may travel in one tick."""

MOVE_SLACK_TICKS: Final = SIM_TICK_HZ // 5
"""4 (0.2 s): the most time standing still a move may count as walking time. Moves
reach a zone unevenly (two in one tick, none in the next), so a move may make up
for ticks just gone without one; standing still any longer banks nothing, so no
single move covers more than MOVE_SLACK_TICKS × MAX_STEP_M = 2 m."""

# --- market -----------------------------------------------------------------
MAX_ZONES: Final = 32
DEFAULT_ZONES: Final = 3
ENTITIES_PER_VISITOR: Final = 56
"""1 root + 55 humanoid bones."""

BURST_VISITORS: Final = 144
"""Visitors sent across booth borders at once by the smoke test."""

# --- migration timing -------------------------------------------------------
INITIAL_RTO_TICKS: Final = SIM_TICK_HZ
"""1 s: retransmission timeout while a link's round-trip time is unknown."""

MIN_RTO_TICKS: Final = LATENCY_TICKS + 1
MAX_RTO_TICKS: Final = SIM_TICK_HZ * 8
"""Retransmission backoff doubles up to 8 s."""

NACK_BACKOFF_TICKS: Final = SIM_TICK_HZ // 2
"""After a nack, wait this long (doubling, up to MAX_RTO_TICKS) before retrying."""

IN_FLIGHT_EVERY_TICKS: Final = SIM_TICK_HZ
"""Once a second every zone tells every other which transfers it has in flight to it.
All reports to one zone are made in the same tick (`step.reports_due`), so that a
worker process sends its zones' reports to a zone in one channel message, and the
zones take their turns receiving them through the second."""

FORGET_EVERY_TICKS: Final = SIM_TICK_HZ
"""Once a second a zone forgets the decisions those reports show no intent can need."""

# --- clock ------------------------------------------------------------------
HLC_LOGICAL_BITS: Final = 16
HLC_LOGICAL_MASK: Final = (1 << HLC_LOGICAL_BITS) - 1
HLC_PHYSICAL_BITS: Final = 64 - HLC_LOGICAL_BITS
"""48 bits of milliseconds last until the year 10889."""

# --- default market geometry ------------------------------------------------
MARKET_SIZE_M: Final = (128.0, 64.0, 128.0)
"""Default market bounds (x, y, z) in metres from the origin, y up. The height
is generous on purpose: 64 m over 1024 cells puts the whole walkable band in the
lowest 64 y-cells, so booth borders can be drawn on whole columns."""

FLOOR_Y_M: Final = 1.0
"""Where every entity's root stands, whatever it is told: hip height above the floor.
The market is walked, not flown: velocities are horizontal and moves stay on the floor."""

FLOOR_HEIGHT_M: Final = 4.0
"""Height of the walkable band: a booth owns every cell of a floor column up to
here, so a visitor's feet and head are never in different booths."""
