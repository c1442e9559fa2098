"""`manage.py chunk_front_config --listen HOST:PORT --upstream HOST:PORT --cache-dir DIR [--decision-seconds N]`"""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from chunks.front import chunk_front_config


class Command(BaseCommand):
    help = (
        "Print the nginx configuration (http level) of a front that sends readable chunks "
        "from CHUNK_STORE_DIR itself and everything else to the web processes (chunks/front.py)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--listen", required=True, help="where nginx listens, host:port")
        parser.add_argument(
            "--upstream", required=True, help="a web process, host:port or unix:/path"
        )
        parser.add_argument(
            "--cache-dir", required=True, help="a directory for nginx's remembered decisions"
        )
        parser.add_argument(
            "--decision-seconds",
            type=int,
            default=1,
            help="how long nginx reuses the market's yes (the revoke bound; default 1)",
        )

    def handle(
        self,
        *args: Any,
        listen: str,
        upstream: str,
        cache_dir: str,
        decision_seconds: int,
        **_: Any,
    ) -> None:
        try:
            text = chunk_front_config(
                listen=listen,
                upstream=upstream,
                cache_dir=cache_dir,
                decision_seconds=decision_seconds,
            )
        except ValueError as error:
            raise CommandError(str(error)) from None
        self.stdout.write(text)
