"""One conformance suite for every event stream backend, against real servers.

Each test runs on the in-process backend, on Redis (the shared server of `redis_url`)
and on NATS JetStream (`nats_url`), in streams and key prefixes of its own, which it
removes at the end. The restart tests start servers of their own on free ports.
"""

import asyncio
import random
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nats
import pytest
import redis

from market.events.backends import Batch, Retention, StreamLost
from market.events.backends.jetstream import VISITOR_REPUBLISH, JetStreamBackend
from market.events.backends.memory import MemoryBackend
from market.events.backends.redis_streams import RedisStreamsBackend

SHORT = Retention(max_len=1000, max_age_s=3600.0)


def new_stream() -> str:
    """A market stream no other test (or run) uses: JetStream subjects may not overlap."""
    return f"market.{random.randrange(10**11, 10**12)}"


def events(stream: str, ids: list[str], kind: str = "ops.summary") -> list[tuple[str, bytes, str]]:
    return [(f"{stream}.{kind}", f"event {i}".encode(), i) for i in ids]


@dataclass
class Kit:
    """Makes backends of one kind on one server and removes what they made."""

    kind: str
    url: str = ""
    prefix: str = field(default_factory=lambda: f"T{uuid.uuid4().hex[:10]}")
    made: list[Any] = field(default_factory=list)

    def make(self, retention: Retention = SHORT, url: str = "") -> Any:
        if self.kind == "memory":
            backend: Any = MemoryBackend(retention)
        elif self.kind == "redis":
            backend = RedisStreamsBackend(url or self.url, retention, prefix=self.prefix)
        else:
            backend = JetStreamBackend(url or self.url, retention, prefix=self.prefix)
        self.made.append(backend)
        return backend

    async def lose(self, backend: Any, stream: str) -> Any:
        """Lose `stream` as its server would; the backend to look at it with afterwards."""
        if self.kind == "memory":
            return self.make(backend.retention)  # a restarted process: a new backend object
        if self.kind == "redis":
            await backend.delete(stream)
        else:
            await backend.log(stream).delete()
        return backend

    async def tidy(self) -> None:
        for backend in self.made:
            await backend.close()
        if self.kind == "redis":
            client = redis.Redis.from_url(self.url)
            for key in client.scan_iter(match=f"{self.prefix}:*", count=1000):
                client.delete(key)
            client.close()
        elif self.kind == "nats":
            await delete_streams(self.url, self.prefix)


async def delete_streams(url: str, prefix: str) -> None:
    nc = await nats.connect(url)
    js = nc.jetstream()
    for info in await js.streams_info():
        if info.config.name.startswith(f"{prefix}_"):
            await js.delete_stream(info.config.name)
    await nc.close()


@pytest.fixture(params=["memory", "redis", "nats"])
async def kit(request: pytest.FixtureRequest) -> AsyncIterator[Kit]:
    url = "" if request.param == "memory" else request.getfixturevalue(f"{request.param}_url")
    made = Kit(request.param, url)
    yield made
    await made.tidy()


def needs_server(kit: Kit) -> None:
    if kit.kind == "memory":
        pytest.skip("the in-process backend has no server to reconnect to")


async def eventually(check: Callable[[], Awaitable[bool]], seconds: float = 5.0) -> None:
    """Wait for a server that acts in its own time (JetStream expiry, a restart)."""
    deadline = time.monotonic() + seconds
    while not await check():
        assert time.monotonic() < deadline, "the condition did not hold in time"
        await asyncio.sleep(0.1)


