"""The channel layer the settings choose with REDIS_URL carries messages through Redis."""

import asyncio
import uuid

from channels.layers import get_channel_layer
from channels_redis.core import RedisChannelLayer


async def test_redis_channel_layer_delivers_a_group_message(redis_url, settings):
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [redis_url]},
        }
    }
    layer = get_channel_layer()
    assert isinstance(layer, RedisChannelLayer)
    group = f"test-{uuid.uuid4().hex}"
    channel = await layer.new_channel()
    try:
        await layer.group_add(group, channel)
        await layer.group_send(group, {"type": "market.summary", "summary": {"tick": 7}})

        message = await asyncio.wait_for(layer.receive(channel), timeout=5)

        assert message == {"type": "market.summary", "summary": {"tick": 7}}
    finally:
        await layer.group_discard(group, channel)
        await layer.close_pools()
