"""`manage.py zoneworker --market ID --zones 0,1`: host zones in this process on the channel layer.

The supervisor of `runmarket` starts these when REDIS_URL is set; run one by
hand to host zones on another machine. It ends with exit code 0 on SIGTERM or
SIGINT, after writing a last snapshot of each zone.
"""

import asyncio
import os
import signal
from typing import Any

import uvloop
from django.core.management.base import BaseCommand, CommandError, CommandParser

from market.models import Market
from market.selectors import market_zone_booths
from zones.serve import snapshot_dir
from zones.snapshots import ZoneLocked
from zones.worker import ZoneWorker

PARENT_CHECK_S = 0.5


class Command(BaseCommand):
    help = "Run zones of a market in this process until SIGINT or SIGTERM."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--market", type=int, required=True, help="market id")
        parser.add_argument("--zones", required=True, help="comma-separated zone indexes, e.g. 0,1")
        parser.add_argument("--walkers", type=int, default=0, help="demo walkers in the market")
        parser.add_argument(
            "--parent",
            type=int,
            default=None,
            help="stop as soon as the process with this pid is no longer our parent"
            " (the supervisor passes its own pid)",
        )

    def handle(
        self,
        *args: Any,
        market: int,
        zones: str,
        walkers: int,
        parent: int | None,
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
                data_dir=snapshot_dir(market),
                walkers=walkers,
            )
        except (ValueError, ZoneLocked) as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"zone worker for {record.name}: zones {wanted}")
        self.stdout.flush()
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(self._run(worker, parent))

    async def _run(self, worker: ZoneWorker, parent: int | None) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        watcher = asyncio.create_task(self._watch_parent(parent, stop)) if parent else None
        try:
            await worker.run(stop)
        finally:
            if watcher is not None:
                watcher.cancel()

    async def _watch_parent(self, parent: int, stop: asyncio.Event) -> None:
        """A supervisor killed outright cannot stop its workers: they notice and stop."""
        while os.getppid() == parent:
            await asyncio.sleep(PARENT_CHECK_S)
        self.stderr.write(f"parent process {parent} is gone; stopping")
        stop.set()
