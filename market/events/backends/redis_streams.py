"""The Redis backend: one Redis Stream per event stream, offsets given by a Lua script.

Keys of stream `market.1` with the default prefix (the `{…}` hash tag keeps them in
one cluster slot, which the scripts need since they touch dedupe keys by name):

    fabric:{market.1}:meta        hash: epoch, last (the newest offset given), run
    fabric:{market.1}:log         the Redis Stream; entry `<offset>-0` = subject, data, t
    fabric:{market.1}:ids         sorted set: each event id the log holds, by its offset

**Offsets.** One script numbers a whole batch: it increments `last`, skips event ids
already held under the current epoch (answering their offset), adds each entry with the
explicit Redis id `<offset>-0` and trims by length (exact MAXLEN) and by age (entries
whose `t`, the server's time at append, is older than `max_age_s`). Scripts run
atomically, so offsets are contiguous whoever appends.

**Epoch.** Every script first checks the meta hash. The epoch and the counter live in
that one hash, so they are lost together (a restart without persistence, an eviction,
a DEL): a missing hash is made again with a fresh random epoch from the client (a new
one on every call, so a client can never bring back the epoch it saw before) and the
old log is dropped, so a lost counter never re-issues offsets under the old epoch. The
hash also records the Redis server's run id: a server restarted *with* persistence
(or a promoted replica) may have come back with a counter older than offsets already
given, so any change of server process starts a new epoch too, keeping `last`.

**Foreign entries.** An entry is read back only if it has the shape this backend writes:
an id `<offset>-0` not above `last` and both a `subject` (UTF-8) and a `data` field. Any
other entry another program added to the log is skipped by `read` and `wait`. One that
another program added with an id beyond the next offset (XADD `*`) blocks appends: they
raise StreamLost naming the key until it is removed.

Connection errors and error replies raise StreamLost; the client retries a command
once on a fresh connection first, which is safe for appends since they are idempotent.
"""

import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from market.events.backends import Batch, Entry, Head, Retention, StreamLost
from market.events.subjects import subject_matches

# Entries `wait` answers with at most, as the memory backend does.
WAIT_LIMIT = 1000
# Entries fetched a page at a time while skipping ones that match no pattern.
PATTERN_PAGE = 256

# Shared by every script: the epoch and newest offset, making them when lost.
_ENSURE = """
local function ids_of(meta)
  return string.sub(meta, 1, #meta - 4) .. 'ids'
end

local function ensure(meta, log, candidate)
  local run = string.match(redis.call('INFO', 'server'), 'run_id:(%w+)')
  local state = redis.call('HMGET', meta, 'epoch', 'last', 'run')
  if state[1] and state[3] == run then
    return state[1], tonumber(state[2])
  end
  if not state[1] then
    -- The counter is gone: whatever the log still holds was numbered under it.
    redis.call('DEL', log, ids_of(meta))
    redis.call('HSET', meta, 'epoch', candidate, 'last', 0, 'run', run)
    return candidate, 0
  end
  -- Another server process restored this hash: its counter may be behind.
  redis.call('DEL', ids_of(meta))
  redis.call('HSET', meta, 'epoch', candidate, 'run', run)
  return candidate, tonumber(state[2])
end
"""

_TRIM_BY_AGE = """
local function entry_time(entry)
  local fields = entry[2]
  for i = 1, #fields, 2 do
    if fields[i] == 't' then return tonumber(fields[i + 1]) or 0 end
  end
  return 0
end

local function after_id(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return ms .. '-' .. string.format('%d', tonumber(seq) + 1)
end

-- Entries are in time order: scan from the oldest, a bounded number per append.
local function trim_by_age(log, cutoff)
  local oldest = redis.call('XRANGE', log, '-', '+', 'COUNT', 1)
  if #oldest == 0 or entry_time(oldest[1]) >= cutoff then return end
  local start = oldest[1][1]
  for _ = 1, 8 do
    local page = redis.call('XRANGE', log, start, '+', 'COUNT', 128)
    for _, entry in ipairs(page) do
      if entry_time(entry) >= cutoff then
        redis.call('XTRIM', log, 'MINID', entry[1])
        return
      end
    end
    if #page == 0 then break end
    start = after_id(page[#page][1])
  end
  redis.call('XTRIM', log, 'MINID', start)
end
"""

