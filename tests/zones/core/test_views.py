"""A visitor's cut of the merged view and its events, as properties; each with a control.

Each property is a check that returns what it found wrong; the controls plant the
bug the property exists for and show the check finds it.
"""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from zones.core import views
from zones.core.constants import INTEREST_RADIUS_M
from zones.core.interest import resolve_authority
from zones.core.views import (
    BODIES_EVERY,
    BODIES_PHASE,
    FAR_EVERY,
    FAR_RADIUS_M,
    FAR_ROWS,
    NEAR_BODIES,
    NEAR_ROWS,
    EventKind,
    cut,
    detect_events,
    frames,
    nearest_within,
    own_rows,
)
from zones.core.wire import ROW_DTYPE, RowFlag, frame_decode

OWNED = RowFlag.AUTHORITATIVE
STAGING = RowFlag.AUTHORITATIVE | RowFlag.STAGING | RowFlag.GHOST
INCOMING = RowFlag.GHOST | RowFlag.INCOMING
BORDER_X = 64.0
EDGE_M = 0.01  # distances this close to a radius are left out: float32 may round either way


def merged(raw: np.ndarray) -> np.ndarray:
    return resolve_authority(raw)


def unmerged(raw: np.ndarray) -> np.ndarray:
    """The planted bug: rows of every zone sorted by id, authority never resolved."""
    return raw[np.argsort(raw["id"], kind="stable")]


def received(view: np.ndarray, visitors: np.ndarray, phases: np.ndarray) -> list[np.ndarray]:
    """What each visitor's frame decodes to, cut from `view`."""
    own = own_rows(view, visitors)
    visible = cut(view, own, phases)
    return [frame_decode(f) for f in frames(view, visible, [0] * own.size, 1)]


# --- no duplicate, no gap across a border ---------------------------------------------------

entity_at = st.tuples(
    st.floats(BORDER_X - 12, BORDER_X + 12, width=32),
    st.floats(18, 30, width=32),
    st.sampled_from(["owned", "admitted", "promoted"]),
)


def handoff_raw(entities: list[tuple[float, float, str]]) -> tuple[np.ndarray, dict[int, tuple]]:
    """Rows of zone 0 (x < BORDER_X) and zone 1, the true position of each entity.

    An entity that is "admitted" is staging in its zone and incoming in the other
    (same epoch); "promoted" is owned in the other at a higher epoch while its old
    zone still publishes it staging. The other zone's copy is 30 cm along.
    """
    rows, truth = [], {}
    for i, (x, z, phase) in enumerate(entities):
        ident, home = i + 1, int(x >= BORDER_X)
        here = (ident, (x, 1.0, z), home)
        there = (ident, (x + 0.3, 1.0, z), 1 - home)
        if phase == "owned":
            rows.append((*here, OWNED, 1))
            truth[ident] = here[1]
        elif phase == "admitted":
            rows += [(*here, STAGING, 2), (*there, INCOMING, 2)]
            truth[ident] = here[1]
        else:
            rows += [(*here, STAGING, 2), (*there, OWNED, 3)]
            truth[ident] = there[1]
    out = np.zeros(len(rows), ROW_DTYPE)
    for k, (ident, pos, zone, flags, epoch) in enumerate(rows):
        out[k]["id"], out[k]["pos"], out[k]["zone"] = ident, pos, zone
        out[k]["flags"], out[k]["epoch"] = flags | RowFlag.VISITOR_ROOT, epoch
    return out, truth


def border_violations(merge, entities, phase: int) -> list[str]:
    """Every visitor must see each entity within its radius once, and nothing else twice."""
    raw, truth = handoff_raw(entities)
    visitors = np.array(sorted(truth), np.uint64)
    phases = np.full(visitors.size, phase, np.int64)
    radius = FAR_RADIUS_M if phase % FAR_EVERY == 0 else INTEREST_RADIUS_M
    found = []
    seen_by = received(merge(raw), visitors, phases)
    for me, (_, rows, _) in zip(visitors.tolist(), seen_by, strict=True):
        seen = rows["id"].tolist()
        if len(seen) != len(set(seen)):
            found.append(f"visitor {me} sees {sorted(seen)}: duplicates")
        centre = np.array(truth[me], np.float32)
        for ident, pos in truth.items():
            d = float(np.linalg.norm(np.array(pos, np.float32) - centre))
            if abs(d - radius) < EDGE_M:
                continue
            if (d <= radius) != (ident in seen):
                found.append(f"visitor {me}: entity {ident} at {d:.2f} m, seen: {ident in seen}")
    return found


