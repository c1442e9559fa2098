"""`manage.py runhost --markets 1,2`: several markets on this host, one process each."""

import asyncio
import logging
import os
import sys
from pathlib import Path
from typing import Any

import uvloop
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connections

from host.game import HostGame
from host.orchestrator import Orchestrator
from host.persistence import PersistenceError
from host.secret import HostSecretError, host_secret_load
from host.serve import PortInUse, host_serve, port_bind, ports_free_check
from host.tunables import TunableError, Tunables
from market.maps import MarketGenerateError, market_demo_pair_ensure
from market.models import Market
from zones.serve import DEMO_WALKERS

LOOPBACK = "127.0.0.1"


def market_ids_parse(text: str) -> list[int]:
    """`1,2,5` as [1, 2, 5]; a ValueError naming the part that is not a market id."""
    ids: list[int] = []
    for part in (p.strip() for p in text.split(",")):
        if not part.isdigit() or int(part) < 1:
            raise ValueError(f"--markets takes market ids separated by commas (1,2), not {part!r}")
        if int(part) in ids:
            raise ValueError(f"--markets names market {part} twice")
        ids.append(int(part))
    return ids


def market_exists(market_id: int) -> bool:
    """Whether the database holds the market (the orchestrator reads it, never writes)."""
    try:
        return Market.objects.filter(pk=market_id).exists()
    finally:
        connections.close_all()  # called from a thread: leave no connection open in it


def market_argv(*, market_id: int, port: int, walkers: int) -> list[str]:
    """The command line of a market's process."""
    manage = str(Path(settings.BASE_DIR) / "manage.py")
    return [
        sys.executable,
        manage,
        "runmarket",
        "--market",
        str(market_id),
        "--port",
        str(port),
        "--walkers",
        str(walkers),
    ]