_APPEND = (
    _ENSURE
    + _TRIM_BY_AGE
    + """
local meta, log = KEYS[1], KEYS[2]
local epoch, last = ensure(meta, log, ARGV[1])
local max_len, max_age_ms, ids = ARGV[2], tonumber(ARGV[3]), ids_of(meta)
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local offsets = {}
for i = 4, #ARGV, 3 do
  local known = redis.call('ZSCORE', ids, ARGV[i + 2])
  if known then
    offsets[#offsets + 1] = tonumber(known)
  else
    local offset = string.format('%d', last + 1)
    local added = redis.pcall('XADD', log, 'MAXLEN', '=', max_len, offset .. '-0',
      'subject', ARGV[i], 'data', ARGV[i + 1], 't', now)
    if type(added) == 'table' and added.err then
      redis.call('HSET', meta, 'last', last)
      return redis.error_reply('cannot add offset ' .. offset .. ' to ' .. log
        .. ': it holds an entry this backend did not write (' .. added.err .. ')')
    end
    last = last + 1
    redis.call('ZADD', ids, last, ARGV[i + 2])
    offsets[#offsets + 1] = last
  end
end
redis.call('HSET', meta, 'last', last)
trim_by_age(log, now - max_age_ms)
-- An id is known for as long as its entry is held, no longer: the ids stay as few as the entries.
local oldest = redis.call('XRANGE', log, '-', '+', 'COUNT', 1)
if #oldest > 0 then
  redis.call('ZREMRANGEBYSCORE', ids, '-inf', '(' .. string.match(oldest[1][1], '^(%d+)-'))
else
  redis.call('DEL', ids)
end
return {epoch, offsets}
"""
)

_HEAD = (
    _ENSURE
    + """
local epoch, last = ensure(KEYS[1], KEYS[2], ARGV[1])
local oldest = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)
local first = last + 1
if #oldest > 0 then
  first = math.min(first, tonumber(string.match(oldest[1][1], '^(%d+)-')))
end
return {epoch, first, last}
"""
)

_READ = (
    _ENSURE
    + """
local epoch, last = ensure(KEYS[1], KEYS[2], ARGV[1])
return {epoch, last, redis.call('XRANGE', KEYS[2], ARGV[2], '+', 'COUNT', ARGV[3])}
"""
)


def _fresh_epoch() -> str:
    """A new candidate on every call: a lost stream never gets back the epoch it had."""
    return uuid.uuid4().hex[:16]


def _entry(raw_id: bytes, fields: dict[bytes, bytes], last: int) -> Entry | None:
    """The Entry this backend wrote under `raw_id`, or None for anything else."""
    offset_text, _, seq = raw_id.decode().partition("-")
    offset = int(offset_text)
    subject, data = fields.get(b"subject"), fields.get(b"data")
    if seq != "0" or offset > last or subject is None or data is None:
        return None
    try:
        return Entry(offset, subject.decode(), data)
    except UnicodeDecodeError:
        return None


def _pairs(flat: list[bytes]) -> dict[bytes, bytes]:
    return dict(zip(flat[::2], flat[1::2], strict=False))


