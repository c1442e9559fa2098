"""What a consumer builds from events, and the snapshot it starts from.

Each projection is a pure function `apply(state, event) -> state` over plain JSON data,
so a browser or the SDK can do the same: start from a snapshot taken at an offset,
apply every later event in order, and hold exactly what a fresh snapshot taken now
would hold (tests/market/events/test_projections.py checks this for every event type).

  * ops: every zone's newest summary, with the supervisor's word on its health; the
    newest figures of the contributors' dispatcher and its last bans; the last splits
    and merges of the zones;
  * visitor: the zone a visitor's entity is in and the booth it stands in;
  * assets: each booth's assets by id (name, and the last change);
  * grants: the relation tuples on a market's namespaces and booths.
"""

import copy
from typing import Any

from market.events.types import (
    AssetChanged,
    BoothEntered,
    ContributorBanned,
    Event,
    GrantChanged,
    MarketSummaryReported,
    NpcDecisionsReported,
    ZoneChanged,
    ZoneHealthChanged,
    ZonesRepartitioned,
)

State = dict[str, Any]
BANS_KEPT = 20
REPARTITIONS_KEPT = 50  # planned and done, so the last 25 splits and merges


def ops_empty() -> State:
    return {"tick": 0, "zones": {}, "npcs": None, "bans": [], "repartitions": []}


def ops_apply(state: State, event: Event) -> State:
    """A summary replaces its zones' entries; a health report sets their health; the
    dispatcher's figures replace the last ones; a ban joins the last BANS_KEPT, a split or
    merge the last REPARTITIONS_KEPT."""
    if isinstance(event, MarketSummaryReported):
        state = copy.deepcopy(state)
        state["tick"] = max(state["tick"], event.tick)
        for report in event.zones:
            state["zones"][str(report["zone"])] = dict(report)
    elif isinstance(event, ZoneHealthChanged):
        state = copy.deepcopy(state)
        for zone in event.zones:
            entry = state["zones"].setdefault(str(zone), {"zone": zone})
            entry["health"], entry["reason"] = event.health, event.reason
    elif isinstance(event, NpcDecisionsReported):
        state = {**state, "npcs": copy.deepcopy(event.payload())}
    elif isinstance(event, ContributorBanned):
        state = {**state, "bans": [*state["bans"], event.payload()][-BANS_KEPT:]}
    elif isinstance(event, ZonesRepartitioned):
        kept = [*state.get("repartitions", []), event.payload()][-REPARTITIONS_KEPT:]
        state = {**state, "repartitions": kept}
    return state


def visitor_apply(state: State, event: Event) -> State:
    """The visitor's zone after a handoff, its booth after it steps onto another."""
    if isinstance(event, ZoneChanged):
        return {**state, "zone": event.to_zone}
    if isinstance(event, BoothEntered):
        return {**state, "booth": event.zone}
    return state


def assets_apply(state: State, event: Event) -> State:
    """Booth zone → asset id → its name, as of the newest change."""
    if not isinstance(event, AssetChanged):
        return state
    state = copy.deepcopy(state)
    state.setdefault(str(event.zone), {})[str(event.asset)] = event.name
    return state


def grants_apply(state: State, event: Event) -> State:
    """The set of `object#relation@user` strings, kept sorted."""
    if not isinstance(event, GrantChanged):
        return state
    tuples = set(state.get("tuples", []))
    written = f"{event.object}#{event.relation}@{event.user}"
    if event.change == "granted":
        tuples.add(written)
    else:
        tuples.discard(written)
    return {"tuples": sorted(tuples)}


class OpsProjection:
    """The ops state kept up to date by a hub: its snapshot is what late joiners get."""

    def __init__(self) -> None:
        self.state = ops_empty()

    def observe(self, event: Event | None) -> None:
        """Apply one event; None means the stream was lost, and so is what it said."""
        if event is None:
            self.state = ops_empty()
        else:
            self.state = ops_apply(self.state, event)

    def snapshot(self) -> State:
        return copy.deepcopy(self.state)
