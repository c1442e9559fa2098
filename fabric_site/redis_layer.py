"""The channel layer over Redis, with a send that costs one round trip instead of four.

channels-redis sends a message in four commands, each awaited in turn: drop the
channel's expired messages, count what is queued, add the message, renew the key's
expiry. The market sends many small messages (each zone's inputs every tick from
every web process, the zones' migration bundles, spawns and answers), and on this
path the round trips, each a command built, written and parsed in Python, are
most of the cost. `FabricRedisChannelLayer.send` runs the same four steps as one
Lua script: the same expiry, the same capacity check with the same `ChannelFull`,
the same message bytes; and, being one script, they cannot interleave with another
sender's. Everything else (receiving, groups, flush) is channels-redis's own.
"""

import time
from typing import Any

from channels.exceptions import ChannelFull
from channels_redis.core import RedisChannelLayer
from redis.commands.core import AsyncScript

SEND = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], 0, tonumber(ARGV[2]))
if redis.call('ZCOUNT', KEYS[1], '-inf', '+inf') >= tonumber(ARGV[3]) then
    return 0
end
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[5])
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[4]))
return 1
"""
"""KEYS: the channel's key. ARGV: now (the message's score), the newest score that has
expired, the channel's capacity, the expiry in seconds, the serialised message."""


class FabricRedisChannelLayer(RedisChannelLayer):  # type: ignore[misc]
    """channels-redis's layer with `send` in one round trip (module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._send_script: AsyncScript | None = None

    async def send(self, channel: str, message: dict[str, Any]) -> None:
        assert isinstance(message, dict), "message is not a dict"
        assert self.require_valid_channel_name(channel), "Channel name not valid"
        assert "__asgi_channel__" not in message
        non_local = channel
        if "!" in channel:
            message = {**message, "__asgi_channel__": channel}
            non_local = self.non_local_name(channel)
            index = self.consistent_hash(channel)
        else:
            index = next(self._send_index_generator)
        connection = self.connection(index)
        if self._send_script is None:
            self._send_script = connection.register_script(SEND)
        now = time.time()
        sent = await self._send_script(
            keys=[self.prefix + non_local],
            args=[
                now,
                int(now) - int(self.expiry),
                self.get_capacity(channel),
                int(self.expiry),
                self.serialize(message),
            ],
            client=connection,
        )
        if not sent:
            raise ChannelFull()
