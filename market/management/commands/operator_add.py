"""`manage.py operator_add USERNAME [--password P] [--market ID]`"""

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from market.models import Market
from market.rebac.services import rebac_tuple_write
from market.services import market_demo_ensure


class Command(BaseCommand):
    help = (
        "Make a user an operator of a market (the demo market unless --market is given), "
        "who may then watch it on the dashboard at /dashboard/. With --password, a user "
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
        users = get_user_model()
        with transaction.atomic():
            user = users.objects.filter(username=username).first()
            if user is None:
                if not password:
                    raise CommandError(f"No user named {username}; give --password to create one.")
                user = users.objects.create_user(username=username, password=password)
            rebac_tuple_write(
                object=f"market:{found.pk}", relation="operator", user=f"user:{user.pk}"
            )
        self.stdout.write(f"{username} operates {found.name} (market {found.pk}).")
