"""The dashboard's zones inside booths and its splits and merges (static/operator_ui/zones.js)
under Node, from the payloads the server sends (market/events/types.py): the zones serving a
booth are grouped under it, idle spare zones apart, and a market without spare zones keeps
one zone per booth; each change is one timeline entry, its plan later marked done."""

from pathlib import Path

from market.events.projections import REPARTITIONS_KEPT
from market.events.types import ZonesRepartitioned
from tests.mapgen.cases import node_answer

RUN = Path(__file__).with_name("zones_node.mjs")
BOOTHS = [{"name": "Looms", "colour": "#aa3300"}, {"name": "Dye Works", "colour": "#0055ff"}]
TOP = 1 << 29
MIDDLE = 1 << 28


def report(zone: int, booth: int, lo: int = 0, hi: int = 0) -> dict:
    name, colour = (
        (BOOTHS[booth]["name"], BOOTHS[booth]["colour"])
        if booth >= 0
        else (
            f"spare zone {zone}",
            "#8a8f98",
        )
    )
    return {
        "zone": zone, "name": name, "colour": colour, "entities": 5, "capacity": 1800,
        "booth": booth, "lo": lo, "hi": hi, "map_version": 1, "health": "ok",
    }  # fmt: skip


def change(
    kind: str, phase: str, version: int, took_s: float | None = None, at_ms: int = 0
) -> dict:
    """A change's payload; `at_ms` 0 stands for an event heard without the planner's time."""
    source, target = (0, 2) if kind == "split" else (2, 0)
    owners = [0, 2, 1] if kind == "split" else [0, 1]
    starts = [0, MIDDLE, TOP] if kind == "split" else [0, TOP]
    return ZonesRepartitioned(
        kind=kind, phase=phase, version=version, source=source, target=target, lo=MIDDLE,
        hi=TOP, booth=0, starts=starts, owners=owners, took_s=took_s, at_ms=at_ms,
    ).payload()  # fmt: skip


def in_node(request: dict, tmp_path: Path) -> dict:
    return node_answer(RUN, request, tmp_path, env={"TZ": "UTC", "PATH": "/usr/bin:/bin"})


def test_zones_are_grouped_under_the_booth_they_serve(tmp_path):
    answer = in_node(
        {
            "booths": BOOTHS,
            "cases": {
                "no spares": [[0, report(0, 0)], [1, report(1, 1)]],
                "before any summary": [],
                "health only": [[0, {"zone": 0, "health": "restarting"}]],
                "idle spare": [[0, report(0, 0)], [1, report(1, 1)], [2, report(2, -1)]],
                "split": [
                    [0, report(0, 0, 0, MIDDLE)],
                    [1, report(1, 1)],
                    [2, report(2, 0, MIDDLE, TOP)],
                ],
                "spare heard of health only": [[3, {"zone": 3, "health": "restarting"}]],
                "a booth the layout does not have": [[2, report(2, 0) | {"booth": 7}]],
            },
            "snapshot": [],
            "events": [],
            "clock": 0,
        },
        tmp_path,
    )
    groups = answer["groups"]
    for plain in ("no spares", "before any summary", "health only"):
        assert groups[plain]["plain"] is True, plain
        assert [g["zones"] for g in groups[plain]["booths"]] == [[0], [1]]
        assert groups[plain]["spares"] == [] and groups[plain]["hasSpares"] is False
    idle = groups["idle spare"]
    assert [g["zones"] for g in idle["booths"]] == [[0], [1]] and idle["spares"] == [2]
    assert idle["plain"] is False and idle["hasSpares"] is True
    split = groups["split"]
    assert [(g["name"], g["zones"]) for g in split["booths"]] == [
        ("Looms", [0, 2]),
        ("Dye Works", [1]),
    ]
    assert split["spares"] == [] and split["plain"] is False and split["hasSpares"] is True
    assert groups["spare heard of health only"]["spares"] == [3]
    assert groups["a booth the layout does not have"]["boothOf"] == [[2, -1]]
    assert answer["hasSparesWithChanges"] is True  # a change known: the market has spares


