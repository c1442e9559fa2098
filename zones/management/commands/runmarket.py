"""`manage.py runmarket`: the whole market in one process."""

import asyncio
from typing import Any

import uvloop
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from market.maps import market_map_layout
from market.models import Market
from market.selectors import market_zone_booths
from market.services import market_demo_ensure, market_sized_ensure
from zones.core.constants import MAX_ZONES
from zones.repartitions import market_thresholds
from zones.serve import DEMO_WALKERS, AddressInUse, MarketPlan, serve_market


class Command(BaseCommand):
    help = (
        "Serve the web app and run the market's zones until SIGINT or SIGTERM: in this"
        " process by default, as supervised zone worker processes when REDIS_URL is set."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
        parser.add_argument("--port", type=int, default=8000, help="port to listen on")
        parser.add_argument(
            "--walkers",
            type=int,
            default=DEMO_WALKERS,
            help=f"simulated visitors walking between booths (default {DEMO_WALKERS})",
        )
        parser.add_argument(
            "--market",
            type=int,
            default=None,
            help="serve this existing market (its id), as a host's orchestrator does, instead"
            " of the first market (the demo market)",
        )
        parser.add_argument(
            "--booths",
            type=int,
            default=None,
            help=f"serve a market of this many generated booths (1 to {MAX_ZONES}), created on"
            " first use, instead of the first market (the demo market)",
        )
        parser.add_argument(
            "--zones-per-worker",
            type=int,
            default=1,
            help="zones each worker process hosts when distributed (default 1)",
        )
        parser.add_argument(
            "--spare-zones",
            type=int,
            default=0,
            help="zones beside the booths' own, serving nothing until a crowded zone splits"
            " its range with one of them; they merge back when it empties (default 0: the"
            " zones never split; booths and spares at most MAX_ZONES)",
        )
        parser.add_argument(
            "--web-processes",
            type=int,
            default=1,
            help="processes serving the web app and the visitors' sockets on the one port, when"
            " distributed (default 1; docs/runbook.md says how many help)",
        )

    def handle(
        self,
        *args: Any,
        host: str,
        port: int,
        walkers: int,
        zones_per_worker: int,
        web_processes: int = 1,
        booths: int | None = None,
        market: int | None = None,
        spare_zones: int = 0,
        **options: Any,
    ) -> None:
        if walkers < 0:
            raise CommandError("--walkers cannot be negative")
        if spare_zones < 0:
            raise CommandError("--spare-zones cannot be negative")
        if zones_per_worker < 1:
            raise CommandError("--zones-per-worker must be at least 1")
        if web_processes < 1:
            raise CommandError("--web-processes must be at least 1")
        if web_processes > 1 and not settings.REDIS_URL:
            raise CommandError(
                "--web-processes above 1 needs REDIS_URL: the web processes share the zones and"
                " the events through Redis, and the embedded market keeps them in one process"
            )
        market = self.market_existing(market, booths) if market is not None else self.market(booths)
        zone_booths = market_zone_booths(market)
        if not 1 <= len(zone_booths) <= MAX_ZONES:
            raise CommandError(
                f"{market.name} has {len(zone_booths)} booths; a market needs 1 to {MAX_ZONES}"
                " (one zone each): add booths in the admin at /admin/market/booth/"
            )
        if spare_zones:
            try:
                market_thresholds()
            except ValueError as error:
                raise CommandError(str(error)) from None
        if len(zone_booths) + spare_zones > MAX_ZONES:
            raise CommandError(
                f"{market.name} has {len(zone_booths)} booths: with --spare-zones"
                f" {spare_zones} it would have {len(zone_booths) + spare_zones} zones, and a"
                f" market has at most {MAX_ZONES}; ask for {MAX_ZONES - len(zone_booths)} or fewer"
            )
        plan = MarketPlan(
            market_id=market.pk,
            identity=str(market.identity),
            booths=tuple(zone_booths),
            walkers=walkers,
            distributed=bool(settings.REDIS_URL),
            zones_per_worker=zones_per_worker,
            web_processes=web_processes,
            layout=market_map_layout(market),
            spares=spare_zones,
        )
        mode = (
            f"{len(plan.groups())} zone worker processes on Redis,"
            f" {plan.web_processes} web process{'es' if plan.web_processes > 1 else ''}"
            if plan.distributed
            else "zones in this process"
        )
        spares = f", {spare_zones} spare zones to split crowded ones" if spare_zones else ""
        self.announce(
            f"{market.name} (market {market.pk}): {len(zone_booths)} booths, one zone each"
            f"{spares}; {mode}"
        )
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            try:
                runner.run(serve_market(host=host, port=port, announce=self.announce, plan=plan))
            except AddressInUse as error:
                raise CommandError(str(error)) from None

    def market(self, booths: int | None) -> Market:
        """The market to serve: the demo market, or one of `booths` generated booths."""
        if booths is None:
            return market_demo_ensure()
        if not 1 <= booths <= MAX_ZONES:
            raise CommandError(
                f"--booths must be 1 to {MAX_ZONES} (one zone each, at most {MAX_ZONES} zones),"
                f" not {booths}"
            )
        try:
            return market_sized_ensure(booths=booths)
        except ValueError as error:
            raise CommandError(str(error)) from None

    def market_existing(self, market_id: int, booths: int | None) -> Market:
        """The market of id `market_id`, or a CommandError naming the ids there are."""
        if booths is not None:
            raise CommandError("--market and --booths cannot be used together: pick one market")
        market = Market.objects.filter(pk=market_id).first()
        if market is not None:
            return market
        ids = list(Market.objects.order_by("id").values_list("id", flat=True))
        there = (
            f"the markets are {', '.join(str(i) for i in ids)}"
            if ids
            else "there are no markets yet"
        )
        raise CommandError(
            f"--market {market_id}: there is no such market; {there}"
            " (manage.py market_generate creates one)"
        )

    def announce(self, line: str) -> None:
        self.stdout.write(line)
        self.stdout.flush()
