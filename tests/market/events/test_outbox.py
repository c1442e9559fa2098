"""The outbox: events of database writes reach the stream after commit, exactly once."""

import pytest
from asgiref.sync import sync_to_async
from django.db import transaction

from market.events import outbox
from market.events.envelope import envelope_parse
from market.events.outbox import outbox_relay_once
from market.events.publish import event_publish_on_commit
from market.events.streams import event_log
from market.events.types import GrantChanged
from market.models import OutboxEvent

pytestmark = pytest.mark.django_db(transaction=True)

MARKET = 4


def grant(user: str) -> GrantChanged:
    return GrantChanged(object="namespace:1", relation="reader", user=user, change="granted")


async def stream_ids() -> list[str]:
    batch = await event_log(MARKET).read(0, 100)
    return [envelope_parse(e.data).id for e in batch.entries]


def write(user: str, *, fail: bool = False) -> str:
    with transaction.atomic():
        event_id = event_publish_on_commit(MARKET, grant(user))
        if fail:
            raise RuntimeError("the change failed")
    return event_id


async def test_a_committed_event_is_relayed_once_in_order_and_stamped():
    first = await sync_to_async(write)("user:1")
    second = await sync_to_async(write)("user:2")
    assert await outbox_relay_once() == 2
    assert await stream_ids() == [first, second]
    assert await outbox_relay_once() == 0  # nothing pending: nothing appended again
    rows = await sync_to_async(list)(OutboxEvent.objects.order_by("offset"))
    assert [(r.id, r.offset) for r in rows] == [(first, 1), (second, 2)]
    assert all(r.relayed_at is not None for r in rows)


async def test_a_rolled_back_write_publishes_nothing():
    with pytest.raises(RuntimeError):
        await sync_to_async(write)("user:1", fail=True)
    assert await outbox_relay_once() == 0
    assert await stream_ids() == []


async def test_a_relay_that_dies_after_appending_duplicates_nothing_when_it_runs_again(
    monkeypatch,
):
    event_id = await sync_to_async(write)("user:1")

    def die(offsets):
        raise SystemExit("the relay died before stamping its rows")

    monkeypatch.setattr(outbox, "outbox_mark_relayed", die)
    with pytest.raises(SystemExit):
        await outbox_relay_once()
    monkeypatch.undo()
    assert await outbox_relay_once() == 1  # still pending, so relayed again…
    assert await stream_ids() == [event_id]  # …and the stream kept the first append only


async def test_an_event_committed_while_no_relay_runs_waits_for_the_next_relay():
    event_id = await sync_to_async(write)("user:1")  # the process "crashed" after commit
    assert await stream_ids() == []
    assert await outbox_relay_once() == 1
    assert await stream_ids() == [event_id]


async def test_relayed_rows_are_kept_for_the_configured_time_then_deleted(settings):
    from datetime import timedelta

    from django.utils import timezone

    settings.FABRIC_OUTBOX_KEEP_S = 120.0
    old = await sync_to_async(write)("user:1")
    assert await outbox_relay_once() == 1
    await sync_to_async(OutboxEvent.objects.filter(pk=old).update)(
        relayed_at=timezone.now() - timedelta(seconds=121)
    )
    recent = await sync_to_async(write)("user:2")
    assert await outbox_relay_once() == 1  # stamping deletes what was relayed long enough ago
    kept = await sync_to_async(list)(OutboxEvent.objects.values_list("id", flat=True))
    assert kept == [recent]
    assert await stream_ids() == [old, recent]  # the stream still holds both
