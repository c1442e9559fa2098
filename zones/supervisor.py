"""The supervisor: keeps the zone worker processes of a distributed market running.

It starts one worker process per group of zones and watches them. A worker
that exits on its own is restarted after a backoff that doubles with each
crash in a row (0.5 s up to 10 s, reset after a minute of health). A worker
that crashes more than CRASH_LIMIT times within CRASH_WINDOW_S is quarantined
for QUARANTINE_S: it is not restarted, and the supervisor answers for its
zones meanwhile, refusing joins and migrations with the reason "quarantined"
so that no peer waits on silence. The health of every zone it restarts or
quarantines is published as a `zone_health` market event, so operators see it.
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from market.events.publish import event_publish_or_count
from market.events.types import ZoneHealthChanged
from zones.channels import (
    cancel_and_wait,
    layer_required,
    receive_forever,
    unbundled,
    zone_channel,
)
from zones.core.messages import Intent, Nack, message_from_wire, message_to_wire, replies
from zones.core.wire import SPAWN_DTYPE, ReplyReason, from_bytes
from zones.parent import children_stop
from zones.restarts import CrashRecord, RestartPolicy

log = logging.getLogger(__name__)

BACKOFF_FIRST_S = 0.5
BACKOFF_MAX_S = 10.0
HEALTHY_AFTER_S = 60.0  # a worker up this long has its backoff reset
CRASH_LIMIT = 3  # more crashes than this within the window: quarantine
CRASH_WINDOW_S = 60.0
QUARANTINE_S = 60.0
POLL_S = 0.05

Launcher = Callable[[Sequence[int]], Sequence[str]]  # zones → argv of a worker process


@dataclass
class WorkerSlot:
    """One group of zones and the process running them."""

    zones: tuple[int, ...]
    record: CrashRecord
    process: asyncio.subprocess.Process | None = None
    started_at: float = 0.0
    restart_at: float = 0.0
    stand_in: asyncio.Task[None] | None = None
    starts: int = 0

    @property
    def backoff_s(self) -> float:
        return self.record.backoff_s

    @property
    def quarantined_until(self) -> float:
        return self.record.quarantined_until

    @property
    def state(self) -> str:
        if self.stand_in is not None:
            return "quarantined"
        if self.process is None or self.process.returncode is not None:
            return "restarting"
        return "running"


class Supervisor:
    """Runs and restarts the workers of `groups` (each a tuple of zone indexes)."""

    def __init__(
        self,
        *,
        market_id: int,
        booths: Sequence[tuple[str, str]],
        groups: Sequence[Sequence[int]],
        launcher: Launcher,
        env: dict[str, str] | None = None,
        quarantine_s: float = QUARANTINE_S,
        backoff_first_s: float = BACKOFF_FIRST_S,
    ) -> None:
        self.market_id = market_id
        self.booths = tuple(booths)
        policy = RestartPolicy(
            backoff_first_s=backoff_first_s,
            backoff_max_s=BACKOFF_MAX_S,
            healthy_after_s=HEALTHY_AFTER_S,
            crash_limit=CRASH_LIMIT,
            crash_window_s=CRASH_WINDOW_S,
            quarantine_s=quarantine_s,
        )
        self.slots = [WorkerSlot(zones=tuple(g), record=CrashRecord(policy)) for g in groups]
        self.launcher = launcher
        self.env = env
        self.quarantine_s = quarantine_s
        self.layer = layer_required()

    async def run(self, stop: asyncio.Event) -> None:
        """Start every worker, keep them up until `stop`, then stop them all."""
        try:
            for slot in self.slots:
                await self._start(slot)
            while not stop.is_set():
                for slot in self.slots:
                    await self._watch(slot)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), POLL_S)
        finally:
            await self._stop_all()

    def pids(self) -> dict[tuple[int, ...], int | None]:
        """Process id of each group's worker (None while it is down)."""
        return {
            s.zones: s.process.pid if s.process and s.process.returncode is None else None
            for s in self.slots
        }

    async def _start(self, slot: WorkerSlot) -> None:
        argv = list(self.launcher(slot.zones))
        slot.process = await asyncio.create_subprocess_exec(*argv, env=self.env)
        slot.started_at = time.monotonic()
        slot.starts += 1
        log.info("zones %s: worker started (pid %d)", slot.zones, slot.process.pid)
        if slot.starts > 1:
            await self._report(slot, "restarting")  # until its first summary says otherwise

    async def _watch(self, slot: WorkerSlot) -> None:
        now = time.monotonic()
        if slot.stand_in is not None:
            if not slot.record.quarantined(now=now):
                log.warning("zones %s: quarantine over; starting the worker again", slot.zones)
                slot.stand_in.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await slot.stand_in
                slot.stand_in = None
                slot.record.quarantine_end()
                await self._start(slot)
            return
        process = slot.process
        if process is not None and process.returncode is None:
            slot.record.uptime_note(up_s=now - slot.started_at)
            return
        if process is not None:  # it just exited on its own: a crash
            code = process.returncode
            slot.process = None
            delay = slot.record.crash_note(now=now)
            if delay is None:
                slot.stand_in = asyncio.create_task(self._stand_in(slot))
                log.error(
                    "zones %s: %d crashes within %.0f s (last exit %s); quarantined for %.0f s",
                    slot.zones,
                    len(slot.record.crashes),
                    CRASH_WINDOW_S,
                    code,
                    self.quarantine_s,
                )
                await self._report(slot, "quarantined")
                return
            slot.restart_at = now + delay
            log.warning(
                "zones %s: worker exited with %s; restarting in %.1f s", slot.zones, code, delay
            )
            await self._report(slot, "restarting")
        if now >= slot.restart_at:
            await self._start(slot)

    async def _report(self, slot: WorkerSlot, health: str) -> None:
        """Publish the zones' health, with when their worker starts again: operators and
        the visitors standing in those zones read it (docs/protocol.md)."""
        now = time.monotonic()
        wait, left = max(0.0, slot.restart_at - now), max(0.0, slot.quarantined_until - now)
        reasons = {
            "restarting": f"the worker exited; it starts again in {wait:.1f} s"
            if wait
            else "the worker exited; it is starting again",
            "quarantined": f"more than {CRASH_LIMIT} crashes within {CRASH_WINDOW_S:.0f} s;"
            f" its worker starts again in {left:.0f} s",
        }
        await event_publish_or_count(
            self.market_id,
            ZoneHealthChanged(zones=list(slot.zones), health=health, reason=reasons[health]),
        )

    async def _stand_in(self, slot: WorkerSlot) -> None:
        """Answer for quarantined zones: refuse joins and migrations, with the reason."""
        receivers = [asyncio.create_task(self._answer_for(z)) for z in slot.zones]
        try:
            while True:
                await asyncio.sleep(1.0)
                await self._report(slot, "quarantined")
        finally:
            await cancel_and_wait(receivers)

    async def _answer_for(self, zone: int) -> None:
        async def answer(message: dict[str, Any]) -> None:
            try:
                for one in unbundled(message):
                    await self._refuse(zone, one)
            except Exception as exc:  # a malformed message is not the stand-in's problem
                log.warning(
                    "zone %d stand-in: ignored a %r message: %s", zone, message.get("type"), exc
                )

        await receive_forever(self.layer, zone_channel(self.market_id, zone), answer)

    async def _refuse(self, zone: int, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "zone.spawn":
            ids = from_bytes(message["rows"], SPAWN_DTYPE, "spawn")["id"]
            await self.layer.send(
                message["gateway"],
                {
                    "type": "zone.spawned",
                    "zone": zone,
                    "spawned": b"",
                    "refused": ids.astype("<u8").tobytes(),
                    "reason": "quarantined",
                },
            )
        elif kind == Intent.type:
            intent = message_from_wire(message)
            assert isinstance(intent, Intent)
            rows = intent.rows
            nack = Nack(
                src=zone,
                dst=intent.src,
                hlc=intent.hlc,
                replies=replies(
                    rows["id"], rows["epoch"], np.full(rows.size, ReplyReason.QUARANTINED)
                ),
            )
            await self.layer.send(zone_channel(self.market_id, intent.src), message_to_wire(nack))

    async def _stop_all(self) -> None:
        for slot in self.slots:
            if slot.stand_in is not None:
                slot.stand_in.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await slot.stand_in
        await children_stop([s.process for s in self.slots if s.process], "worker", log)
