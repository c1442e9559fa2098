"""The NATS JetStream backend: one JetStream stream per event stream.

Stream `market.1` is the JetStream stream `FABRIC_market_1` (the name with every
character JetStream does not allow in names replaced by `_`), capturing `market.1.>`
in file storage, so it survives a restart of the server.

**Offsets** are the stream's sequence numbers: JetStream gives them contiguously in
publish order. **Dedupe**: every append is published with the `Nats-Msg-Id` header set
to the event id, and the stream's duplicate window is the retention's age, so a retried
publish is acknowledged as a duplicate carrying the original sequence. **Retention**:
`max_msgs` and `max_age` from `Retention`; the server trims on its own.

**Epoch**: the stream's creation time as the server reports it (microseconds). It
survives restarts with the stream's files and is new when the stream is deleted and made
again (by an operator, or by this backend finding it missing after its files were lost),
which is exactly when sequence numbers start again at 1. A read compares the epoch
after fetching with the one seen before, so entries are never labelled with the epoch
of a stream made again in between.

**Republish**: a (source, destination) rule from configuration, by default every
visitor event `market.*.booth.*.visitor.*` to core NATS subject
`live.market.{{wildcard(1)}}.visitor.{{wildcard(3)}}.booth.{{wildcard(2)}}`. JetStream
requires the source to lie within the stream's subjects, so each stream gets the rule
narrowed to itself (the market's `*` becomes its id and the destination's wildcards are
renumbered); a stream the source does not reach gets no rule. nats-server 2.9 also
requires the destination to use every wildcard of the source (VISITOR_REPUBLISH).

**Durables**: `durable_read` / `durable_ack` / `durable_position` keep a named
consumer's checkpoint on the server (an ack-all durable consumer), so a process that
reconnects resumes after the last offset it acked.

**Foreign entries**: anything published to a stream subject by another program (a raw
core-NATS publish of garbage, say) has a sequence, a subject and bytes, so `read` and
`wait` surface it as an Entry with its raw bytes; the envelope decoder upstream
rejects it. Nothing JetStream stores lacks those three, so nothing is skipped.

Connection failures, timeouts and JetStream API errors raise StreamLost.
"""

import asyncio
import logging
import re
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext, api

from market.events.backends import Batch, Entry, Head, Retention, StreamLost
from market.events.subjects import subject_matches

logger = logging.getLogger(__name__)

# Every visitor event, also sent on core NATS for listeners that need no replay. The
# booth comes last: nats-server 2.9 accepts a republish destination only if it uses
# every wildcard of the source, so the zone cannot be left out, and last it still lets
# one subscription `live.market.<id>.visitor.<id>.>` follow a visitor in every booth.
VISITOR_REPUBLISH = (
    "market.*.booth.*.visitor.*",
    "live.market.{{wildcard(1)}}.visitor.{{wildcard(3)}}.booth.{{wildcard(2)}}",
)
# Entries `wait` answers with at most, as the memory backend does.
WAIT_LIMIT = 1000
# Seconds a JetStream API request may take before the stream counts as lost.
API_TIMEOUT_S = 5.0
# An ephemeral consumer left behind by a crashed reader is removed after this.
EPHEMERAL_INACTIVE_S = 30.0
# A durable consumer delivers an unacked entry again after this.
DURABLE_ACK_WAIT_S = 30.0
# Entries fetched from an ephemeral consumer at a time.
FETCH_PAGE = 512
# JetStream API error code: a stream of that name exists with another configuration.
STREAM_NAME_IN_USE = 10058

_WILDCARD_REF = re.compile(r"\{\{\s*wildcard\(\s*(\d+)\s*\)\s*\}\}")


def jetstream_name(prefix: str, stream: str) -> str:
    """The JetStream stream holding `stream`: characters names may not hold become `_`."""
    return f"{prefix}_{re.sub(r'[^A-Za-z0-9_-]', '_', stream)}"


