"""Names on the channel layer that zones, gateways and the supervisor share.

Every name carries the market id, so several markets can share one Redis.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from channels.layers import BaseChannelLayer, get_channel_layer

from zones.logthrottle import LogThrottle

log = logging.getLogger(__name__)
_failures = LogThrottle(log)  # a Redis outage fails every receive, five times a second
_handling = LogThrottle(log)  # a message its handler could not take

RECEIVE_RETRY_S = 0.2


def zone_channel(market_id: int, zone: int) -> str:
    """The channel a zone receives on: fabric messages, inputs, spawns, despawns."""
    return f"fabric.m{market_id}.zone.{zone}"


def layer_required() -> BaseChannelLayer:
    """The default channel layer, or a clear error when settings have none."""
    layer: Any = get_channel_layer()
    if layer is None:
        raise RuntimeError("CHANNEL_LAYERS has no default layer; zones need one")
    return layer


async def receive_forever(
    layer: BaseChannelLayer,
    channel: str,
    handle: Callable[[dict[str, Any]], Awaitable[None] | None],
) -> None:
    """Receive on `channel` and hand each message to `handle`, until cancelled.

    A failed receive (Redis restarting, a dropped connection, a read timeout) is
    logged and retried: a zone or gateway whose receiving loop silently ended would
    go deaf while it kept ticking. While it keeps failing the log says so once per
    channel every 10 s, and once when it works again.
    """
    while True:
        message = await _received(channel, layer.receive(channel))
        if message is None:
            continue
        try:
            result = handle(message)
            if result is not None:
                await result
        except Exception as exc:  # one message must not end the receiving for good
            _handling.warning(channel, "a message on %s failed: %r", channel, exc)


async def receive_many_forever(
    layer: BaseChannelLayer,
    channels: list[str],
    handle: Callable[[int, dict[str, Any]], None],
) -> None:
    """Receive on every one of `channels` and hand each message to `handle` with the index
    of its channel, until cancelled; failures as `receive_forever`.

    On a layer that receives many channels at once (fabric_site/redis_layer.py), one
    waiting command and one script serve a burst of messages on all of them; on any
    other layer, each channel is received on its own.
    """
    receives_many = getattr(layer, "receives_many", None)
    if receives_many is None or not receives_many():
        await asyncio.gather(
            *(
                receive_forever(layer, channel, lambda m, i=index: handle(i, m))
                for index, channel in enumerate(channels)
            )
        )
        return
    name = ",".join(channels)
    while True:
        burst = await _received(name, layer.receive_many(channels))  # type: ignore[attr-defined]
        for index, message in burst or ():
            try:
                handle(index, message)
            except Exception as exc:  # one message must not end every zone's receiving
                _handling.warning(name, "a message on %s failed: %r", channels[index], exc)


async def _received(name: str, receiving: Awaitable[Any]) -> Any:
    """What `receiving` got, or None after logging its failure and waiting a moment."""
    try:
        got = await receiving
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            # redis-py reports a cancelled blocking read as a TimeoutError
            raise asyncio.CancelledError from exc
        _failures.warning(name, "receive on %s failed (%r); retrying", name, exc)
        await asyncio.sleep(RECEIVE_RETRY_S)
        return None
    if _failures.failing(name):
        _failures.clear(name, "receive on %s works again", name)
    return got


CANCEL_GRACE_S = 2.0


async def cancel_and_wait(tasks: list[asyncio.Task[Any]]) -> None:
    """Cancel receiving tasks and give them a moment to unwind; never hang on one."""
    for task in tasks:
        task.cancel()
    if tasks:
        await asyncio.wait(tasks, timeout=CANCEL_GRACE_S)


BUNDLE_TYPE = "zone.bundle"
"""Several zone messages for one zone in one channel message (`bundled`)."""


def bundled(wires: list[dict[str, Any]]) -> dict[str, Any]:
    """One channel message carrying `wires` (zone messages in wire form) to one zone.

    A worker hosting eight zones would otherwise send each remote zone up to eight
    messages a tick, and once a second every zone reports to every other (in-flight
    transfers): 32 zones make about a thousand channel-layer sends a second, each several
    Redis round trips. Per destination and tick one bundle carries them all.
    """
    return wires[0] if len(wires) == 1 else {"type": BUNDLE_TYPE, "messages": wires}


def unbundled(message: dict[str, Any]) -> list[dict[str, Any]]:
    """The zone messages a channel message carries: itself, or a bundle's (ValueError if
    a bundle is malformed)."""
    if message.get("type") != BUNDLE_TYPE:
        return [message]
    inner = message.get("messages")
    if not isinstance(inner, list) or not all(isinstance(m, dict) for m in inner):
        raise ValueError("a zone.bundle carries a list of messages")
    if any(m.get("type") == BUNDLE_TYPE for m in inner):
        raise ValueError("a zone.bundle cannot carry another bundle")
    return inner
