"""The main job: the ASGI app under uvicorn, and the market's zones.

Embedded (no REDIS_URL): one zone worker hosting every zone runs as a task of
this process, on the in-memory channel layer. Distributed (REDIS_URL set): the
supervisor runs the zone workers as separate processes on the Redis layer and
restarts them when they crash; this process serves the web app and relays the
zones to visitors.
"""

import asyncio
import copy
import logging
import os
import re
import signal
import socket
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn
from django.conf import settings

from chunks.periodic import collect_garbage_periodically
from host.market_link import market_link_start, market_stats
from host.tunables import Tunables
from market.booth_visitors import presence_writer
from market.character_snapshots import character_snapshots_forever
from market.events.outbox import outbox_relay_forever
from market.live import LiveMarket, live_market_set, portal_regions
from zones.contribute import fallback_start
from zones.core.ranges import floor_ranges
from zones.snapshots import market_state_dir
from zones.supervisor import Supervisor
from zones.web_limits import uvicorn_options
from zones.webprocs import WebProcesses
from zones.worker import ZoneWorker

ASGI_APP = "fabric_site.asgi:application"
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class MarketServer(uvicorn.Server):
    """A uvicorn server that leaves signal handling to `serve_market`."""

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        # uvicorn's own handlers re-raise the signal once it has shut down, which would turn
        # a clean SIGTERM into a killed process; serve_market stops everything instead.
        yield


def market_url(host: str, port: int) -> str:
    """The address a browser opens for this host and port."""
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


DEMO_WALKERS = 300
TICKET_IN_QUERY = re.compile(r"(ticket=)[^&\s\"']+")


class RedactTickets(logging.Filter):
    """Keeps join tickets out of the server's log: uvicorn logs every socket's full URL."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                TICKET_IN_QUERY.sub(r"\1[redacted]", a) if isinstance(a, str) else a
                for a in record.args
            )
        return True


def log_config() -> dict[str, Any]:
    """uvicorn's own logging setup, with tickets redacted on every handler."""
    config = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    config.setdefault("filters", {})["redact_tickets"] = {"()": RedactTickets}
    for handler in config["handlers"].values():
        handler.setdefault("filters", []).append("redact_tickets")
    return config


@dataclass(frozen=True)
class MarketPlan:
    """What the main job runs: which market, its booths, and how its zones are hosted."""

    market_id: int
    booths: tuple[tuple[str, str], ...]
    walkers: int = DEMO_WALKERS
    distributed: bool = False
    zones_per_worker: int = 1
    identity: str = ""  # the market's identity (Market.identity): keys its zones' state on disk
    web_processes: int = 1  # more than one only when distributed (zones/webprocs.py)
    layout: dict[str, Any] | None = None  # a generated market's layout (NPCs' items)
    spares: int = 0  # zones beside the booths', for splits (zones/repartitions.py)

    def live(self) -> LiveMarket:
        starts = tuple(int(s) for s in floor_ranges(len(self.booths)).starts)
        return LiveMarket(
            market_id=self.market_id,
            booths=self.booths,
            starts=starts,
            portals=portal_regions(self.layout),
            spares=self.spares,
        )

    @property
    def zones(self) -> int:
        """The booths' zones and the spares."""
        return len(self.booths) + self.spares

    def groups(self) -> list[list[int]]:
        zones = list(range(self.zones))
        step = max(1, self.zones_per_worker)
        return [zones[i : i + step] for i in range(0, len(zones), step)]


MARKET_ID_VARIABLE = "FABRIC_MARKET_ID"
SPARES_VARIABLE = "FABRIC_SPARE_ZONES"  # the market's spare zones, for web processes


def live_market_from_environment() -> LiveMarket | None:
    """The live market named by FABRIC_MARKET_ID, for web processes started on their own.

    `daphne fabric_site.asgi:application` or `uvicorn fabric_site.asgi:application` with
    REDIS_URL and FABRIC_MARKET_ID set serve visitors of a market whose zones run in
    zone workers elsewhere; without the variable a web process serves no visitors.
    """
    value = os.environ.get(MARKET_ID_VARIABLE, "")
    if not value:
        return None
    from market.maps import market_map_layout
    from market.models import Market  # the ORM is ready once the ASGI module has set Django up
    from market.selectors import market_zone_booths

    market = Market.objects.filter(pk=int(value)).first()
    if market is None:
        raise RuntimeError(f"{MARKET_ID_VARIABLE}={value}: there is no such market")
    booths = tuple(market_zone_booths(market))
    spares = int(os.environ.get(SPARES_VARIABLE) or 0)
    return MarketPlan(
        market_id=market.pk, booths=booths, layout=market_map_layout(market), spares=spares
    ).live()


def snapshot_dir(market_id: int, identity: str) -> Path:
    """Where the zones of a market keep their snapshots and input logs.

    Named by the market's identity as well as its id: an embedded run (SQLite) and a
    distributed one (PostgreSQL) both have a market 1, and neither may resume the
    other's zones.
    """
    return market_state_dir(Path(settings.DATA_DIR) / "zones", market_id, identity)


def worker_argv(plan: MarketPlan, zones: Sequence[int]) -> list[str]:
    """The command line of a zone worker process for `zones`."""
    return [
        sys.executable,
        str(Path(settings.BASE_DIR) / "manage.py"),
        "zoneworker",
        "--market",
        str(plan.market_id),
        "--zones",
        ",".join(str(z) for z in zones),
        "--walkers",
        str(plan.walkers),
        "--spares",
        str(plan.spares),
        "--parent",
        str(os.getpid()),
    ]