@settings(max_examples=150, deadline=None)
@given(st.lists(entity_at, min_size=1, max_size=20), st.integers(0, 3))
def test_across_a_border_each_entity_within_the_radius_is_seen_exactly_once(entities, phase):
    assert border_violations(merged, entities, phase) == []


def test_control_a_cut_that_skips_resolve_authority_shows_duplicates():
    entities = [(BORDER_X - 1.0, 20.0, "owned"), (BORDER_X - 0.5, 20.0, "admitted")]
    found = border_violations(unmerged, entities, 1)
    assert any("duplicates" in line for line in found), found


# --- level of detail ------------------------------------------------------------------------


def crowd(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    rows = np.zeros(n, ROW_DTYPE)
    rows["id"] = np.arange(n, dtype=np.uint64) + 1
    angle, r = rng.uniform(0, 2 * np.pi, n), np.sqrt(rng.uniform(0, 1, n)) * 6.0
    rows["pos"][:, 0], rows["pos"][:, 1] = 40.0 + r * np.cos(angle), 1.0
    rows["pos"][:, 2] = 40.0 + r * np.sin(angle)
    rows["flags"] = OWNED | np.where(rng.random(n) < 0.7, RowFlag.VISITOR_ROOT, RowFlag.NPC)
    return rows


def detail_violations(view: np.ndarray, visitors: np.ndarray, phases: np.ndarray) -> list[str]:
    """Caps, your own row, and the nearest rows and bodies rather than any."""
    found = []
    pos = {int(i): p for i, p in zip(view["id"], view["pos"], strict=True)}
    roots = set(view["id"][(view["flags"] & RowFlag.VISITOR_ROOT) != 0].tolist())
    for me, phase, (header, rows, bodies) in zip(
        visitors.tolist(), phases.tolist(), received(view, visitors, phases), strict=True
    ):
        far = phase % FAR_EVERY == 0
        cap, radius = (FAR_ROWS, FAR_RADIUS_M) if far else (NEAR_ROWS, INTEREST_RADIUS_M)
        if rows.size > cap or bodies.size > NEAR_BODIES:
            found.append(f"visitor {me}: {rows.size} rows, {bodies.size} bodies")
        if bodies.size and phase % BODIES_EVERY != BODIES_PHASE:
            found.append(f"visitor {me}: bodies on phase {phase}")
        if me not in rows["id"].tolist() or bool(header["flags"] & 1) != far:
            found.append(f"visitor {me}: own row missing or far flag wrong")
        d = np.linalg.norm(view["pos"] - pos[me], axis=1)
        within = np.sort(d[d <= radius])
        if rows.size and within.size >= rows.size:
            got = np.linalg.norm(np.array([pos[int(i)] for i in rows["id"]]) - pos[me], axis=1)
            if got.max() > within[rows.size - 1] + EDGE_M:
                found.append(f"visitor {me}: a row at {got.max():.2f} m beyond a nearer one")
        if not set(bodies["id"].tolist()) <= roots:
            found.append(f"visitor {me}: a body of something that is not a visitor")
    return found


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 400), st.integers(0, 2**16), st.integers(0, 3))
def test_level_of_detail_caps_every_frame_whatever_the_crowd(n, seed, tick):
    view = crowd(n, seed)
    visitors = view["id"][:60]
    phases = tick + np.arange(visitors.size, dtype=np.int64)
    assert detail_violations(view, visitors, phases) == []


def test_control_a_cut_without_the_caps_is_caught(monkeypatch):
    view = crowd(300, 7)
    visitors, phases = view["id"][:8], np.arange(8, dtype=np.int64)
    monkeypatch.setattr(views, "NEAR_ROWS", 10_000)
    monkeypatch.setattr(views, "NEAR_BODIES", 10_000)
    found = detail_violations(view, visitors, phases)
    assert any("rows" in line and "bodies" in line for line in found), found