class Command(BaseCommand):
    help = (
        "Run several markets on this host, each in a process of its own supervised by the"
        " orchestrator (restarted when it crashes, quarantined when it keeps crashing), with"
        " the control API on 127.0.0.1 behind the host's secret (docs/host.md)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--markets", help="market ids, e.g. 1,2")
        parser.add_argument(
            "--demo",
            action="store_true",
            help="run two generated markets linked by portals, North Market and South Market,"
            " created on first use (instead of --markets)",
        )
        parser.add_argument(
            "--default-market",
            type=int,
            help="where visitors go when a transfer fails (default: the first of --markets)",
        )
        parser.add_argument(
            "--base-port",
            type=int,
            default=8001,
            help="the first market's port; the next"
            " market takes the next port, and so on (default 8001)",
        )
        parser.add_argument(
            "--control-port",
            type=int,
            default=None,
            help="the control API's port on 127.0.0.1 (default FABRIC_HOST_CONTROL_PORT, 9100)",
        )
        parser.add_argument(
            "--walkers",
            type=int,
            default=DEMO_WALKERS,
            help=f"simulated visitors per market (default {DEMO_WALKERS})",
        )
        parser.add_argument(
            "--lazy",
            action="store_true",
            help="start only the default market; the others"
            " start on their first POST /markets/<id>/start or transfer",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            tunables = Tunables.from_environment()
        except TunableError as error:
            raise CommandError(str(error)) from None
        if options["demo"] == bool(options["markets"]):
            raise CommandError("give --markets 1,2 (market ids) or --demo, one of them")
        if options["demo"]:
            call_command("migrate", interactive=False, verbosity=0)
            try:
                pair = market_demo_pair_ensure()
            except MarketGenerateError as error:
                raise CommandError(str(error)) from None
            options["markets"] = ",".join(str(market.pk) for market in pair)
        market_ids, default, ports, control_port = self.plan(options, tunables)
        walkers = options["walkers"]
        try:
            secret, secret_file = host_secret_load(env=os.environ, data_dir=settings.DATA_DIR)
        except HostSecretError as error:
            raise CommandError(str(error)) from None
        # Once, before any market starts: two markets migrating the same SQLite file at
        # once would trip over each other.
        call_command("migrate", interactive=False, verbosity=0)
        names = self.markets_check(market_ids)
        connections.close_all()  # the markets write the database; this process no longer does
        try:
            ports_free_check(LOOPBACK, ports.values())
            control_socket = port_bind(LOOPBACK, control_port)
        except PortInUse as error:
            raise CommandError(str(error)) from None
        control_url = f"http://{LOOPBACK}:{control_port}"
        orchestrator = Orchestrator(
            markets=ports,
            launcher=lambda market_id, port: market_argv(
                market_id=market_id, port=port, walkers=walkers
            ),
            secret=secret,
            control_url=control_url,
            tunables=tunables,
            default_market=default,
            market_exists=market_exists,
            reserved_ports=[control_port],
        )
        try:
            game = HostGame.open(
                url=os.environ.get("FABRIC_HOST_DATABASE_URL") or None,
                data_dir=Path(settings.DATA_DIR),
                orchestrator=orchestrator,
                tunables=tunables,
            )
        except PersistenceError as error:
            control_socket.close()
            raise CommandError(f"cannot open the host's game store: {error}") from None
        self.announce(f"Fabric host: {len(market_ids)} markets, default market {default}")
        for market_id in market_ids:
            url = orchestrator.market_url(market_id)
            self.announce(f"  market {market_id} ({names[market_id]}): {url}")
        shown = f"$(cat {secret_file})" if secret_file else "$FABRIC_HOST_SECRET"
        self.announce(f"Control API: {control_url}")
        self.announce(f'  curl -H "X-Fabric-Host-Secret: {shown}" {control_url}/health')
        _host_logging()
        start = [default] if options["lazy"] else market_ids
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(
                host_serve(
                    orchestrator=orchestrator,
                    control_socket=control_socket,
                    secret=secret,
                    start=start,
                    routes=[game.routes_add],
                    background=[game.run],
                )
            )
        self.announce("Fabric host stopped")

    def plan(
        self, options: dict[str, Any], tunables: Tunables
    ) -> tuple[list[int], int, dict[int, int], int]:
        """The market ids, the default market, each market's port and the control port."""
        try:
            market_ids = market_ids_parse(options["markets"])
        except ValueError as error:
            raise CommandError(str(error)) from None
        default = options["default_market"] or market_ids[0]
        if default not in market_ids:
            raise CommandError(
                f"--default-market {default} is not one of --markets {options['markets']}"
            )
        if options["walkers"] < 0:
            raise CommandError("--walkers cannot be negative")
        base = options["base_port"]
        if not 1 <= base <= 65_535 - len(market_ids) + 1:
            raise CommandError(
                f"--base-port must leave a port for each of {len(market_ids)} markets"
                f" (1 to {65_535 - len(market_ids) + 1}), not {base}"
            )
        ports = {market_id: base + i for i, market_id in enumerate(market_ids)}
        control_port = options["control_port"] or tunables.control_port
        if not 1 <= control_port <= 65_535:
            raise CommandError(f"--control-port must be 1 to 65535, not {control_port}")
        if control_port in ports.values():
            raise CommandError(f"--control-port {control_port} is also a market's port")
        return market_ids, default, ports, control_port

    def markets_check(self, market_ids: list[int]) -> dict[int, str]:
        """Each market's name, or a CommandError naming the ids that do not exist."""
        names = dict(Market.objects.filter(pk__in=market_ids).values_list("id", "name"))
        missing = [m for m in market_ids if m not in names]
        if missing:
            known = list(Market.objects.order_by("id").values_list("id", flat=True))
            there = f"the markets are {', '.join(map(str, known))}" if known else "there are none"
            raise CommandError(
                f"--markets: no market {', '.join(map(str, missing))}; {there}"
                " (manage.py market_generate creates one)"
            )
        return names

    def announce(self, line: str) -> None:
        self.stdout.write(line)
        self.stdout.flush()


def _host_logging() -> None:
    """The orchestrator's state changes on the console, as the markets' own lines are."""
    logger = logging.getLogger("host")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