def zones_task(plan: MarketPlan, stop: asyncio.Event) -> asyncio.Task[None]:
    """The task that runs the plan's zones: in this process, or as supervised workers."""
    if plan.distributed:
        supervisor = Supervisor(
            market_id=plan.market_id,
            booths=plan.booths,
            groups=plan.groups(),
            launcher=lambda zones: worker_argv(plan, zones),
        )
        return asyncio.create_task(supervisor.run(stop), name="zone-supervisor")
    worker = ZoneWorker(
        market_id=plan.market_id,
        zones=range(plan.zones),
        booths=plan.booths,
        data_dir=snapshot_dir(plan.market_id, plan.identity),
        walkers=plan.walkers,
        layout=plan.layout,
        spares=plan.spares,
    )
    return asyncio.create_task(worker.run(stop), name="embedded-zones")


def web_config() -> uvicorn.Config:
    """The uvicorn settings of every web process of the market (the main job's and its helpers')."""
    return uvicorn.Config(
        ASGI_APP,
        lifespan="off",
        log_level="info",
        log_config=log_config(),
        # The cheapest websocket implementation per frame measured here (13 µs against 17–18
        # for wsproto and the legacy one, docs/performance.md), named so that no change of
        # uvicorn's "auto" moves the market off it; frames are small binary rows that do not
        # compress, so per-message deflate would only cost every browser's socket CPU.
        ws="websockets-sansio",
        ws_per_message_deflate=False,
        # Header and idle deadlines, connection caps, the websocket message size.
        **uvicorn_options(),
    )


LISTEN_BACKLOG = 2048  # connections the kernel queues before a web process accepts them


class AddressInUse(Exception):
    """The market's address could not be bound; the message says which and why."""


def listening_socket(host: str, port: int) -> socket.socket:
    """The market's listening socket, bound once here and shared by every web process.

    The web processes accept from this one socket (each is handed its descriptor), so
    the kernel gives each new connection to whichever process asks first: a busy process
    takes fewer, and no second port or balancer is needed.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        raise AddressInUse(f"cannot listen on {host}:{port}: {error.strerror}") from None
    sock.listen(LISTEN_BACKLOG)
    sock.set_inheritable(True)
    return sock


async def serve_market(
    *,
    host: str,
    port: int,
    announce: Callable[[str], None],
    plan: MarketPlan,
) -> None:
    """Serve the web app and run the market's zones until SIGINT or SIGTERM, then stop both."""
    stop = asyncio.Event()
    listener = listening_socket(host, port)
    server = MarketServer(web_config())

    def request_stop() -> None:
        if stop.is_set():
            server.force_exit = True  # a second signal: do not wait for open connections
        stop.set()
        server.should_exit = True

    loop = asyncio.get_running_loop()
    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, request_stop)
    live_market_set(plan.live())
    fallback_start(plan.market_id, plan.zones)  # NPC decisions from NPC_FALLBACK_URL
    zones = zones_task(plan, stop)
    # Zones that end on their own (a crash) take the server down with them.
    zones.add_done_callback(lambda _: request_stop())
    background = []
    if plan.web_processes > 1:
        helpers = WebProcesses(
            count=plan.web_processes - 1,
            fd=listener.fileno(),
            env={
                **os.environ,
                MARKET_ID_VARIABLE: str(plan.market_id),
                SPARES_VARIABLE: str(plan.spares),
            },
        )
        background.append(asyncio.create_task(helpers.run(stop), name="web-processes"))
    if settings.CELERY_TASK_ALWAYS_EAGER:  # no beat process: the main job schedules it
        background.append(
            asyncio.create_task(
                collect_garbage_periodically(stop, settings.CHUNK_GC_INTERVAL_SECONDS),
                name="chunk-garbage",
            )
        )
    # Events of database writes reach the streams after their commit (docs/events.md).
    relay = asyncio.create_task(outbox_relay_forever(), name="outbox-relay")
    announcer = asyncio.create_task(
        _announce_once_started(server, market_url(host, port), announce)
    )
    # A market started by a host's orchestrator reports to it (None otherwise).
    link = market_link_start(
        started=lambda: bool(server.started),
        stats=lambda: market_stats(zones=len(plan.booths), walkers=plan.walkers),
    )
    snapshots = None
    if link is not None:  # the host keeps where its characters stand
        every_s = Tunables.from_environment().snapshot_push_ms / 1000
        snapshots = asyncio.create_task(
            character_snapshots_forever(plan.live(), every_s), name="character-snapshots"
        )
    try:
        await server.serve(sockets=[listener])
    finally:
        stop.set()
        announcer.cancel()
        relay.cancel()
        if link is not None:
            link.cancel()
        if snapshots is not None:
            snapshots.cancel()
        for task in background:
            await task
        for sig in STOP_SIGNALS:
            loop.remove_signal_handler(sig)
        live_market_set(None)
        await presence_writer().drain()  # booth departures of the sockets just closed
        await zones  # re-raises whatever ended the zones early


async def _announce_once_started(
    server: uvicorn.Server, url: str, announce: Callable[[str], None]
) -> None:
    while not server.started:
        await asyncio.sleep(0.05)
    announce(f"Fabric Market is serving at {url}")
