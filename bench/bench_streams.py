"""Market event streams: memory, Redis Streams and NATS JetStream, beside channels-redis.

    python bench/bench_streams.py                      everything, about 3 minutes
    python bench/bench_streams.py --json /tmp/s1.json  the same, every figure also as JSON

Every event is a real envelope (`booth_entered`, padded to 300 bytes, on a visitor
subject) and every consumer reads through `EventHub`, as the web process does. One run
measures, for the `redis` backend (the shared Redis at REDIS_URL, default
redis://127.0.0.1:6379/14, under a key prefix of this run's own) and the `nats` backend
(the shared NATS at NATS_URL, default nats://127.0.0.1:4222, streams of this run's own),
with `memory` as the in-process reference where it makes sense:

1. **Publish rate**: `append` of batches of 1 and of 100, back to back, nobody reading.
   **End-to-end latency**: one hub, 100 subscriptions to `market.<id>.>`, events
   appended one at a time at --rate for --events events; latency is the time from just
   before `append` to the consumer task holding the event (same process, same clock).
   Done with 0 stalled subscriptions and with 10 of the 100 that never read: these must
   be cut off as `slow` once their queue is full (1,000 events, the default), and the
   publisher's p99 `append` latency must move by at most 5 % (the ratio is printed).
2. **Replay**: a hub at the head of a stream of 101,000 events; a consumer that
   reconnects with the position 1,000 (and 100,000) events back calls
   `EventHub.subscribe(after=...)`, which returns once every missed event is queued.
   p50/p99 over --trials (and --big-trials) trials. Target: 1,000 in <= 20 ms p99.
3. **Broker restart**: a redis-server (`--save "" --appendonly no`) and a nats-server
   (`-js -sd <tmpdir>`, file storage) of the bench's own on free ports; 1,000 acked
   events, kill -9, start again on the same port and directory; then whether the epoch
   changed, how many acked events are still there, how long until the stream answered,
   and what a consumer resuming with its last position is told (`recovered`).
4. **Memory per durable consumer**: on the bench's own servers, 1,000 JetStream durable
   consumers (`durable_position`, which makes them) against nats-server's RSS
   (/proc/<pid>/status) and store directory before and after; for Redis, 1,000
   checkpoints (one key per consumer, and one hash field per consumer) against
   `INFO memory` used_memory.
5. **Baseline**: the same fan-out through channels-redis (`RedisChannelLayer.group_send`
   to a group of 100 channels of this process, capacity 1,000 like the hub's queues,
   on the shared Redis under a prefix of its own): group sends per second with all 100
   members reading, and p50/p99 delivery latency at the same --rate and --events. Every
   backend's figure is printed with its ratio to it.

The shared Redis and NATS are never restarted; everything this run creates on them is
deleted at the end. The machine may be shared: load averages are printed at both ends.
"""

import argparse
import asyncio
import contextlib
import gc
import json
import math
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

import redis  # noqa: E402
from channels_redis.core import RedisChannelLayer  # noqa: E402

from bench.machine import load_average, machine_info  # noqa: E402
from bench.processes import BenchError, free_port  # noqa: E402
from market.events.backends import EventLog, Head, Retention, StreamLost  # noqa: E402
from market.events.backends.jetstream import JetStreamBackend  # noqa: E402
from market.events.backends.memory import MemoryBackend  # noqa: E402
from market.events.backends.redis_streams import RedisStreamsBackend  # noqa: E402
from market.events.envelope import envelope_new, envelope_parse  # noqa: E402
from market.events.hub import (  # noqa: E402
    QUEUE_LIMIT,
    Delivered,
    EventHub,
    Position,
    SubscriptionEnded,
)
from market.events.types import BoothEntered  # noqa: E402

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/14"
DEFAULT_NATS_URL = "nats://127.0.0.1:4222"
KINDS = ("memory", "redis", "nats")
ENVELOPE_BYTES = 300
SUBSCRIBERS = 100
STALLED_SHARE = 0.10
REPLAY_SMALL, REPLAY_BIG = 1_000, 100_000
REPLAY_TARGET_P99_MS = 20.0
PUBLISHER_P99_TARGET = 1.05  # p99 with stalled consumers / without
RESTART_EVENTS = 1_000
DURABLES = 1_000
RATE_SECONDS = 1.0
RATE_MAX_EVENTS = 20_000
START_TIMEOUT_S = 10.0
BIG_RETENTION = Retention(max_len=200_000, max_age_s=3600.0)
RUN = uuid.uuid4().hex[:8]
REDIS_PREFIX = f"bench_streams_{RUN}"
NATS_PREFIX = f"BSTREAMS_{RUN}"


