"""One process serving the whole market: the ASGI app under uvicorn, the zones beside it."""

import asyncio
import signal
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import uvicorn
from django.conf import settings

from chunks.periodic import collect_garbage_periodically
from market.services import DEMO_BOOTHS
from zones.runtime import EmbeddedMarket, run_embedded_zones

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


async def serve_market(
    *,
    host: str,
    port: int,
    announce: Callable[[str], None],
    booths: Sequence[tuple[str, str]] = DEMO_BOOTHS,
) -> None:
    """Serve the web app and run one zone per booth until SIGINT or SIGTERM, then stop both."""
    stop = asyncio.Event()
    config = uvicorn.Config(ASGI_APP, host=host, port=port, lifespan="off", log_level="info")
    server = MarketServer(config)

    def request_stop() -> None:
        if stop.is_set():
            server.force_exit = True  # a second signal: do not wait for open connections
        stop.set()
        server.should_exit = True

    loop = asyncio.get_running_loop()
    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, request_stop)
    market = EmbeddedMarket(booths=tuple(booths))
    zones = asyncio.create_task(run_embedded_zones(stop, market), name="embedded-zones")
    # Zones that end on their own (a crash) take the server down with them.
    zones.add_done_callback(lambda _: request_stop())
    background = []
    if settings.CELERY_TASK_ALWAYS_EAGER:  # no beat process: the main job schedules it
        background.append(
            asyncio.create_task(
                collect_garbage_periodically(stop, settings.CHUNK_GC_INTERVAL_SECONDS),
                name="chunk-garbage",
            )
        )
    announcer = asyncio.create_task(
        _announce_once_started(server, market_url(host, port), announce)
    )
    try:
        await server.serve()
    finally:
        stop.set()
        announcer.cancel()
        for task in background:
            await task
        for sig in STOP_SIGNALS:
            loop.remove_signal_handler(sig)
        await zones  # re-raises whatever ended the zones early


async def _announce_once_started(
    server: uvicorn.Server, url: str, announce: Callable[[str], None]
) -> None:
    while not server.started:
        await asyncio.sleep(0.05)
    announce(f"Fabric Market is serving at {url}")