def republish_for(stream: str, rule: tuple[str, str]) -> api.RePublish | None:
    """`rule` narrowed to the subjects `<stream>.>`, or None when it reaches none of them."""
    source, destination = rule[0].split("."), rule[1]
    prefix = stream.split(".")
    narrowed: list[str] = []
    literals: dict[int, str] = {}  # wildcard number in the rule -> the stream's token
    wildcard = 0
    for i, token in enumerate(source):
        if i >= len(prefix) or token == ">":
            narrowed += source[i:] if i >= len(prefix) else prefix[i:] + [">"]
            break
        if token == "*":
            wildcard += 1
            literals[wildcard] = prefix[i]
        elif token != prefix[i]:
            return None
        narrowed.append(prefix[i])
    else:
        return None  # the rule's subjects are no longer than the stream's prefix

    def renumber(match: re.Match[str]) -> str:
        number = int(match.group(1))
        if number in literals:
            return literals[number]
        return f"{{{{wildcard({number - sum(1 for n in literals if n < number)})}}}}"

    return api.RePublish(src=".".join(narrowed), dest=_WILDCARD_REF.sub(renumber, destination))


def _entry(msg: Msg) -> Entry:
    return Entry(msg.metadata.sequence.stream, msg.subject, msg.data)


def _epoch(info: api.StreamInfo) -> str:
    if info.created is None:
        raise StreamLost(f"JetStream stream {info.config.name} reports no creation time")
    return info.created.isoformat()


def _head(info: api.StreamInfo) -> Head:
    last = info.state.last_seq
    first = info.state.first_seq if info.state.messages else last + 1
    return Head(_epoch(info), first, last)


