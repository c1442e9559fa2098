"""Processes killed between commit and publish, and between publish and stamp, lose nothing
and duplicate nothing: real processes, SIGKILLed, on a real Redis Streams backend."""

import asyncio
import signal
import sqlite3
import uuid

from market.events.backends import Retention
from market.events.backends.redis_streams import RedisStreamsBackend
from market.events.envelope import envelope_parse
from market.events.subjects import stream_name
from tests.subprocesses import embedded_environment, run_manage, run_python

MARKET = 6
SETUP = "import django, os, signal; django.setup()\n"
WRITE_THEN_DIE = SETUP + (
    "from django.db import transaction\n"
    "from market.events.publish import event_publish_on_commit\n"
    "from market.events.types import GrantChanged\n"
    "with transaction.atomic():\n"
    "    for user in ('user:1', 'user:2', 'user:3'):\n"
    f"        event_publish_on_commit({MARKET}, GrantChanged(object='namespace:1',"
    " relation='reader', user=user, change='granted'))\n"
    "os.kill(os.getpid(), signal.SIGKILL)  # committed; no relay ran\n"
)
RELAY_THEN_DIE = SETUP + (
    "import asyncio\n"
    "from market.events import outbox\n"
    "outbox.outbox_mark_relayed = lambda offsets: os.kill(os.getpid(), signal.SIGKILL)\n"
    "asyncio.run(outbox.outbox_relay_once())\n"
)
RELAY = SETUP + (
    "import asyncio\n"
    "from market.events.outbox import outbox_relay_once\n"
    "print(asyncio.run(outbox_relay_once()))\n"
)


def stream_ids(redis_url: str, prefix: str) -> list[str]:
    async def read() -> list[str]:
        backend = RedisStreamsBackend(redis_url, Retention(), prefix=prefix)
        try:
            batch = await backend.log(stream_name(MARKET)).read(0, 100)
            return [envelope_parse(e.data).id for e in batch.entries]
        finally:
            await backend.close()

    return asyncio.run(read())


def outbox_rows(data_dir) -> list[tuple[str, int | None]]:
    with sqlite3.connect(data_dir / "fabric.sqlite3") as db:
        return db.execute(
            'SELECT id, "offset" FROM market_outboxevent ORDER BY created_at'
        ).fetchall()


def test_killed_writer_and_killed_relay_leave_every_committed_event_published_once(
    tmp_path, redis_url
):
    prefix = f"outbox{uuid.uuid4().hex[:8]}"
    env = embedded_environment(
        tmp_path,
        REDIS_URL=redis_url,
        FABRIC_CHANNEL_PREFIX=prefix,
        DJANGO_SETTINGS_MODULE="fabric_site.settings",
    )
    assert run_manage("migrate", "--noinput", env=env).returncode == 0

    writer = run_python(WRITE_THEN_DIE, env)
    assert writer.returncode == -signal.SIGKILL, writer.stderr
    committed = [row_id for row_id, _ in outbox_rows(tmp_path)]
    assert len(committed) == 3 and stream_ids(redis_url, prefix) == []

    relay = run_python(RELAY_THEN_DIE, env)
    assert relay.returncode == -signal.SIGKILL, relay.stderr
    assert stream_ids(redis_url, prefix) == committed  # appended, in order…
    assert [offset for _, offset in outbox_rows(tmp_path)] == [None] * 3  # …never stamped

    again = run_python(RELAY, env)
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == "3"  # all three were still pending…
    assert stream_ids(redis_url, prefix) == committed  # …and none was appended twice
    assert outbox_rows(tmp_path) == list(zip(committed, [1, 2, 3], strict=True))