# --- figures -------------------------------------------------------------------------------


def quantile(values: Sequence[float], q: float) -> float:
    """The q-quantile by nearest rank, so that p99 of a few trials is their worst; NaN for none."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q * len(ordered))) - 1]


def ms(seconds: Sequence[float]) -> list[float]:
    return [s * 1e3 for s in seconds]


def ratio(value: float, baseline: float) -> str:
    if not baseline or value != value or baseline != baseline:
        return "  n/a"
    quotient = value / baseline
    return f"{quotient:,.0f}x" if quotient >= 100 else f"{quotient:.2f}x"


# --- events --------------------------------------------------------------------------------


def new_market() -> int:
    """A market id no other stream uses: JetStream streams' subjects may not overlap."""
    return random.randrange(10**11, 10**12)


def padded_event(market: int, entity: int) -> tuple[str, bytes, str]:
    """(subject, envelope bytes, event id) of a booth_entered of ENVELOPE_BYTES bytes."""
    zone = entity % 8
    bare = envelope_new(market, BoothEntered(entity, zone, "", "#a0c4ff")).to_bytes()
    name = "Booth of fine fabrics " + "x" * max(0, ENVELOPE_BYTES - len(bare) - 22)
    envelope = envelope_new(market, BoothEntered(entity, zone, name, "#a0c4ff"))
    return envelope.subject, envelope.to_bytes(), envelope.id


def events(market: int, count: int) -> list[tuple[str, bytes, str]]:
    return [padded_event(market, 10_000 + i) for i in range(count)]


# --- backends ------------------------------------------------------------------------------


@dataclass
class Target:
    """One backend kind on one server, and the streams made on it (to delete at the end)."""

    kind: str
    url: str
    backend: Any = None

    def make(self, retention: Retention = BIG_RETENTION) -> Any:
        if self.kind == "memory":
            return MemoryBackend(retention)
        if self.kind == "redis":
            return RedisStreamsBackend(self.url, retention, prefix=REDIS_PREFIX)
        return JetStreamBackend(self.url, retention, prefix=NATS_PREFIX, republish=None)


async def fill(log: EventLog, items: list[tuple[str, bytes, str]], kind: str) -> None:
    """Append `items` quickly (setup, untimed): JetStream's appends are one round trip each,
    so they go 32 batches at a time there."""
    batches = [items[i : i + 500] for i in range(0, len(items), 500)]
    if kind != "nats":
        for batch in batches:
            await log.append(batch)
        return
    await log.append(batches[0])
    queue = list(reversed(batches[1:]))

    async def worker() -> None:
        while queue:
            await log.append(queue.pop())

    await asyncio.gather(*(worker() for _ in range(32)))


async def retry(call: Callable[[], Awaitable[Any]], timeout_s: float = 20.0) -> Any:
    """`call()` until it stops raising StreamLost (a server coming back), or the timeout."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return await call()
        except StreamLost:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)


# Hubs whose stop did not finish: see stop_hub.
STUCK_HUBS: list[str] = []


async def stop_hub(hub: EventHub) -> None:
    """`hub.stop()`, bounded. Cancelling a Redis hub while its reader is inside the read
    script (EVALSHA) is swallowed under redis-py 8.1 and leaves the reader in XREAD BLOCK
    for good, so stop() never returns. The reader sits in that script for about a
    millisecond after each delivery and each idle second; once idle for a moment it is in
    XREAD BLOCK, where a cancel is honoured. A stop that still hangs is counted, printed,
    and the process exits without waiting for it."""
    await asyncio.sleep(0.05)
    stopping = asyncio.ensure_future(hub.stop())
    done, _ = await asyncio.wait([stopping], timeout=3.0)
    if not done:
        STUCK_HUBS.append(hub.log.name)
        print(f"  WARNING: EventHub.stop() of {hub.log.name} did not return within 3 s")


# --- 1. publish rate and end-to-end latency -----------------------------------------------


async def publish_rate(log: EventLog, market: int, batch: int) -> float:
    """Events per second appended in batches of `batch`, back to back, for RATE_SECONDS."""
    items = events(market, RATE_MAX_EVENTS)
    await log.append(items[:batch])  # the stream made, the connection open
    sent, start = batch, time.perf_counter()
    while sent + batch <= len(items) and time.perf_counter() - start < RATE_SECONDS:
        await log.append(items[sent : sent + batch])
        sent += batch
    return (sent - batch) / (time.perf_counter() - start)


@dataclass
class Fanout:
    """One end-to-end run: latencies, the publisher's append times, who was cut off."""

    delivered_ms: list[float]
    append_ms: list[float]
    rate: float
    stalled_cut: int
    stalled: int
    active_cut: int
    complete: int  # active subscriptions that received every event