class JetStreamLog:
    """One event stream as one JetStream stream."""

    def __init__(self, backend: "JetStreamBackend", name: str) -> None:
        self.name, self._backend = name, backend
        self.stream = jetstream_name(backend.prefix, name)
        self._created = False
        # Durable name -> entries delivered to it and not acked yet, by offset.
        self._delivered: dict[str, dict[int, Msg]] = {}

    def config(self) -> api.StreamConfig:
        retention = self._backend.retention
        rule = self._backend.republish
        return api.StreamConfig(
            name=self.stream,
            subjects=[f"{self.name}.>"],
            storage=api.StorageType.FILE,
            max_msgs=retention.max_len,
            max_age=retention.max_age_s,
            duplicate_window=retention.max_age_s,
            discard=api.DiscardPolicy.OLD,
            republish=republish_for(self.name, rule) if rule else None,
        )

    async def _create(self, js: JetStreamContext) -> api.StreamInfo:
        """The stream with this backend's configuration, made or brought up to date."""
        try:
            info = await js.add_stream(self.config())
        except nats.js.errors.BadRequestError as error:
            if error.err_code != STREAM_NAME_IN_USE:
                raise
            info = await js.update_stream(self.config())
        self._created = True
        return info

    async def _info(self, js: JetStreamContext) -> api.StreamInfo:
        if not self._created:
            return await self._create(js)
        try:
            return await js.stream_info(self.stream)
        except nats.js.errors.NotFoundError:
            return await self._create(js)

    async def append(self, items: Sequence[tuple[str, bytes, str]]) -> list[int]:
        async with self._backend.session(self.name) as js:
            if not self._created:
                await self._create(js)
            return [await self._publish(js, *item) for item in items]

    async def _publish(self, js: JetStreamContext, subject: str, data: bytes, event_id: str) -> int:
        headers = {"Nats-Msg-Id": event_id}
        try:
            ack = await js.publish(subject, data, stream=self.stream, headers=headers)
        except nats.js.errors.NoStreamResponseError:
            await self._create(js)  # deleted under us: a new stream, a new epoch
            ack = await js.publish(subject, data, stream=self.stream, headers=headers)
        return ack.seq

    async def head(self) -> Head:
        async with self._backend.session(self.name) as js:
            return _head(await self._info(js))

    async def read(self, after: int, limit: int, patterns: Sequence[str] = ()) -> Batch:
        async with self._backend.session(self.name) as js:
            before = _head(await self._info(js))
            if after >= before.last or limit <= 0:
                return Batch(before.epoch, [])
            entries = await self._fetch(js, after, limit, patterns)
            now = _epoch(await js.stream_info(self.stream))
            # Made again between the two looks: the entries may be the old stream's.
            return Batch(now, entries if now == before.epoch else [])

    def _filter(self, patterns: Sequence[str]) -> str:
        """The one pattern as the consumer's filter when it lies within this stream."""
        own = self.name.split(".")
        if len(patterns) == 1:
            tokens = patterns[0].split(".")
            if len(tokens) > len(own) and tokens[: len(own)] == own:
                return patterns[0]
        return f"{self.name}.>"

    async def _ephemeral(self, js: JetStreamContext, after: int, subject: str) -> api.ConsumerInfo:
        """A consumer for one call, from `after` + 1; the server drops it if the call dies."""
        return await js.add_consumer(
            self.stream,
            api.ConsumerConfig(
                name=uuid.uuid4().hex,
                deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE,
                opt_start_seq=after + 1,
                ack_policy=api.AckPolicy.NONE,
                filter_subject=subject,
                inactive_threshold=EPHEMERAL_INACTIVE_S,
                mem_storage=True,
            ),
        )

    async def _fetch(
        self, js: JetStreamContext, after: int, limit: int, patterns: Sequence[str]
    ) -> list[Entry]:
        consumer = await self._ephemeral(js, after, self._filter(patterns))
        try:
            return await self._drain(js, consumer, limit, patterns)
        finally:
            await js.delete_consumer(self.stream, consumer.name)

    async def _drain(
        self, js: JetStreamContext, consumer: api.ConsumerInfo, limit: int, patterns: Sequence[str]
    ) -> list[Entry]:
        """Matching entries from a consumer, until `limit` or the messages it had pending."""
        sub = await js.pull_subscribe_bind(stream=self.stream, name=consumer.name)
        pending, picked = consumer.num_pending or 0, []
        try:
            while pending > 0 and len(picked) < limit:
                msgs = await sub.fetch(min(pending, FETCH_PAGE), timeout=API_TIMEOUT_S)
                pending -= len(msgs)
                picked += [
                    _entry(m)
                    for m in msgs
                    if not patterns or any(subject_matches(p, m.subject) for p in patterns)
                ]
        except nats.errors.TimeoutError:
            pass  # trimmed while fetching: what there was is all there is
        finally:
            await sub.unsubscribe()
        return picked[:limit]

    async def wait(self, after: int, timeout_s: float) -> Batch:
        batch = await self.read(after, WAIT_LIMIT)
        if batch.entries or timeout_s <= 0:
            return batch
        async with self._backend.session(self.name) as js:
            if not await self._next_within(js, after, timeout_s):
                return Batch(_epoch(await self._info(js)), [])
        return await self.read(after, WAIT_LIMIT)

    async def _next_within(self, js: JetStreamContext, after: int, timeout_s: float) -> bool:
        """Whether an entry above `after` arrives within `timeout_s`: the server holds the pull."""
        consumer = await self._ephemeral(js, after, f"{self.name}.>")
        sub = await js.pull_subscribe_bind(stream=self.stream, name=consumer.name)
        try:
            await sub.fetch(1, timeout=timeout_s)
            return True
        except nats.errors.TimeoutError:
            return False
        finally:
            await sub.unsubscribe()
            await js.delete_consumer(self.stream, consumer.name)

    async def _durable(self, js: JetStreamContext, name: str) -> api.ConsumerInfo:
        """The named durable consumer, made on first use to start at the oldest entry."""
        await self._info(js)
        try:
            return await js.consumer_info(self.stream, name)
        except nats.js.errors.NotFoundError:
            return await js.add_consumer(
                self.stream,
                api.ConsumerConfig(
                    durable_name=name,
                    deliver_policy=api.DeliverPolicy.ALL,
                    ack_policy=api.AckPolicy.ALL,
                    ack_wait=DURABLE_ACK_WAIT_S,
                ),
            )

    async def durable_position(self, name: str) -> int:
        """The newest offset durable `name` acked (0 when none): it resumes after it."""
        async with self._backend.session(self.name) as js:
            return (await self._durable(js, name)).ack_floor.stream_seq or 0

    async def durable_read(self, name: str, limit: int, timeout_s: float = 1.0) -> list[Entry]:
        """Up to `limit` entries durable `name` has not acked, waiting up to `timeout_s` for one."""
        async with self._backend.session(self.name) as js:
            await self._durable(js, name)
            sub = await js.pull_subscribe_bind(durable=name, stream=self.stream)
            try:
                msgs = await sub.fetch(limit, timeout=timeout_s)
            except nats.errors.TimeoutError:
                msgs = []
            finally:
                await sub.unsubscribe()
        held = self._delivered.setdefault(name, {})
        for msg in msgs:
            held[msg.metadata.sequence.stream] = msg
        return [_entry(m) for m in msgs]

    async def durable_ack(self, name: str, offset: int) -> None:
        """Record on the server that durable `name` is done with every entry up to `offset`.

        Entries it was given beyond `offset` are handed back at once, so the next
        `durable_read` (here or in a process that reconnects) resumes at `offset` + 1.
        """
        held = self._delivered.get(name, {})
        upto = [seq for seq in held if seq <= offset]
        if not upto:
            raise ValueError(f"durable {name} was given no entry up to offset {offset} here")
        async with self._backend.session(self.name):
            await held[max(upto)].ack_sync(timeout=API_TIMEOUT_S)
            for seq in upto:
                del held[seq]
            await self._hand_back(held)

    async def _hand_back(self, held: dict[int, Msg]) -> None:
        for seq in sorted(held):
            await held.pop(seq).nak()

    async def durable_delete(self, name: str) -> None:
        async with self._backend.session(self.name) as js:
            self._delivered.pop(name, None)
            await js.delete_consumer(self.stream, name)

    async def delete(self) -> None:
        """Delete the JetStream stream, its messages and consumers."""
        async with self._backend.session(self.name) as js:
            await js.delete_stream(self.stream)
            self._created = False

    async def close(self) -> None:
        """Hand back entries durables were given and did not ack."""
        for held in self._delivered.values():
            await self._hand_back(held)