async def retry_lost(call: Callable[[], Awaitable[Any]], seconds: float = 15.0) -> Any:
    """`call` until it no longer raises StreamLost: a restarted server answers again."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return await call()
        except StreamLost:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


def offsets(batch: Batch) -> list[int]:
    return [entry.offset for entry in batch.entries]


# Offsets, idempotence, head


async def test_offsets_are_contiguous_in_append_order(kit: Kit) -> None:
    log = kit.make().log(new_stream())
    assert await log.append(events(log.name, ["a", "b", "c"])) == [1, 2, 3]
    assert await log.append(events(log.name, ["d", "e"])) == [4, 5]
    batch = await log.read(0, 100)
    assert offsets(batch) == [1, 2, 3, 4, 5]
    assert [e.data for e in batch.entries] == [f"event {i}".encode() for i in "abcde"]


async def test_a_retried_batch_answers_the_same_offsets_and_appends_nothing(kit: Kit) -> None:
    log = kit.make().log(new_stream())
    first = await log.append(events(log.name, ["a", "b", "c"]))
    assert await log.append(events(log.name, ["a", "b", "c"])) == first
    assert await log.append(events(log.name, ["b", "d", "a"])) == [2, 4, 1]
    assert offsets(await log.read(0, 100)) == [1, 2, 3, 4]
    assert (await log.head()).last == 4


async def test_head_of_an_empty_then_a_filled_stream(kit: Kit) -> None:
    log = kit.make().log(new_stream())
    empty = await log.head()
    assert (empty.first, empty.last) == (1, 0) and empty.epoch
    await log.append(events(log.name, ["a", "b"]))
    filled = await log.head()
    assert (filled.epoch, filled.first, filled.last) == (empty.epoch, 1, 2)


# Reading


async def test_read_after_and_limit(kit: Kit) -> None:
    log = kit.make().log(new_stream())
    await log.append(events(log.name, [str(i) for i in range(7)]))
    assert offsets(await log.read(0, 3)) == [1, 2, 3]
    assert offsets(await log.read(3, 3)) == [4, 5, 6]
    assert offsets(await log.read(6, 3)) == [7]
    later = await log.read(7, 3)
    assert later.entries == [] and later.epoch == (await log.head()).epoch


async def test_read_with_patterns(kit: Kit) -> None:
    log = kit.make().log(new_stream())
    s = log.name
    await log.append(
        [
            (f"{s}.ops.summary", b"1", "a"),
            (f"{s}.booth.3.visitor.42", b"2", "b"),
            (f"{s}.booth.4.visitor.42", b"3", "c"),
            (f"{s}.booth.4.visitor.7", b"4", "d"),
            (f"{s}.booth.4.assets", b"5", "e"),
        ]
    )
    assert offsets(await log.read(0, 10, [f"{s}.booth.*.visitor.42"])) == [2, 3]
    assert offsets(await log.read(2, 10, [f"{s}.booth.*.visitor.42"])) == [3]
    assert offsets(await log.read(0, 10, [f"{s}.booth.4.>"])) == [3, 4, 5]
    assert offsets(await log.read(0, 2, [f"{s}.ops.>", f"{s}.*.*.assets"])) == [1, 5]
    assert offsets(await log.read(0, 10, [f"{s}.nothing.here"])) == []


async def test_a_pattern_finds_its_entry_past_many_others(kit: Kit) -> None:
    log = kit.make().log(new_stream())
    await log.append(events(log.name, [f"x{i}" for i in range(600)]))
    await log.append([(f"{log.name}.booth.1.assets", b"wanted", "y")])
    found = await log.read(0, 5, [f"{log.name}.booth.*.assets", f"{log.name}.nothing"])
    assert [(e.offset, e.data) for e in found.entries] == [(601, b"wanted")]


# Waiting


async def test_wait_wakes_on_an_append(kit: Kit) -> None:
    log = kit.make().log(new_stream())
    await log.append(events(log.name, ["a"]))

    async def append_soon() -> None:
        await asyncio.sleep(0.3)
        await log.append(events(log.name, ["b", "c"]))

    started = time.monotonic()
    task = asyncio.create_task(append_soon())
    batch = await log.wait(1, 10.0)
    await task
    assert offsets(batch)[0] == 2 and time.monotonic() - started < 5.0
    assert offsets(await log.wait(0, 1.0)) == [1, 2, 3]


async def test_wait_times_out_with_an_empty_batch(kit: Kit) -> None:
    log = kit.make().log(new_stream())
    await log.append(events(log.name, ["a"]))
    started = time.monotonic()
    batch = await log.wait(1, 0.5)
    assert batch.entries == [] and batch.epoch == (await log.head()).epoch
    assert 0.4 <= time.monotonic() - started < 4.0


# Retention


async def test_retention_by_length(kit: Kit) -> None:
    log = kit.make(Retention(max_len=3, max_age_s=3600.0)).log(new_stream())
    await log.append(events(log.name, ["a", "b", "c", "d", "e"]))
    head = await log.head()
    assert (head.first, head.last) == (3, 5)
    assert offsets(await log.read(0, 10)) == [3, 4, 5]


async def test_retention_by_age(kit: Kit) -> None:
    log = kit.make(Retention(max_len=1000, max_age_s=1.0)).log(new_stream())
    await log.append(events(log.name, ["a", "b"]))
    await asyncio.sleep(1.3)
    await log.append(events(log.name, ["c"]))  # the memory and Redis backends trim on append

    async def only_the_new_one_left() -> bool:
        head = await log.head()
        return (head.first, head.last) == (3, 3)

    await eventually(only_the_new_one_left)
    assert offsets(await log.read(0, 10)) == [3]


async def test_redis_remembers_an_id_while_its_entry_is_held_and_no_longer(redis_url) -> None:
    """What the stream keeps of event ids is bounded by what it holds: a market whose
    visitors come and go appends tens of events a second, each with an id of its own."""
    made = Kit("redis", redis_url)
    try:
        log = made.make(Retention(max_len=3, max_age_s=3600.0)).log(new_stream())
        ids = [f"e{n}" for n in range(50)]
        for batch in range(0, 50, 5):
            await log.append(events(log.name, ids[batch : batch + 5]))
        assert await log.append(events(log.name, ["e49"])) == [50]  # held: answered
        assert await log.append(events(log.name, ["e10"])) == [51]  # long gone: appended anew
        client = redis.Redis.from_url(redis_url)
        try:
            keys = sorted(k.decode() for k in client.scan_iter(match=f"{made.prefix}:*"))
            assert [k.rsplit(":", 1)[1] for k in keys] == ["ids", "log", "meta"]
            assert client.zcard(log.ids_key) == 3
        finally:
            client.close()
    finally:
        await made.tidy()


# Epochs


async def test_epoch_is_the_same_for_a_new_backend_object_on_the_same_server(kit: Kit) -> None:
    needs_server(kit)
    stream = new_stream()
    await kit.make().log(stream).append(events(stream, ["a", "b"]))
    first = await kit.make().log(stream).head()
    again = await kit.make().log(stream).head()
    assert first == again and first.last == 2


async def test_epoch_changes_when_the_stream_is_lost(kit: Kit) -> None:
    backend, stream = kit.make(), new_stream()
    before = await backend.log(stream).head()
    await backend.log(stream).append(events(stream, ["a", "b"]))
    backend = await kit.lose(backend, stream)
    after = await backend.log(stream).head()
    assert after.epoch != before.epoch and (after.first, after.last) == (1, 0)
    # The ids the lost stream held are new again: their old offsets meant the old epoch.
    assert await backend.log(stream).append(events(stream, ["b", "c"])) == [1, 2]


# Entries other programs put in the store


async def test_foreign_entries_do_not_break_read_or_wait(kit: Kit) -> None:
    if kit.kind == "memory":
        pytest.skip("no other program can write into this process's memory")
    backend, stream = kit.make(), new_stream()
    log = backend.log(stream)
    await log.append(events(stream, ["a"]))
    await write_foreign(kit, backend, stream)
    await log.append(events(stream, ["b"]))
    read = await log.read(0, 10)
    waited = await log.wait(0, 1.0)
    if kit.kind == "redis":  # entries the script did not write are skipped
        assert offsets(read) == offsets(waited) == [1, 2]
    else:  # JetStream numbered the garbage: it is surfaced with its raw bytes
        assert offsets(read) == offsets(waited) == [1, 2, 3]
        assert read.entries[1].data == b"\xff\x00 not an envelope"
        assert read.entries[1].subject == f"{stream}.booth.1.visitor.2"


async def write_foreign(kit: Kit, backend: Any, stream: str) -> None:
    if kit.kind == "redis":
        log = backend.log(stream)
        client = redis.Redis.from_url(kit.url)
        client.xadd(log.log_key, {"junk": "no subject, no data"}, id="1-1")
        client.xadd(log.log_key, {"subject": f"{stream}.x", "data": "not ours"}, id="1-2")
        client.close()
    else:
        # A JetStream publish waits for the server's stored ack, so the garbage is
        # numbered before the test's next append (a core publish may land after it).
        nc = await nats.connect(kit.url)
        await nc.jetstream().publish(f"{stream}.booth.1.visitor.2", b"\xff\x00 not an envelope")
        await nc.close()


async def test_redis_appends_refuse_a_foreign_entry_beyond_the_next_offset(
    redis_url: str,
) -> None:
    kit = Kit("redis", redis_url)
    try:
        log = kit.make().log(new_stream())
        await log.append(events(log.name, ["a"]))
        client = redis.Redis.from_url(redis_url)
        client.xadd(log.log_key, {"subject": "x", "data": "y"})  # a time-based id, far ahead
        client.close()
        assert offsets(await log.read(0, 10)) == [1]
        with pytest.raises(StreamLost, match="did not write"):
            await log.append(events(log.name, ["b"]))
        assert (await log.head()).last == 1
    finally:
        await kit.tidy()


# NATS: republish and durable consumers


async def test_visitor_events_are_republished_on_core_nats(nats_url: str) -> None:
    kit = Kit("nats", nats_url)
    try:
        backend = kit.make()
        assert backend.republish == VISITOR_REPUBLISH
        stream = new_stream()
        market = stream.split(".")[1]
        nc = await nats.connect(nats_url)
        sub = await nc.subscribe(f"live.market.{market}.visitor.42.>")
        await nc.flush()
        await backend.log(stream).append(
            [(f"{stream}.ops.summary", b"not a visitor event", "a")]
            + [(f"{stream}.booth.3.visitor.42", b"entered booth 3", "b")]
        )
        msg = await sub.next_msg(timeout=5)
        assert (msg.subject, msg.data) == (
            f"live.market.{market}.visitor.42.booth.3",
            b"entered booth 3",
        )
        assert msg.headers and msg.headers["Nats-Sequence"] == "2"
        await nc.close()
    finally:
        await kit.tidy()


async def test_a_durable_resumes_after_its_last_ack_on_reconnect(nats_url: str) -> None:
    kit = Kit("nats", nats_url)
    try:
        stream = new_stream()
        log = kit.make().log(stream)
        await log.append(events(stream, [str(i) for i in range(10)]))
        assert await log.durable_position("relay") == 0
        assert [e.offset for e in await log.durable_read("relay", 10)] == list(range(1, 11))
        await log.durable_ack("relay", 6)
        await kit.made[0].close()

        log = kit.make().log(stream)
        assert await log.durable_position("relay") == 6
        assert [e.offset for e in await log.durable_read("relay", 10)] == [7, 8, 9, 10]
        await log.durable_ack("relay", 10)
        assert await log.durable_read("relay", 10, timeout_s=0.3) == []
        assert await log.durable_position("relay") == 10
    finally:
        await kit.tidy()


# Restarts of servers of the tests' own


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_binary(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/local/sbin:/sbin")
    if found is None:
        pytest.fail(f"{name} is not installed (Debian package {name}; see .ci/apt-packages.txt)")
    return found


def wait_for_port(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        assert process.poll() is None, f"the server on port {port} exited: {process.returncode}"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"no server answered on port {port}")


class OwnServer:
    """A server process of this test's own, killed and started again on one port."""

    def __init__(self, command: list[str], port: int) -> None:
        self.command, self.port = command, port
        self.process = self._start()

    def _start(self) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(
            self.command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_for_port(self.port, process)
        return process

    def restart(self) -> None:
        """SIGKILL, as a crash would: nothing is flushed on the way down."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)
        self.process = self._start()

    def stop(self) -> None:
        self.process.kill()
        self.process.wait(10)


@pytest.fixture
def own_redis(tmp_path: Path) -> Any:
    port = free_port()
    server = OwnServer(
        [server_binary("redis-server"), "--port", str(port), "--bind", "127.0.0.1"]
        + ["--save", "", "--appendonly", "no", "--dir", str(tmp_path)],
        port,
    )
    yield server
    server.stop()


@pytest.fixture
def own_nats(tmp_path: Path) -> Any:
    port = free_port()
    server = OwnServer(
        [server_binary("nats-server"), "-js", "-a", "127.0.0.1", "-p", str(port)]
        + ["-sd", str(tmp_path)],
        port,
    )
    yield server
    server.stop()


async def test_redis_without_persistence_restarted_gives_a_new_epoch(own_redis: OwnServer) -> None:
    kit = Kit("redis", f"redis://127.0.0.1:{own_redis.port}/0")
    backend, stream = kit.make(), new_stream()
    log = backend.log(stream)
    assert await log.append(events(stream, ["a", "b", "c"])) == [1, 2, 3]
    before = await log.head()
    own_redis.restart()
    after = await retry_lost(log.head)
    assert after.epoch != before.epoch and (after.first, after.last) == (1, 0)
    assert await log.append(events(stream, ["c", "d"])) == [1, 2]
    await backend.close()


async def test_redis_restored_from_a_snapshot_gives_a_new_epoch(own_redis: OwnServer) -> None:
    """A snapshot older than the last appends brings back an older counter: new epoch."""
    url = f"redis://127.0.0.1:{own_redis.port}/0"
    kit = Kit("redis", url)
    backend, stream = kit.make(), new_stream()
    log = backend.log(stream)
    await log.append(events(stream, ["a", "b"]))
    before = await log.head()
    redis.Redis.from_url(url).save()
    await log.append(events(stream, ["c"]))  # given offset 3, then lost with the process
    own_redis.restart()
    after = await retry_lost(log.head)
    assert after.epoch != before.epoch and after.last == 2
    await backend.close()


async def test_nats_with_file_storage_keeps_offsets_and_epoch_across_a_crash(
    own_nats: OwnServer,
) -> None:
    kit = Kit("nats", f"nats://127.0.0.1:{own_nats.port}")
    backend, stream = kit.make(), new_stream()
    log = backend.log(stream)
    assert await log.append(events(stream, [str(i) for i in range(50)])) == list(range(1, 51))
    before = await log.head()
    own_nats.restart()
    assert await retry_lost(log.head) == before
    assert offsets(await log.read(0, 100)) == list(range(1, 51))
    assert await log.append(events(stream, ["49", "50"])) == [50, 51]
    await log.delete()
    renewed = await log.head()
    assert renewed.epoch != before.epoch and (renewed.first, renewed.last) == (1, 0)
    await backend.close()
