"""`manage.py runmarket`: the whole market in one process."""

import asyncio
from typing import Any

import uvloop
from django.core.management.base import BaseCommand, CommandParser

from zones.serve import serve_market


class Command(BaseCommand):
    help = "Serve the web app and run the market's zones in this process until SIGINT or SIGTERM."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
        parser.add_argument("--port", type=int, default=8000, help="port to listen on")

    def handle(self, *args: Any, host: str, port: int, **options: Any) -> None:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(serve_market(host=host, port=port, announce=self.announce))

    def announce(self, line: str) -> None:
        self.stdout.write(line)
        self.stdout.flush()