def test_each_split_and_merge_is_one_entry_newest_first_its_plan_marked_done(tmp_path):
    at = 12 * 3600_000 + 3 * 60_000 + 5_000  # 12:03:05 UTC
    answer = in_node(
        {
            "booths": BOOTHS,
            "cases": {},
            # the snapshot: an older split and merge, both done, and a split planned
            "snapshot": [
                change("split", "planned", 1),
                change("split", "done", 1, 0.8),
                change("merge", "planned", 2),
                change("merge", "done", 2, 1.2),
                change("split", "planned", 3),
            ],
            "events": [
                [change("split", "done", 3, 2.0), at],  # the plan the snapshot held, now done
                [change("merge", "planned", 4), at + 60_000],
                [change("merge", "done", 4, 1.0), at + 61_000],
            ],
            "clock": at,
        },
        tmp_path,
    )
    assert answer["clock"] == "12:03:05"
    assert answer["afterSnapshot"] == [
        ["earlier", "split — booth Looms: zone 0 → zone 2, under way", "planned"],
        ["earlier", "merge — booth Looms: zone 2 → zone 0, done in 1.2 s", "done"],
        ["earlier", "split — booth Looms: zone 0 → zone 2, done in 0.8 s", "done"],
    ]
    first, planned, done = answer["afterEvents"]
    # heard done 2 s after its plan: the plan's time is the page's clock less the 2 s
    assert first[0] == ["12:03:03", "split — booth Looms: zone 0 → zone 2, done in 2.0 s", "done"]
    assert len(first) == 3
    assert planned[0] == ["12:04:05", "merge — booth Looms: zone 2 → zone 0, under way", "planned"]
    assert done[0] == ["12:04:05", "merge — booth Looms: zone 2 → zone 0, done in 1.0 s", "done"]
    assert len(done) == 4


def test_a_change_stamped_by_the_planner_shows_its_own_time_even_from_the_snapshot(tmp_path):
    at = 12 * 3600_000 + 3 * 60_000 + 5_000  # 12:03:05 UTC
    answer = in_node(
        {
            "booths": BOOTHS,
            "cases": {},
            "snapshot": [change("split", "planned", 1, at_ms=at)],
            # heard long after, done 1.5 s after its plan by the planner's clock
            "events": [[change("split", "done", 1, 1.5, at_ms=at + 1500), at + 600_000]],
            "clock": at,
        },
        tmp_path,
    )
    assert answer["afterSnapshot"] == [
        ["12:03:05", "split — booth Looms: zone 0 → zone 2, under way", "planned"]
    ]
    assert answer["afterEvents"][0][0][0] == "12:03:05"


def test_the_timeline_keeps_as_many_changes_as_the_snapshot_holds(tmp_path):
    """The server keeps the last REPARTITIONS_KEPT events, planned and done: as many
    changes as the page keeps, newest first, however long it stays open."""
    snapshot = []
    for version in range(1, REPARTITIONS_KEPT // 2 + 1):
        kind = "split" if version % 2 else "merge"
        snapshot += [change(kind, "planned", version), change(kind, "done", version, 1.0)]
    assert len(snapshot) == REPARTITIONS_KEPT
    later = range(100, 110)
    events = [[change("split", "planned", v), 1000 * v] for v in later]
    answer = in_node(
        {"booths": BOOTHS, "cases": {}, "snapshot": snapshot, "events": events, "clock": 0},
        tmp_path,
    )
    assert answer["kept"] == REPARTITIONS_KEPT // 2
    assert len(answer["afterSnapshot"]) == answer["kept"]
    assert all(phase == "done" for _, _, phase in answer["afterSnapshot"])
    assert answer["afterSnapshot"][0][1].startswith("split —")  # version 25, the newest
    final = answer["afterEvents"][-1]
    assert len(final) == answer["kept"]
    assert [phase for _, _, phase in final[:10]] == ["planned"] * 10
