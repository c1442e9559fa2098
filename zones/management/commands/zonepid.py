"""`manage.py zonepid --market ID --zone N`: the process id of the worker running zone N here.

It names exactly one process, the holder of the zone's lock (zones/snapshots.py), as
the kernel's table of file locks lists it: `kill -9 "$(manage.py zonepid --market 1
--zone 1)"` ends that worker and nothing else, where `pkill -f` would end every
matching process on the machine (another market's, a test's). It prints nothing and
exits 1 when no process on this host runs the zone. Run it with the market's
FABRIC_DATA_DIR and database, as the zone worker runs.
"""

import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from market.models import Market
from market.selectors import market_zone_booths
from zones.serve import snapshot_dir
from zones.snapshots import PROC_LOCKS, lock_holder, zone_dir


class Command(BaseCommand):
    help = "Print the process id of the zone worker running one zone of a market on this host."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--market", type=int, required=True, help="market id")
        parser.add_argument("--zone", type=int, required=True, help="zone index, e.g. 1")

    def handle(self, *args: Any, market: int, zone: int, **options: Any) -> None:
        if not PROC_LOCKS.exists():
            raise CommandError(f"{PROC_LOCKS} is missing: zonepid needs Linux's table of locks")
        record = Market.objects.filter(pk=market).first()
        if record is None:
            raise CommandError(f"there is no market {market}")
        zones = len(market_zone_booths(record))
        if not 0 <= zone < zones:
            raise CommandError(f"{record.name} has zones 0 to {zones - 1}, not {zone}")
        directory = zone_dir(snapshot_dir(market, str(record.identity)), zone)
        pid = lock_holder(directory)
        if pid is None:
            self.stderr.write(f"zone {zone} of {record.name} is not running on this host")
            sys.exit(1)
        self.stdout.write(str(pid))