async def fanout(log: EventLog, market: int, stalled: int, count: int, rate: float) -> Fanout:
    hub = EventHub(log)
    await hub.start()
    pattern = f"market.{market}.>"
    subscriptions = [(await hub.subscribe([pattern]))[0] for _ in range(SUBSCRIBERS)]
    stalled_subs, active = subscriptions[:stalled], subscriptions[stalled:]
    sent: dict[str, float] = {}
    delivered: list[float] = []
    received = [0] * len(active)

    async def consume(k: int) -> None:
        subscription = active[k]
        with contextlib.suppress(SubscriptionEnded):
            while received[k] < count:
                items = await subscription.get()
                now = time.perf_counter()
                for item in items:
                    if isinstance(item, Delivered):
                        delivered.append(now - sent[item.envelope.id])
                        received[k] += 1

    consumers = [asyncio.create_task(consume(k)) for k in range(len(active))]
    items = events(market, count)
    appends: list[float] = []
    interval, start = 1.0 / rate, time.perf_counter()
    for i, item in enumerate(items):
        delay = start + i * interval - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        t0 = sent[item[2]] = time.perf_counter()
        await log.append([item])
        appends.append(time.perf_counter() - t0)
    achieved = count / (time.perf_counter() - start)
    await asyncio.wait(consumers, timeout=15.0)
    for task in consumers:
        task.cancel()
    result = Fanout(
        ms(delivered),
        ms(appends),
        achieved,
        sum(1 for s in stalled_subs if s.ended == "slow"),
        stalled,
        sum(1 for s in active if s.ended == "slow"),
        sum(1 for n in received if n >= count),
    )
    await stop_hub(hub)
    return result


# --- 2. replay -----------------------------------------------------------------------------


async def replay(log: EventLog, market: int, missed: int, trials: int) -> list[float]:
    """Milliseconds for subscribe(after=<`missed` events back>) to queue them all."""
    hub = EventHub(log)
    await hub.start()
    head = await log.head()
    pattern = f"market.{market}.>"
    took = []
    for _ in range(trials):
        start = time.perf_counter()
        subscription, resumed = await hub.subscribe(
            [pattern], after=Position(head.last - missed, head.epoch)
        )
        took.append((time.perf_counter() - start) * 1e3)
        if resumed.recovered is not True or len(subscription.queue) != missed:
            raise BenchError(
                f"replay of {missed} on {log.name}: recovered {resumed.recovered}, "
                f"{len(subscription.queue)} queued"
            )
        subscription.close()
    await stop_hub(hub)
    return took


def parse_cost(items: list[tuple[str, bytes, str]]) -> float:
    """Milliseconds to parse these envelopes, median of 5: what every replay pays per event."""
    took = []
    for _ in range(5):
        start = time.perf_counter()
        for _, data, _ in items:
            envelope_parse(data)
        took.append((time.perf_counter() - start) * 1e3)
    return quantile(took, 0.5)


# --- 3. and 4. servers of the bench's own ---------------------------------------------------


def wait_for_port(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BenchError(f"{process.args[0]} exited with {process.returncode} on start")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.02)
    raise BenchError(f"{process.args[0]} did not listen on {port} in {START_TIMEOUT_S} s")


