"""The channel layer over Redis: a send in one round trip instead of four, and a receive of
many channels at once.

channels-redis sends a message in four commands, each awaited in turn: drop the
channel's expired messages, count what is queued, add the message, renew the key's
expiry. The market sends many small messages (each zone's inputs every tick from
every web process, the zones' migration bundles, spawns and answers), and on this
path the round trips, each a command built, written and parsed in Python, are
most of the cost. `FabricRedisChannelLayer.send` runs the same four steps as one
Lua script: the same expiry, the same capacity check with the same `ChannelFull`,
the same message bytes; and, being one script, they cannot interleave with another
sender's.

Receiving costs channels-redis four commands a message as well (put back what a
receiver that died left in flight, pop one message, keep it in flight, drop it from
there), and one receiver waits on one channel. A zone worker receives on each of its
zones' channels, a few messages a zone a tick, which made the receiving most of a
worker's Redis traffic. `receive_many` serves all of a process's channels of one
kind with one waiting command and one script a burst: it waits in BZPOPMIN on every
channel at once, then the script puts the woken message back, drops the previous
burst from flight (the caller asks again only once it has handled it), and pops
every channel's queue into flight, oldest first. The first call of a receiver puts
back whatever a predecessor left in flight instead, as channels-redis does on every
receive, and so does the call after one that failed (its script may have moved a burst
into flight whose answer never came): a message may then come twice, never not at all.
One message can still be lost: the one a wait has taken, if the process dies before the
script that puts it back runs (channels-redis's receive has the same moment). Messages and keys are channels-redis's own, so senders of either kind and
receivers of either kind work together. Everything else (groups, flush, a single
channel's receive) is channels-redis's own.
"""

import asyncio
import contextlib
import logging
import time
from typing import Any

from channels.exceptions import ChannelFull
from channels_redis.core import RedisChannelLayer
from redis.commands.core import AsyncScript

from zones.logthrottle import LogThrottle

_unreadable = LogThrottle(logging.getLogger(__name__))

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


RECEIVE = """
local n = #KEYS / 2
if ARGV[3] ~= '' then
    redis.call('ZADD', ARGV[3], ARGV[5], ARGV[4])
end
local out = {}
for i = 1, n do
    local queue, flight = KEYS[i], KEYS[n + i]
    if ARGV[1] == 'restore' then
        local held = redis.call('ZRANGE', flight, 0, -1, 'WITHSCORES')
        for j = 1, #held, 2 do
            redis.call('ZADD', queue, held[j + 1], held[j])
        end
    end
    redis.call('DEL', flight)
    local popped = redis.call('ZPOPMIN', queue, tonumber(ARGV[2]))
    for j = 1, #popped, 2 do
        redis.call('ZADD', flight, popped[j + 1], popped[j])
    end
    out[i] = popped
end
return out
"""
"""KEYS: every channel's key, then every channel's in-flight key. ARGV: 'restore' or 'ack',
the most messages to pop a channel, and the message a wait popped: its channel's key
('' for none), the message, its score. Returns each channel's popped messages as
[message, score, ...], oldest first."""

RECEIVE_MOST = 1000
"""Messages popped from one channel by one call (a channel's capacity is 2,000)."""


class FabricRedisChannelLayer(RedisChannelLayer):  # type: ignore[misc]
    """channels-redis's layer with `send` in one round trip and `receive_many` (module
    docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._send_script: AsyncScript | None = None
        self._receive_script: AsyncScript | None = None
        self._restored: set[tuple[str, ...]] = set()  # key sets whose flight was put back
        self._in_flight: set[tuple[str, ...]] = set()  # key sets with a burst in flight

    def receives_many(self) -> bool:
        """Whether `receive_many` can serve: one Redis (on several, channels-redis spreads a
        channel's messages over all of them)."""
        return bool(self.ring_size == 1)

    async def receive_many(
        self, channels: list[str], timeout: float | None = None
    ) -> list[tuple[int, dict[str, Any]]]:
        """The next burst of messages on any of `channels` (normal channels, not process ones),
        as (index in `channels`, message), each channel's oldest first; [] when `timeout`
        (default: channels-redis's 5 s) passed with none.

        Call it again only once the burst was handled: the next call drops it from flight
        before it waits for more (a message is in flight while it is handled, never while
        the receiver idles), and a receiver that died handling one leaves it to the next
        receiver of the same channels. After a call that raised, the next one puts the
        flight back first (module docstring).
        """
        assert channels and self.receives_many()
        for channel in channels:
            assert self.require_valid_channel_name(channel, receive=True)
            assert "!" not in channel, "receive_many serves normal channels"
        keys = tuple(self.prefix + channel for channel in channels)
        try:
            if keys not in self._restored:  # what a predecessor left in flight comes first
                burst = await self._pop(keys, "restore")
                self._restored.add(keys)
                return burst
            if keys in self._in_flight:  # the burst just handled: drop it, take what came since
                burst = await self._pop(keys, "ack")
                if burst:
                    return burst
                self._in_flight.discard(keys)
            popped = await self.connection(0).bzpopmin(
                list(keys), timeout=self.brpop_timeout if timeout is None else timeout
            )
            if popped is None:
                return []
            return await self._pop(keys, "ack", popped)
        except BaseException:
            # Whatever the failed call did on the server (a script whose answer was lost
            # moved a burst into flight), the next call puts the flight back into the
            # queues instead of dropping it: messages may come twice, never not at all.
            self._restored.discard(keys)
            self._in_flight.discard(keys)
            raise

    async def _pop(
        self, keys: tuple[str, ...], mode: str, woken: tuple[Any, Any, Any] = ("", "", 0)
    ) -> list[tuple[int, dict[str, Any]]]:
        connection = self.connection(0)
        if self._receive_script is None:
            self._receive_script = connection.register_script(RECEIVE)
        try:
            batches = await self._receive_script(
                keys=[*keys, *(self._backup_channel_name(key) for key in keys)],
                args=[mode, RECEIVE_MOST, *woken],
                client=connection,
            )
        except BaseException:
            if woken[0]:  # the message the wait took is nowhere but here: put it back
                with contextlib.suppress(Exception):
                    await asyncio.shield(connection.zadd(woken[0], {woken[1]: float(woken[2])}))
            raise
        if any(batches):
            self._in_flight.add(keys)
        out = []
        for index, batch in enumerate(batches):
            for member in batch[::2]:
                try:
                    message = self.deserialize(member)
                except Exception as exc:  # one unreadable message must not cost the burst
                    _unreadable.warning(keys[index], "dropped an unreadable message: %r", exc)
                    continue
                message.pop("__asgi_channel__", None)
                out.append((index, message))
        return out

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