def test_nearest_within_keeps_the_nearest_inside_the_radius():
    d2 = np.array([[4.0, 1.0, 9.0, 0.0, 30.0], [50.0, 40.0, 1.0, 60.0, 2.0]])
    mask = nearest_within(d2, 25.0, 3)
    assert mask.tolist() == [[True, True, False, True, False], [False, False, True, False, True]]
    assert nearest_within(d2, 25.0, 10).tolist() == (d2 <= 25.0).tolist()


# --- events ---------------------------------------------------------------------------------

tick_of_visitor = st.tuples(
    st.integers(0, 3), st.booleans(), st.integers(0, 3)
)  # zone, staging, booth


def run_events(detect, ticks: list[list[tuple[int, bool, int]]]) -> list[tuple]:
    """Feed the visitors' own rows tick by tick, remembering what was told like the gateway."""
    visitors = len(ticks[0])
    known_zone, known_booth = np.zeros(visitors, np.int64), np.zeros(visitors, np.int64)
    told = []
    for t, tick in enumerate(ticks):
        own = np.zeros(visitors, ROW_DTYPE)
        own["id"] = np.arange(visitors, dtype=np.uint64) + 100
        own["zone"] = [zone for zone, _, _ in tick]
        own["flags"] = [STAGING if staging else OWNED for _, staging, _ in tick]
        booths = np.array([booth for _, _, booth in tick], np.int64)
        events = detect(own, booths, known_zone, known_booth)
        for entity, kind, before, after in zip(
            events.entity.tolist(),
            events.kind.tolist(),
            events.before.tolist(),
            events.after.tolist(),
            strict=True,
        ):
            told.append((t, entity - 100, kind, before, after))
            memory = known_zone if kind == EventKind.ZONE_CHANGED else known_booth
            memory[entity - 100] = after
    return told


def event_violations(detect, ticks: list[list[tuple[int, bool, int]]]) -> list[str]:
    """zone_changed exactly once per change of the settled zone; booth_entered per booth."""
    told = run_events(detect, ticks)
    found = []
    for v in range(len(ticks[0])):
        zone = booth = 0
        expected = []
        for t, tick in enumerate(ticks):
            now_zone, staging, now_booth = tick[v]
            if not staging and now_zone != zone:
                expected.append((t, v, EventKind.ZONE_CHANGED, zone, now_zone))
                zone = now_zone
            if now_booth != booth:
                expected.append((t, v, EventKind.BOOTH_ENTERED, booth, now_booth))
                booth = now_booth
        mine = [e for e in told if e[1] == v]
        if sorted(mine) != sorted(expected):
            found.append(f"visitor {v}: told {mine}, expected {expected}")
    return found


@settings(max_examples=200, deadline=None)
@given(
    st.integers(1, 6).flatmap(
        lambda v: st.lists(
            st.lists(tick_of_visitor, min_size=v, max_size=v), min_size=1, max_size=25
        )
    )
)
def test_each_settled_zone_change_and_each_booth_change_is_told_exactly_once(ticks):
    assert event_violations(detect_events, ticks) == []


def test_control_counting_a_staging_row_as_settled_is_caught():
    def hasty(own, booths, known_zone, known_booth):
        own = own.copy()
        own["flags"] &= ~np.uint16(RowFlag.STAGING)
        return detect_events(own, booths, known_zone, known_booth)

    ticks = [[(1, True, 0)], [(1, False, 0)]]  # staging into zone 1, then settled there
    assert event_violations(hasty, ticks) != []
    assert event_violations(detect_events, ticks) == []


def test_control_telling_a_change_again_every_tick_is_caught():
    def forgetful(own, booths, known_zone, known_booth):
        return detect_events(own, booths, np.zeros_like(known_zone), np.zeros_like(known_booth))

    ticks = [[(0, False, 2)], [(0, False, 2)]]  # one booth change, then standing still
    assert event_violations(forgetful, ticks) != []
    assert event_violations(detect_events, ticks) == []