class OwnServer:
    """A server process of this bench's own on a free port, which it may kill -9."""

    def __init__(self, name: str, command: Callable[[int], list[str]]) -> None:
        binary = shutil.which(name)
        if binary is None:
            raise BenchError(f"{name} is not on PATH")
        self.port = free_port()
        self.command = [binary, *command(self.port)]
        self.process = self._start()

    def _start(self) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(
            self.command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_for_port(self.port, process)
        return process

    def kill_and_start(self) -> None:
        """SIGKILL, as a crash would: nothing flushed on the way down; then start again."""
        self.killed_at = time.perf_counter()
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)
        self.process = self._start()

    def rss_kib(self) -> int:
        with open(f"/proc/{self.process.pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise BenchError("no VmRSS")

    def stop(self) -> None:
        self.process.kill()
        self.process.wait(10)


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


async def all_ids(log: EventLog) -> set[str]:
    ids, cursor = set(), 0
    while True:
        batch = await log.read(cursor, 1000)
        if not batch.entries:
            return ids
        for entry in batch.entries:
            ids.add(envelope_parse(entry.data).id)
        cursor = batch.entries[-1].offset


async def restart(kind: str, server: OwnServer) -> dict[str, Any]:
    """Acked events, kill -9, start again: what a consumer finds."""
    url = f"{'redis' if kind == 'redis' else 'nats'}://127.0.0.1:{server.port}"
    target = Target(kind, url)
    market = new_market()
    stream = f"market.{market}"
    backend = target.make()
    log = backend.log(stream)
    items = events(market, RESTART_EVENTS)
    acked = set()
    for i in range(0, len(items), 100):
        offsets = await log.append(items[i : i + 100])
        acked.update(item[2] for item in items[i : i + len(offsets)])
    before: Head = await log.head()  # a consumer's position after the last of them
    server.kill_and_start()
    backend_after = target.make()
    log_after = backend_after.log(stream)
    after: Head = await retry(log_after.head)
    answered_s = time.perf_counter() - server.killed_at
    survived = len(acked & await retry(lambda: all_ids(log_after)))
    resumed_hub = EventHub(log_after)
    subscription, resumed = await hub_subscribe(resumed_hub, stream, before)
    subscription.close()
    await stop_hub(resumed_hub)
    with contextlib.suppress(Exception):
        await asyncio.wait_for(backend.close(), 5)
    await backend_after.close()
    return {
        "acked": len(acked),
        "epoch_changed": after.epoch != before.epoch,
        "survived": survived,
        "answered_ms": answered_s * 1e3,
        "recovered": resumed.recovered,
        "reason": resumed.reason,
    }


async def hub_subscribe(hub: EventHub, stream: str, before: Head) -> Any:
    return await retry(
        lambda: hub.subscribe([f"{stream}.>"], after=Position(before.last, before.epoch))
    )


async def durable_memory(server: OwnServer, store: Path) -> dict[str, float]:
    """RSS and store bytes of nats-server per durable consumer, over DURABLES of them."""
    backend = Target("nats", f"nats://127.0.0.1:{server.port}").make()
    market = new_market()
    log = backend.log(f"market.{market}")
    await log.append(events(market, 100))
    await asyncio.sleep(0.5)
    rss_before, disk_before = server.rss_kib(), dir_bytes(store)
    start = time.perf_counter()
    for i in range(DURABLES):
        await log.durable_position(f"consumer{i}")
    made_s = time.perf_counter() - start
    await asyncio.sleep(1.0)
    rss_after, disk_after = server.rss_kib(), dir_bytes(store)
    await backend.close()
    return {
        "rss_before_mib": rss_before / 1024,
        "rss_after_mib": rss_after / 1024,
        "rss_per_consumer_kib": (rss_after - rss_before) / DURABLES,
        "disk_per_consumer_kib": (disk_after - disk_before) / DURABLES / 1024,
        "create_ms_each": made_s * 1e3 / DURABLES,
    }


def checkpoint_memory(server: OwnServer) -> dict[str, float]:
    """used_memory per consumer checkpoint in Redis: a key each, or a hash field each."""
    client = redis.Redis(port=server.port)
    stream = f"market.{new_market()}"
    epoch, offset = uuid.uuid4().hex[:16], 123_456
    figures = {}
    for shape in ("key", "hash_field"):
        client.flushall()
        time.sleep(0.2)
        before = client.info("memory")["used_memory"]
        pipe = client.pipeline(transaction=False)
        for i in range(DURABLES):
            value = f"{epoch}:{offset + i}"
            if shape == "key":
                pipe.set(f"{REDIS_PREFIX}:{{{stream}}}:checkpoint:consumer{i}", value)
            else:
                pipe.hset(f"{REDIS_PREFIX}:{{{stream}}}:checkpoints", f"consumer{i}", value)
        pipe.execute()
        after = client.info("memory")["used_memory"]
        figures[f"{shape}_bytes_per_consumer"] = (after - before) / DURABLES
    client.flushall()
    client.close()
    return figures


# --- 5. channels-redis group_send -----------------------------------------------------------


async def channels_baseline(url: str, count: int, rate: float) -> dict[str, Any]:
    """group_send to SUBSCRIBERS channels: sends/s back to back, then delivery latency at
    `rate` (the streams' rate) and at a quarter of it (a rate the layer can keep up with)."""
    layer = RedisChannelLayer(hosts=[url], prefix=f"{REDIS_PREFIX}_layer", capacity=QUEUE_LIMIT)
    group = "market_events"
    channels = [await layer.new_channel() for _ in range(SUBSCRIBERS)]
    for channel in channels:
        await layer.group_add(group, channel)
    delivered: dict[int, list[float]] = {}  # phase -> seconds, for messages of that phase
    received: dict[int, int] = {}

    async def consume(k: int) -> None:
        while True:
            message = await layer.receive(channels[k])
            now, phase = time.perf_counter(), message["phase"]
            if phase:
                delivered[phase].append(now - message["t0"])
                received[phase] += 1

    consumers = [asyncio.create_task(consume(k)) for k in range(SUBSCRIBERS)]
    _, data, _ = padded_event(new_market(), 1)

    def message(phase: int, t0: float) -> dict[str, Any]:
        return {"type": "market.event", "data": data, "t0": t0, "phase": phase}

    # Group sends per second, back to back, every member reading.
    sends, start = 0, time.perf_counter()
    while time.perf_counter() - start < RATE_SECONDS:
        await layer.group_send(group, message(0, 0.0))
        sends += 1
    figures: dict[str, Any] = {"send_rate": sends / (time.perf_counter() - start)}
    await asyncio.sleep(1.0)  # the members drain what the burst left
    for phase, (phase_rate, phase_count, key) in enumerate(
        ((rate, count, ""), (rate / 4, count // 4, "slow_")), start=1
    ):
        delivered[phase], received[phase] = [], 0
        appends: list[float] = []
        interval, start = 1.0 / phase_rate, time.perf_counter()
        for i in range(phase_count):
            delay = start + i * interval - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            t0 = time.perf_counter()
            await layer.group_send(group, message(phase, t0))
            appends.append(time.perf_counter() - t0)
        achieved = phase_count / (time.perf_counter() - start)
        deadline = time.monotonic() + 15.0
        while received[phase] < phase_count * SUBSCRIBERS and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        figures.update(
            {
                f"{key}rate": achieved,
                f"{key}p50_ms": quantile(ms(delivered[phase]), 0.5),
                f"{key}p99_ms": quantile(ms(delivered[phase]), 0.99),
                f"{key}append_p99_ms": quantile(ms(appends), 0.99),
                f"{key}delivered_share": received[phase] / (phase_count * SUBSCRIBERS),
            }
        )
        print(
            f"  channels group_send to {SUBSCRIBERS}, {achieved:5.0f} events/s: delivered p50 "
            f"{figures[f'{key}p50_ms']:7.2f} ms p99 {figures[f'{key}p99_ms']:7.2f} ms; send p99 "
            f"{figures[f'{key}append_p99_ms']:6.3f} ms; "
            f"{figures[f'{key}delivered_share']:.1%} delivered"
        )
    for task in consumers:
        task.cancel()
    await asyncio.gather(*consumers, return_exceptions=True)
    await layer.flush()
    print(f"  channels group_send back to back: {figures['send_rate']:,.0f} sends/s")
    return figures


# --- the run -------------------------------------------------------------------------------


async def measure_backend(
    target: Target, args: argparse.Namespace, figures: dict[str, Any]
) -> list[str]:
    """Sections 1 and 2 for one backend; the stream names made, to delete."""
    backend = target.backend = target.make()
    streams, mine = [], figures.setdefault(target.kind, {})
    for batch in (1, 100):
        market = new_market()
        streams.append(f"market.{market}")
        rate = await publish_rate(backend.log(streams[-1]), market, batch)
        mine[f"publish_rate_b{batch}"] = rate
        print(f"  {target.kind:<7} publish, batches of {batch:>3}: {rate:10,.0f} events/s")
    # Without and with stalled consumers, in the order A B B A so that drift on the shared
    # machine hits both alike; the two runs of each are pooled. The two runs without
    # stalled consumers, compared with each other, show how far p99 moves by noise alone.
    stalled_count = int(SUBSCRIBERS * STALLED_SHARE)
    runs: dict[int, list[Fanout]] = {0: [], stalled_count: []}
    for stalled in (0, stalled_count, stalled_count, 0):
        market = new_market()
        streams.append(f"market.{market}")
        run = await fanout(backend.log(streams[-1]), market, stalled, args.events, args.rate)
        runs[stalled].append(run)
        print(
            f"  {target.kind:<7} {SUBSCRIBERS} subscriptions, {stalled:>2} stalled, "
            f"{run.rate:5.0f} events/s: delivered p50 {quantile(run.delivered_ms, 0.5):7.2f} ms "
            f"p99 {quantile(run.delivered_ms, 0.99):7.2f} ms; append p99 "
            f"{quantile(run.append_ms, 0.99):6.3f} ms; stalled cut off {run.stalled_cut}/"
            f"{stalled}, active cut off {run.active_cut}, complete {run.complete}/"
            f"{SUBSCRIBERS - stalled}"
        )
    for stalled, pair in runs.items():
        delivered = [x for run in pair for x in run.delivered_ms]
        appends = [x for run in pair for x in run.append_ms]
        mine[f"stalled{stalled}"] = {
            "p50_ms": quantile(delivered, 0.5),
            "p99_ms": quantile(delivered, 0.99),
            "append_p50_ms": quantile(appends, 0.5),
            "append_p99_ms": quantile(appends, 0.99),
            "rate": min(run.rate for run in pair),
            "stalled_cut": min(run.stalled_cut for run in pair),
            "active_cut": sum(run.active_cut for run in pair),
            "complete": min(run.complete for run in pair),
            "active": SUBSCRIBERS - stalled,
        }
    first, second = (quantile(run.append_ms, 0.99) for run in runs[0])
    mine["publisher_p99_noise"] = max(first, second) / min(first, second)
    moved = mine[f"stalled{stalled_count}"]["append_p99_ms"] / mine["stalled0"]["append_p99_ms"]
    mine["publisher_p99_ratio"] = moved
    verdict = "met" if moved <= PUBLISHER_P99_TARGET else "NOT met"
    print(
        f"  {target.kind:<7} publisher append p99, pooled: {mine['stalled0']['append_p99_ms']:.3f} ms"
        f" without, {mine[f'stalled{stalled_count}']['append_p99_ms']:.3f} ms with"
        f" {stalled_count} stalled: ratio {moved:.3f} (target <= {PUBLISHER_P99_TARGET}: {verdict});"
        f" the two runs without stalled consumers differ by {mine['publisher_p99_noise']:.3f}x"
    )
    market = new_market()
    streams.append(f"market.{market}")
    log = backend.log(streams[-1])
    start = time.perf_counter()
    await fill(log, events(market, args.big + 1_000), target.kind)
    print(
        f"  {target.kind:<7} {args.big + 1_000:,} events stored in {time.perf_counter() - start:.1f} s"
    )
    parse = parse_cost(events(market, REPLAY_SMALL))
    mine["parse_1000_ms"] = parse
    print(f"  {target.kind:<7} for reference, envelope_parse of 1,000 envelopes: {parse:.1f} ms")
    for missed, trials in ((REPLAY_SMALL, args.trials), (args.big, args.big_trials)):
        took = await replay(log, market, missed, trials)
        mine[f"replay_{missed}"] = {
            "p50_ms": quantile(took, 0.5),
            "p99_ms": quantile(took, 0.99),
            "trials": trials,
            "took_ms": took,
        }
        verdict = ""
        if missed == REPLAY_SMALL:
            met = quantile(took, 0.99) <= REPLAY_TARGET_P99_MS
            verdict = (
                f" (target p99 <= {REPLAY_TARGET_P99_MS:.0f} ms: {'met' if met else 'NOT met'})"
            )
        print(
            f"  {target.kind:<7} replay {missed:>7,} missed, {trials} trials: "
            f"p50 {quantile(took, 0.5):9.1f} ms p99 {quantile(took, 0.99):9.1f} ms{verdict}"
        )
    return streams


async def tidy(target: Target, streams: list[str]) -> None:
    backend = target.backend
    if backend is None:
        return
    if target.kind == "nats":
        for stream in streams:
            with contextlib.suppress(Exception):
                await backend.log(stream).delete()
    await backend.close()
    if target.kind == "redis":
        client = redis.Redis.from_url(target.url)
        for key in client.scan_iter(match=f"{REDIS_PREFIX}*", count=1000):
            client.delete(key)
        client.close()


async def own_servers(figures: dict[str, Any]) -> None:
    """Sections 3 and 4, on servers this bench starts and stops."""
    with tempfile.TemporaryDirectory(prefix="bench_streams_") as tmp:
        redis_dir, nats_dir = Path(tmp, "redis"), Path(tmp, "nats")
        redis_dir.mkdir()
        nats_dir.mkdir()
        own_redis = OwnServer(
            "redis-server",
            lambda port: (
                ["--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly"]
                + ["no", "--dir", str(redis_dir)]
            ),
        )
        own_nats = OwnServer(
            "nats-server",
            lambda port: ["-js", "-a", "127.0.0.1", "-p", str(port), "-sd", str(nats_dir)],
        )
        try:
            for kind, server in (("redis", own_redis), ("nats", own_nats)):
                got = figures.setdefault(kind, {})["restart"] = await restart(kind, server)
                print(
                    f"  {kind:<7} restart (kill -9): epoch changed {got['epoch_changed']}, "
                    f"{got['survived']:,}/{got['acked']:,} acked events survived, answering "
                    f"again after {got['answered_ms']:.0f} ms, a resuming consumer gets "
                    f"recovered: {got['recovered']} {got['reason']}".rstrip()
                )
            got = figures["nats"]["durables"] = await durable_memory(own_nats, nats_dir)
            print(
                f"  nats    {DURABLES:,} durable consumers: nats-server RSS "
                f"{got['rss_before_mib']:.1f} -> {got['rss_after_mib']:.1f} MiB, "
                f"{got['rss_per_consumer_kib']:.1f} KiB of RSS and "
                f"{got['disk_per_consumer_kib']:.1f} KiB of store each; "
                f"{got['create_ms_each']:.2f} ms to make each"
            )
            got = figures["redis"]["checkpoints"] = checkpoint_memory(own_redis)
            print(
                f"  redis   {DURABLES:,} consumer checkpoints: "
                f"{got['key_bytes_per_consumer']:.0f} bytes each as keys, "
                f"{got['hash_field_bytes_per_consumer']:.0f} bytes each as hash fields"
            )
        finally:
            own_redis.stop()
            own_nats.stop()


def server_version(binary: str) -> str:
    try:
        said = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=5)
    except OSError:
        return "not found"
    return said.stdout.strip().split("\n")[0]


def print_table(figures: dict[str, Any], big: int) -> None:
    """Every figure per backend, with its ratio to channels-redis where there is one."""
    base = figures["channels"]
    print()
    print(
        f"baseline, channels-redis group_send to {SUBSCRIBERS} members: "
        f"{base['send_rate']:,.0f} sends/s back to back; at {base['rate']:.0f}/s delivered "
        f"p50 {base['p50_ms']:.2f} ms, p99 {base['p99_ms']:.2f} ms "
        f"({base['delivered_share']:.1%} delivered); at {base['slow_rate']:.0f}/s "
        f"p50 {base['slow_p50_ms']:.2f} ms, p99 {base['slow_p99_ms']:.2f} ms"
    )
    stalled = f"stalled{int(SUBSCRIBERS * STALLED_SHARE)}"
    rows: list[tuple[str, Callable[[dict[str, Any]], float], float | None, str]] = [
        (
            "publish, batches of 1 (events/s)",
            lambda f: f["publish_rate_b1"],
            base["send_rate"],
            ",.0f",
        ),
        (
            "publish, batches of 100 (events/s)",
            lambda f: f["publish_rate_b100"],
            base["send_rate"],
            ",.0f",
        ),
        ("delivered p50, 0 stalled (ms)", lambda f: f["stalled0"]["p50_ms"], base["p50_ms"], ".2f"),
        ("delivered p99, 0 stalled (ms)", lambda f: f["stalled0"]["p99_ms"], base["p99_ms"], ".2f"),
        (
            "  p99 against channels at a quarter rate",
            lambda f: f["stalled0"]["p99_ms"],
            base["slow_p99_ms"],
            ".2f",
        ),
        ("delivered p50, 10 stalled (ms)", lambda f: f[stalled]["p50_ms"], base["p50_ms"], ".2f"),
        ("delivered p99, 10 stalled (ms)", lambda f: f[stalled]["p99_ms"], base["p99_ms"], ".2f"),
        (
            "append p99, 0 stalled (ms)",
            lambda f: f["stalled0"]["append_p99_ms"],
            base["append_p99_ms"],
            ".3f",
        ),
        (
            "append p99, 10 stalled (ms)",
            lambda f: f[stalled]["append_p99_ms"],
            base["append_p99_ms"],
            ".3f",
        ),
        ("append p99, 10 stalled / 0 stalled", lambda f: f["publisher_p99_ratio"], None, ".3f"),
        ("  the same, 0 stalled run A / run A'", lambda f: f["publisher_p99_noise"], None, ".3f"),
        ("stalled cut off as slow (of 10)", lambda f: f[stalled]["stalled_cut"], None, ".0f"),
        (
            "active cut off (of 2 x 90 + 2 x 100)",
            lambda f: f[stalled]["active_cut"] + f["stalled0"]["active_cut"],
            None,
            ".0f",
        ),
        ("replay 1,000: p50 (ms)", lambda f: f["replay_1000"]["p50_ms"], None, ".1f"),
        ("replay 1,000: p99 (ms)", lambda f: f["replay_1000"]["p99_ms"], None, ".1f"),
        (f"replay {big:,}: p50 (ms)", lambda f: f[f"replay_{big}"]["p50_ms"], None, ",.0f"),
        (f"replay {big:,}: p99 (ms)", lambda f: f[f"replay_{big}"]["p99_ms"], None, ",.0f"),
        ("envelope_parse of 1,000 (ms)", lambda f: f["parse_1000_ms"], None, ".1f"),
    ]
    header = f"{'figure':<42}" + "".join(f"{kind:>12}{'/ch':>8}" for kind in KINDS)
    print(header + f"{'channels':>11}")
    print("-" * (len(header) + 11))
    for name, pick, baseline, spec in rows:
        line = f"{name:<42}"
        for kind in KINDS:
            value = pick(figures[kind])
            line += f"{value:>12{spec}}" + f"{ratio(value, baseline) if baseline else '':>8}"
        print(line + (f"{baseline:>11{spec}}" if baseline else ""))
    for kind in ("redis", "nats"):
        got = figures[kind]["restart"]
        print(
            f"{kind + ' kill -9: epoch changed, acked kept':<42}{'':>20}"
            f"{str(got['epoch_changed']):>12}  {got['survived']:,}/{got['acked']:,} kept, "
            f"recovered: {got['recovered']}, answering after {got['answered_ms']:.0f} ms"
        )
    durables, checkpoints = figures["nats"]["durables"], figures["redis"]["checkpoints"]
    print(
        f"{'per durable consumer, of 1,000':<42}{'':>20}"
        f"redis {checkpoints['key_bytes_per_consumer']:.0f} B as a key, "
        f"{checkpoints['hash_field_bytes_per_consumer']:.0f} B as a hash field; "
        f"nats {durables['rss_per_consumer_kib']:.1f} KiB RSS "
        f"+ {durables['disk_per_consumer_kib']:.1f} KiB store"
    )


async def run(args: argparse.Namespace) -> dict[str, Any]:
    # What is loaded now lives as long as the bench, as in a web process (fabric_site/asgi.py).
    gc.freeze()
    figures: dict[str, Any] = {"load_start": load_average()}
    targets = [Target("memory", ""), Target("redis", args.redis_url), Target("nats", args.nats_url)]
    made: dict[str, list[str]] = {}
    try:
        print("1, 2. publish rate, end-to-end latency, replay")
        for target in targets:
            made[target.kind] = await measure_backend(target, args, figures)
        print("3, 4. broker restart and memory per consumer, on servers of the bench's own")
        await own_servers(figures)
        print("5. baseline: channels-redis group_send")
        figures["channels"] = await channels_baseline(args.redis_url, args.events, args.rate)
    finally:
        for target in targets:
            await tidy(target, made.get(target.kind, []))
    figures["load_end"] = load_average()
    print_table(figures, args.big)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS_URL))
    parser.add_argument("--nats-url", default=os.environ.get("NATS_URL", DEFAULT_NATS_URL))
    parser.add_argument("--events", type=int, default=1_200, help="events per latency run")
    parser.add_argument("--rate", type=float, default=400.0, help="events/s in latency runs")
    parser.add_argument("--trials", type=int, default=30, help="replays of 1,000 events")
    parser.add_argument("--big-trials", type=int, default=3, help="replays of 100,000 events")
    parser.add_argument("--big", type=int, default=REPLAY_BIG, help="events of the long replay")
    parser.add_argument("--json", type=Path, help="write every figure here as JSON")
    args = parser.parse_args()
    if args.events <= QUEUE_LIMIT:
        parser.error(
            f"--events must exceed the queue limit ({QUEUE_LIMIT}) to cut stalled ones off"
        )
    machine_info(
        redis=server_version("redis-server"),
        nats=server_version("nats-server"),
        streams=f"redis {args.redis_url} prefix {REDIS_PREFIX}, nats {args.nats_url} prefix {NATS_PREFIX}",
    )
    try:
        import uvloop
    except ImportError:
        runner: Any = asyncio.run
    else:
        runner = uvloop.run
    started = time.perf_counter()
    figures = runner(run(args))
    figures["stuck_hubs"] = len(STUCK_HUBS)
    figures["seconds"] = time.perf_counter() - started
    print(f"\nload {figures['load_end']} at the end; the run took {figures['seconds']:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1, default=str))
    if STUCK_HUBS:
        print(f"{len(STUCK_HUBS)} hub(s) could not be stopped: {', '.join(STUCK_HUBS)}")
        sys.stdout.flush()
        os._exit(0)  # their readers would hang the event loop's shutdown too


if __name__ == "__main__":
    main()
