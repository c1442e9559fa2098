"""The dashboard's NPC status code (static/operator_ui/feed.js, npcs.js) under Node reads the frames
the zone workers send (zones/core/npcview.py) as the Python side means them; its bans list
keeps as many bans as the server does."""

import base64
from pathlib import Path

import numpy as np

from market.events.projections import BANS_KEPT
from tests.mapgen.cases import node_answer
from tests.zones.core.test_npcs import CENTRE, Zone, one_zone, spawn
from zones.core.npcview import npc_status, npc_status_encode, status_fields
from zones.core.wire import NpcState

RUN = Path(__file__).with_name("npcs_node.mjs")
BANS_RUN = Path(__file__).with_name("npc_bans_node.mjs")


def in_node(frame: bytes, tmp_path: Path) -> dict:
    return node_answer(RUN, {"frame": base64.b64encode(frame).decode()}, tmp_path)


def test_the_page_reads_each_npcs_status_as_the_zone_wrote_it(tmp_path):
    zone = Zone(one_zone(), delegate=True)
    zone.step(spawns=spawn([1, 2, 3, 2**40 + 7], [CENTRE] * 4))
    zone.set_needs(1, [10, 90, 90, 90])
    zone.set_needs(2, [90, 90, 30, 90])
    zone.set_needs(3, [90, 90, 90, 80])
    zone.set_needs(2**40 + 7, [90, 90, 90, 5])
    zone.state.npc_state[zone.slot(2)] = NpcState.INTERACTING
    zone.state.lease_left[zone.slot(3)] = 4
    records = npc_status(zone.state)
    answer = in_node(npc_status_encode(records, 777), tmp_path)
    assert answer["tickMs"] == 777
    state, need, urgency, leased = status_fields(records["status"])
    for i, npc in enumerate(answer["npcs"]):
        assert int(npc["id"]) == int(records["id"][i])  # 64-bit ids intact
        assert npc["fields"] == {
            "state": int(state[i]),
            "need": int(need[i]),
            "urgency": int(urgency[i]),
            "leased": bool(leased[i]),
        }
    by_id = {int(n["id"]): n for n in answer["npcs"]}
    assert by_id[1]["fields"]["need"] == 0 and by_id[1]["fields"]["urgency"] == 2
    assert by_id[2]["fields"]["state"] == NpcState.INTERACTING
    # by need: one colour per need, dimmer the more content the NPC is
    assert by_id[1]["byNeed"] != by_id[2]["byNeed"] != by_id[3]["byNeed"]
    assert by_id[3]["byNeed"].endswith("59") and len(by_id[1]["byNeed"]) == 7
    # by state: the interacting one stands out
    assert by_id[2]["byState"] != by_id[1]["byState"]
    assert answer["counts"]["states"][NpcState.INTERACTING] == 1
    assert answer["counts"]["needs"] == [1, 0, 1, 2] and answer["counts"]["critical"] == 2
    assert answer["unknown"] == "#0d0f13"  # not told yet: drawn as before
    assert answer["forgotten"] == 0  # not reported for 10 s: gone
    assert [e["name"] for e in answer["legend"]["state"]] == ["idle", "moving", "interacting"]
    assert len({e["colour"] for e in answer["legend"]["need"]}) == 4


def test_a_truncated_frame_is_refused_with_a_reason(tmp_path):
    records = np.zeros(2, npc_status(Zone(one_zone()).state).dtype)
    frame = npc_status_encode(records, 1)
    assert "cannot hold 2 records" in in_node(frame[:-3], tmp_path)["error"]
    assert "not an NPC status frame" in in_node(b"\0" * 16, tmp_path)["error"]


def test_the_bans_list_keeps_as_many_bans_as_the_server(tmp_path):
    """The page adds every contributor_banned event to its list: it keeps the newest
    BANS_KEPT, as the server's snapshot does, however long the page stays open."""

    def ban(number: int) -> dict:
        return {"contributor": f"c{number}", "reason": "too many invalid", "seconds": 3600}

    request = {
        "snapshot": [ban(n) for n in range(BANS_KEPT + 3)],
        "events": [ban(n) for n in range(100, 100 + BANS_KEPT + 5)],
    }
    answer = node_answer(BANS_RUN, request, tmp_path)

    assert answer["bansKept"] == BANS_KEPT
    assert answer["afterSnapshot"]["kept"] == [f"c{n}" for n in range(3, BANS_KEPT + 3)]
    newest = [f"c{n}" for n in range(105, 105 + BANS_KEPT)]
    assert answer["kept"] == newest
    assert len(answer["shown"]) == BANS_KEPT
    assert answer["shown"][0] == f"c{104 + BANS_KEPT}: too many invalid (60 min)"  # newest first
    assert answer["noneHidden"] is True
