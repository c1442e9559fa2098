"""Every tuning constant of the fabric, with where it comes from.

The numbers are those of the multiplayer-fabric zone server (docs/fabric.md);
derived values are computed here, never repeated elsewhere.
"""

import math
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

# --- NPC needs --------------------------------------------------------------
NEEDS: Final = ("hunger", "hygiene", "fun", "energy")
"""The needs of every NPC, in the order of its needs array. 100 is satisfied, 0 desperate."""

NEED_MAX: Final = 100.0

NEED_DECAY_PER_S: Final = (0.5, 0.3, 0.6, 0.25)
"""How fast each need falls, per second: a full hunger is empty after 200 s, a full
energy after 400 s, so an NPC has something to do every minute or so."""

NEED_DECAY_PER_TICK: Final = tuple(rate / SIM_TICK_HZ for rate in NEED_DECAY_PER_S)

NPC_SPEED_M_PER_S: Final = 1.4
"""An NPC walks at a person's pace, well inside V_MAX."""

SIGHT_RADIUS_M: Final = 10.0
"""An NPC observes the items, NPCs and visitors within this distance."""

MAX_WALK_S: Final = 15.0
"""The longest walk one decision may ask for."""

MAX_TRAVEL_M: Final = NPC_SPEED_M_PER_S * MAX_WALK_S
"""21 m: a move_to or use_item target farther than this is out of range."""

TALK_S: Final = 5.0
TALK_RESTORE_PER_S: Final = (0.0, 0.0, 4.0, 0.0)
"""Talking to someone for TALK_S seconds restores fun at this rate."""

MAX_WAIT_S: Final = 10.0
"""The longest wait one decision may ask for."""

DECIDE_EVERY_TICKS: Final = SIM_TICK_HZ * 3
"""3 s: an NPC's decision is due this long after its last one, or when its action ends."""

DECISION_BATCH_TICKS: Final = 4
"""The NPCs whose decisions are due are taken together every 4 ticks (0.2 s): one
utility pass, or one batch of requests, instead of a few NPCs every tick."""

DECISION_DEADLINE_TICKS: Final = SIM_TICK_HZ * 5
"""5 s: a decision request's lease lapses this long after it was issued; the built-in
utility decision is applied instead."""

WANDER_M: Final = (4.0, 14.0)
"""An NPC with nothing it needs walks this far to a point of its own choosing."""

UTILITY_THRESHOLD: Final = 2.0
"""The built-in decision uses an item only when the item's score reaches this; below,
the NPC wanders."""

# Item kinds: restore per second of each need while used (hunger, hygiene, fun, energy),
# how many NPCs may use one at once, and how long one use lasts in seconds.
ITEM_KINDS: Final = {
    "food_stall": ((8.0, 0.0, 0.0, 1.0), 3, 8.0),
    "wash_fountain": ((0.0, 10.0, 0.0, 0.0), 2, 6.0),
    "stage": ((0.0, 0.0, 6.0, -1.0), 8, 10.0),
    "games": ((0.0, 0.0, 8.0, -1.5), 2, 8.0),
    "bench": ((0.0, 0.0, 0.5, 6.0), 2, 10.0),
}
"""The advertisement of each kind of booth item: what it restores, its slots, its use time."""

# --- split and merge (repartition.py) ---------------------------------------
SPLIT_SLOTS: Final = SPAWN_CAP * 3 // 4
"""1050: a zone holding this many authority slots splits. Three quarters of the spawn
cap, so the split is under way while the zone still admits spawns: the crowd of an
event's opening packs one booth faster than a handoff of half a zone completes."""

MERGE_SLOTS: Final = SPLIT_SLOTS // 4
"""262: two adjacent zones both under this many slots merge. Together they hold at most
half of SPLIT_SLOTS, so the merged zone is far from splitting again (the hysteresis gap)."""

SPLIT_TICK_MS: Final = TICK_MS // 2
"""25 ms: a zone whose step takes half the tick splits, whatever its slot count; the other
half of the tick is for persisting and publishing (docs/fabric.md, "The live market")."""

MERGE_TICK_MS: Final = SPLIT_TICK_MS // 5
"""5 ms: two adjacent zones both under this step time may merge; together under 10 ms,
well below SPLIT_TICK_MS."""

REPARTITION_DWELL_TICKS: Final = SIM_TICK_HZ * 30
"""600 (30 s): after a split or merge, its zones take part in no other for this long. A
handoff of a range completes within a few retransmission timeouts (MAX_RTO_TICKS = 8 s
at the most), so a zone's load has settled before it is judged again."""

FLOOR_COLUMN_BITS: Final = math.ceil(
    math.log2(math.ceil(FLOOR_HEIGHT_M / MARKET_SIZE_M[1] * (1 << HILBERT_ORDER)))
)
"""6: a floor column (ranges.floor_ranges) is a cube of 2^6 cells a side, the smallest
power of two covering the walkable band's 64 cells in the default market."""

SPLIT_ALIGN_CODES: Final = 1 << (3 * FLOOR_COLUMN_BITS)
"""2^18: a split cuts the code line only at a multiple of one floor column's codes, so
a visitor's feet and head stay in one zone, as in the default booth layout."""

MIN_RANGE_CODES: Final = SPLIT_ALIGN_CODES
"""No split leaves a zone less than one floor column."""

GOSSIP_EVERY_TICKS: Final = SIM_TICK_HZ
"""1 s: every zone pushes its range map to every zone of the market this often, and at
once when it adopts a newer one (gossip.py): a map is a few hundred bytes."""
