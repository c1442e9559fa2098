"""`manage.py runmarket`: the whole market in one process."""

import asyncio
from typing import Any

import uvloop
from django.core.management.base import BaseCommand, CommandError, CommandParser

from market.selectors import market_zone_booths
from market.services import market_demo_ensure
from zones.core.constants import MAX_ZONES
from zones.serve import serve_market


class Command(BaseCommand):
    help = "Serve the web app and run the market's zones in this process until SIGINT or SIGTERM."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
        parser.add_argument("--port", type=int, default=8000, help="port to listen on")

    def handle(self, *args: Any, host: str, port: int, **options: Any) -> None:
        market = market_demo_ensure()
        booths = market_zone_booths(market)
        if not 1 <= len(booths) <= MAX_ZONES:
            raise CommandError(
                f"{market.name} has {len(booths)} booths; a market needs 1 to {MAX_ZONES}"
                " (one zone each): add booths in the admin at /admin/market/booth/"
            )
        self.announce(f"{market.name}: {len(booths)} booths, one zone each")
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(serve_market(host=host, port=port, announce=self.announce, booths=booths))

    def announce(self, line: str) -> None:
        self.stdout.write(line)
        self.stdout.flush()