class RedisStreamLog:
    """One stream: its keys and the scripts that keep it."""

    def __init__(self, backend: "RedisStreamsBackend", name: str) -> None:
        self.name, self._backend = name, backend
        base = f"{backend.prefix}:{{{name}}}"
        self.meta_key, self.log_key, self.ids_key = f"{base}:meta", f"{base}:log", f"{base}:ids"

    @property
    def _keys(self) -> list[str]:
        return [self.meta_key, self.log_key]

    async def append(self, items: Sequence[tuple[str, bytes, str]]) -> list[int]:
        if not items:
            return []
        retention = self._backend.retention
        args: list[Any] = [
            _fresh_epoch(),
            retention.max_len,
            max(1, int(retention.max_age_s * 1000)),
        ]
        for subject, data, event_id in items:
            args += [subject, data, event_id]
        async with self._backend.guard(self.name):
            _, offsets = await self._backend.scripts["append"](keys=self._keys, args=args)
        return [int(offset) for offset in offsets]

    async def head(self) -> Head:
        async with self._backend.guard(self.name):
            epoch, first, last = await self._backend.scripts["head"](
                keys=self._keys, args=[_fresh_epoch()]
            )
        return Head(epoch.decode(), int(first), int(last))

    async def _page(self, start: str, count: int) -> tuple[str, int, list[Any]]:
        """Raw entries from Redis id `start` (XRANGE syntax), with the epoch and `last`."""
        async with self._backend.guard(self.name):
            epoch, last, raw = await self._backend.scripts["read"](
                keys=self._keys, args=[_fresh_epoch(), start, count]
            )
        return epoch.decode(), int(last), raw

    async def read(self, after: int, limit: int, patterns: Sequence[str] = ()) -> Batch:
        page_size = max(limit, PATTERN_PAGE) if patterns else limit
        start, epoch, picked = f"({after}-0", None, []
        while True:
            page_epoch, last, raw = await self._page(start, page_size)
            if epoch is not None and page_epoch != epoch:
                raise StreamLost(f"stream {self.name} changed epoch while being read; read again")
            epoch = page_epoch
            for raw_id, flat in raw:
                entry = _entry(raw_id, _pairs(flat), last)
                if entry and (
                    not patterns or any(subject_matches(p, entry.subject) for p in patterns)
                ):
                    picked.append(entry)
                    if len(picked) >= limit:
                        return Batch(epoch, picked)
            # A short page reached the end; a full one may have been all skipped entries.
            if len(raw) < page_size or picked:
                return Batch(epoch, picked)
            start = f"({raw[-1][0].decode()}"

    async def wait(self, after: int, timeout_s: float) -> Batch:
        deadline = time.monotonic() + timeout_s
        batch = await self.read(after, WAIT_LIMIT)
        cursor = f"{after}-0"
        while not batch.entries:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return batch
            cursor = await self._block(cursor, remaining)
            batch = await self.read(after, WAIT_LIMIT)
        return batch

    async def _block(self, cursor: str, timeout_s: float) -> str:
        """The id of an entry added after `cursor`, or `cursor` at the timeout."""
        block_ms = max(1, int(timeout_s * 1000))
        async with self._backend.guard(self.name):
            answer = await self._backend.client.xread(
                {self.log_key: cursor}, count=1, block=block_ms
            )
        if not answer:
            return cursor
        return answer[0][1][-1][0].decode()

    async def close(self) -> None:
        """Nothing to release: the log shares its backend's client."""


class RedisStreamsBackend:
    """Streams in one Redis, reached through one asyncio client and its pool."""

    def __init__(self, url: str, retention: Retention, prefix: str = "fabric") -> None:
        self.url, self.retention, self.prefix = url, retention, prefix
        # One quick retry on a fresh connection: pooled connections go stale when the
        # server restarts, and every command here may safely run twice.
        self.client = aioredis.Redis.from_url(
            url, socket_connect_timeout=2, retry=Retry(NoBackoff(), 1), decode_responses=False
        )
        self.scripts = {
            "append": self.client.register_script(_APPEND),
            "head": self.client.register_script(_HEAD),
            "read": self.client.register_script(_READ),
        }
        self._logs: dict[str, RedisStreamLog] = {}

    def log(self, stream: str) -> RedisStreamLog:
        log = self._logs.get(stream)
        if log is None:
            log = self._logs[stream] = RedisStreamLog(self, stream)
        return log

    @asynccontextmanager
    async def guard(self, stream: str) -> AsyncIterator[None]:
        """Redis failures as StreamLost, naming the server and the stream."""
        try:
            yield
        except (RedisError, OSError) as error:
            where = self.client.connection_pool.connection_kwargs
            raise StreamLost(
                f"Redis at {where.get('host')}:{where.get('port')} failed on stream "
                f"{stream}: {error}"
            ) from error

    async def delete(self, stream: str) -> None:
        """Drop a stream's meta, log and the ids it knows."""
        log = self.log(stream)
        async with self.guard(stream):
            await self.client.delete(log.meta_key, log.log_key, log.ids_key)

    async def close(self) -> None:
        await self.client.aclose()
