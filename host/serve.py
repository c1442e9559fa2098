"""The host's main job: the control API and the orchestrator, until SIGINT or SIGTERM."""

import asyncio
import logging
import signal
import socket
from collections.abc import Awaitable, Callable, Iterable, Sequence

from host.control import ControlApp, control_server
from host.orchestrator import Orchestrator
from host.orchestrator_routes import orchestrator_routes_add
from zones.serve import AddressInUse, listening_socket

log = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
RouteAdder = Callable[[ControlApp], None]  # registers more routes (transfers, persistence)
Background = Callable[[asyncio.Event], Awaitable[None]]  # runs until the event is set


class PortInUse(Exception):
    """A port the host needs is taken; the message says which."""


def port_bind(host: str, port: int) -> socket.socket:
    """A listening socket on `host`:`port`, kept by this process, or PortInUse naming it."""
    try:
        sock = listening_socket(host, port)
    except AddressInUse as error:
        raise PortInUse(str(error)) from None
    sock.set_inheritable(False)  # the control API's: no market process needs it
    return sock


def ports_free_check(host: str, ports: Iterable[int]) -> None:
    """PortInUse naming the first of `ports` that cannot be listened on now."""
    for port in ports:
        port_bind(host, port).close()


async def host_serve(
    *,
    orchestrator: Orchestrator,
    control_socket: socket.socket,
    secret: str,
    start: Sequence[int],
    routes: Sequence[RouteAdder] = (),
    background: Sequence[Background] = (),
) -> None:
    """Serve the control API, start the markets of `start`, supervise until a stop signal."""
    app = ControlApp(secret=secret)
    orchestrator_routes_add(app, orchestrator)
    for add in routes:
        add(app)
    host, port = control_socket.getsockname()[:2]
    server = control_server(app, host=host, port=port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, stop.set)
    serving = asyncio.create_task(server.serve(sockets=[control_socket]), name="control-api")
    supervising = asyncio.create_task(orchestrator.run(stop), name="orchestrator")
    others = [asyncio.create_task(work(stop)) for work in background]
    try:
        for market_id in start:
            await orchestrator.ensure_started(market_id)
        await asyncio.wait({serving, supervising}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stop.set()
        await supervising  # stops every market process
        server.should_exit = True
        await serving  # no request reaches the store once the game closes it
        await asyncio.gather(*others)
        for sig in STOP_SIGNALS:
            loop.remove_signal_handler(sig)
