"""Names on the channel layer that zones, gateways and the supervisor share.

Every name carries the market id, so several markets can share one Redis.
"""

from typing import Any

from channels.layers import BaseChannelLayer, get_channel_layer


def zone_channel(market_id: int, zone: int) -> str:
    """The channel a zone receives on: fabric messages, inputs, spawns, despawns."""
    return f"fabric.m{market_id}.zone.{zone}"


def rows_group(market_id: int, zone: int) -> str:
    """The group a zone publishes its interest rows to, once per tick."""
    return f"fabric.m{market_id}.rows.{zone}"


def layer_required() -> BaseChannelLayer:
    """The default channel layer, or a clear error when settings have none."""
    layer: Any = get_channel_layer()
    if layer is None:
        raise RuntimeError("CHANNEL_LAYERS has no default layer; zones need one")
    return layer