class JetStreamBackend:
    """Streams on one NATS server (or cluster), through one connection made on first use."""

    def __init__(
        self,
        url: str,
        retention: Retention,
        prefix: str = "FABRIC",
        republish: tuple[str, str] | None = VISITOR_REPUBLISH,
    ) -> None:
        self.url, self.retention, self.prefix, self.republish = url, retention, prefix, republish
        self._client: Client | None = None
        self._lock = asyncio.Lock()
        self._logs: dict[str, JetStreamLog] = {}

    def log(self, stream: str) -> JetStreamLog:
        log = self._logs.get(stream)
        if log is None:
            log = self._logs[stream] = JetStreamLog(self, stream)
        return log

    async def client(self) -> Client:
        """The connection, made again once the client gave up reconnecting."""
        async with self._lock:
            if self._client is None or self._client.is_closed:
                self._client = await nats.connect(
                    self.url,
                    connect_timeout=2,
                    reconnect_time_wait=0.25,
                    # A handful of tries, then the client closes and the next call
                    # connects afresh, so an outage fails calls instead of hanging them.
                    max_reconnect_attempts=8,
                    error_cb=self._quiet,
                )
            return self._client

    @staticmethod
    async def _quiet(error: Exception) -> None:
        """Connection trouble surfaces as StreamLost from the call that meets it."""
        logger.debug("NATS connection: %s", error)

    @asynccontextmanager
    async def session(self, stream: str) -> AsyncIterator[JetStreamContext]:
        """A JetStream context, NATS failures raised as StreamLost naming the stream."""
        try:
            yield (await self.client()).jetstream(timeout=API_TIMEOUT_S)
        except (nats.errors.Error, TimeoutError, OSError) as error:
            raise StreamLost(
                f"NATS JetStream at {self.url} failed on stream {stream}: "
                f"{type(error).__name__} {error}"
            ) from error

    async def close(self) -> None:
        for log in self._logs.values():
            await log.close()
        if self._client is not None and not self._client.is_closed:
            await self._client.close()
        self._client = None
