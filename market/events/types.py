"""The market summary event: its schema, its group and its one publisher.

Each zone worker publishes a summary of the zones it hosts once per reporting
interval, and the supervisor publishes the health of zones it is restarting or
has quarantined; every socket in the `market_summary` group receives both and
keeps the newest state of each zone.
"""

from typing import TypedDict

from channels.layers import get_channel_layer

MARKET_SUMMARY_GROUP = "market_summary"
MARKET_SUMMARY_EVENT = "market.summary"


class ZoneSummary(TypedDict):
    """One zone's health as the landing page shows it."""

    zone: int
    name: str
    colour: str  # "#rrggbb", the booth's colour
    entities: int  # authority slots in use, what the capacity limits
    in_flight: int  # of those, entities staging out or incoming
    capacity: int
    tick_ms: float  # wall time of the zone's last step
    tick_p99_ms: float  # 99th percentile of its steps over the last minute
    migrations_per_s: float
    migrations: int  # handoffs out of this zone acked within the reporting window
    migration_ms_p50: float | None  # first intent → target's ack, this window (None: none)
    migration_ms_p99: float | None
    ghosts: int  # neighbours' entities kept in this zone's interest band
    visitors: int  # visitor roots the zone owns
    subscribers: int  # gateways relaying its visitors + band neighbours taking its rows
    overruns: int  # ticks of this zone's worker that ran past their slot, since it started
    health: str  # "ok", "degraded" (ticks overran), "restarting", "quarantined"


class MarketSummary(TypedDict):
    """Every zone of the market at one tick."""

    tick: int
    hlc: int
    overruns: int  # ticks that took longer than their 50 ms since the start
    zones: list[ZoneSummary]


async def market_summary_publish(summary: MarketSummary) -> None:
    """Send a summary to every socket watching the market."""
    layer = get_channel_layer()
    if layer is None:
        raise RuntimeError("CHANNEL_LAYERS has no default layer to publish the summary on")
    await layer.group_send(MARKET_SUMMARY_GROUP, {"type": MARKET_SUMMARY_EVENT, "summary": summary})
