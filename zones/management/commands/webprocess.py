"""`manage.py webprocess --fd N`: one more web process on the main job's listening socket.

`runmarket --web-processes N` starts N - 1 of these, each holding the descriptor of
the socket it listens on and FABRIC_MARKET_ID naming the market whose visitors it
serves (docs/runbook.md). It is not meant to be started by hand: a web process on a
host of its own is `uvicorn fabric_site.asgi:application`.
"""

import asyncio
import socket
from typing import Any

import uvloop
from django.core.management.base import BaseCommand, CommandError, CommandParser

from market.booth_visitors import presence_writer
from zones.parent import parent_gone
from zones.serve import web_config


class Command(BaseCommand):
    help = "Serve the web app on an inherited listening socket until SIGTERM or the parent ends."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--fd", type=int, required=True, help="the listening socket's fd")
        parser.add_argument(
            "--parent", type=int, default=None, help="stop once this process is not our parent"
        )

    def handle(self, *args: Any, fd: int, parent: int | None, **options: Any) -> None:
        try:
            listener = socket.socket(fileno=fd)
        except OSError as error:
            raise CommandError(f"--fd {fd} is not an open socket: {error.strerror}") from None
        if listener.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) == 0:
            raise CommandError(f"--fd {fd} is not a listening socket")
        config = web_config()
        config.load()  # imports the ASGI app (and learns the market) before the loop runs
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(self._serve(config, listener, parent))

    async def _serve(self, config: Any, listener: socket.socket, parent: int | None) -> None:
        import uvicorn

        server = uvicorn.Server(config)
        watch = None
        if parent:

            async def stop_when_orphaned() -> None:
                await parent_gone(parent)
                server.should_exit = True

            watch = asyncio.create_task(stop_when_orphaned())
        try:
            await server.serve(sockets=[listener])
        finally:
            if watch is not None:
                watch.cancel()
            await presence_writer().drain()  # booth departures of the sockets just closed
