"""`manage.py operator_add USERNAME [--password P] [--market ID]`"""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from market.management.accounts import user_named
from market.models import Market
from market.roles import market_operator_add
from market.services import market_demo_ensure


class Command(BaseCommand):
    help = (
        "Make a user an operator of a market (the demo market unless --market is given), "
        "who may then watch it on the dashboard at /dashboard/ and manage it, with its "
        "booths, in the admin at /admin/ (the user is made staff). With --password, a user "
        "that does not exist yet is created."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--password", help="create the user with this password if missing")
        parser.add_argument("--market", type=int, help="the market's id (default: the demo market)")

    def handle(
        self, *args: Any, username: str, password: str | None, market: int | None, **_: Any
    ) -> None:
        found = market_demo_ensure() if market is None else Market.objects.filter(pk=market).first()
        if found is None:
            raise CommandError(f"There is no market {market}.")
        with transaction.atomic():
            market_operator_add(market=found, user=user_named(username, password))
        self.stdout.write(f"{username} operates {found.name} (market {found.pk}).")
