"""`manage.py zoneworker --market ID --zones 0,1`: host zones in this process on the channel layer.

The supervisor of `runmarket` starts these when REDIS_URL is set, with `--parent`
so that they stop when it is gone. Run one by hand (without `--parent`) to host
zones on another machine: it keeps running whoever started it. Where no
`runmarket` runs, `--outbox-relay` has it also bring events of database writes
to the market's stream, which `runmarket` does otherwise (docs/runbook.md, "A
market on several machines"). It ends with exit code 0 on SIGTERM or SIGINT,
after writing a last snapshot of each zone.
"""

import asyncio
import signal
from typing import Any

import uvloop
from django.core.management.base import BaseCommand, CommandError, CommandParser

from fabric_site.collector import collector_settle
from market.events.outbox import outbox_relay_forever
from market.maps import market_map_layout
from market.models import Market
from market.selectors import market_zone_booths
from zones.parent import parent_gone
from zones.serve import snapshot_dir
from zones.snapshots import ZoneLocked
from zones.worker import ZoneWorker


class Command(BaseCommand):
    help = "Run zones of a market in this process until SIGINT or SIGTERM."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--market", type=int, required=True, help="market id")
        parser.add_argument("--zones", required=True, help="comma-separated zone indexes, e.g. 0,1")
        parser.add_argument("--walkers", type=int, default=0, help="demo walkers in the market")
        parser.add_argument(
            "--spares",
            type=int,
            default=0,
            help="spare zones of the market, numbered after its booths' zones (default 0)",
        )
        parser.add_argument(
            "--parent",
            type=int,
            default=None,
            help="stop as soon as the process with this pid is no longer our parent"
            " (the supervisor passes its own pid)",
        )
        parser.add_argument(
            "--outbox-relay",
            action="store_true",
            help="also append events of database writes from the outbox to their market's"
            " stream, for hosts where no runmarket does; several relays may run, appends are"
            " idempotent",
        )

    def handle(
        self,
        *args: Any,
        market: int,
        zones: str,
        walkers: int,
        spares: int,
        parent: int | None,
        outbox_relay: bool,
        **options: Any,
    ) -> None:
        try:
            wanted = [int(z) for z in zones.split(",") if z.strip()]
        except ValueError:
            raise CommandError(f"--zones must be comma-separated integers, not {zones!r}") from None
        record = Market.objects.filter(pk=market).first()
        if record is None:
            raise CommandError(f"there is no market {market}")
        booths = market_zone_booths(record)
        try:
            worker = ZoneWorker(
                market_id=market,
                zones=wanted,
                booths=booths,
                data_dir=snapshot_dir(market, str(record.identity)),
                walkers=walkers,
                layout=market_map_layout(record),
                spares=spares,
            )
        except (ValueError, ZoneLocked) as exc:
            raise CommandError(str(exc)) from exc
        relaying = "; relaying the outbox" if outbox_relay else ""
        self.stdout.write(f"zone worker for {record.name}: zones {wanted}{relaying}")
        self.stdout.flush()
        collector_settle()  # the zones' state is loaded: out of the full collections' reach
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(self._run(worker, parent, outbox_relay))

    async def _run(self, worker: ZoneWorker, parent: int | None, outbox_relay: bool) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        helpers = []
        if parent:
            helpers.append(asyncio.create_task(self._watch_parent(parent, stop)))
        if outbox_relay:
            helpers.append(asyncio.create_task(outbox_relay_forever(), name="outbox-relay"))
        try:
            await worker.run(stop)
        finally:
            for task in helpers:
                task.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)

    async def _watch_parent(self, parent: int, stop: asyncio.Event) -> None:
        await parent_gone(parent)
        self.stderr.write(f"parent process {parent} is gone; stopping")
        stop.set()
