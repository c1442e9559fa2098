"""`manage.py creator_add USERNAME --booth ID [--password P] [--replace]`"""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from chunks.models import Namespace
from market.management.accounts import user_named
from market.models import Booth
from market.roles import booth_creator_set
from market.services import market_demo_ensure


class Command(BaseCommand):
    help = (
        "Make a user the creator of a booth: they may then upload to it at /upload/ and "
        "decide who may read what they upload. The booth gets a namespace to upload to if it "
        "has none. With --password, a user that does not exist yet is created; a booth that "
        "has another creator is handed over only with --replace."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--booth", type=int, required=True, help="the booth's id")
        parser.add_argument("--password", help="create the user with this password if missing")
        parser.add_argument(
            "--replace", action="store_true", help="take the booth from its current creator"
        )

    def handle(
        self,
        *args: Any,
        username: str,
        booth: int,
        password: str | None,
        replace: bool,
        **_: Any,
    ) -> None:
        market_demo_ensure()  # on a fresh database, the demo market's booths are there to take
        found = Booth.objects.select_related("market", "creator").filter(pk=booth).first()
        if found is None:
            known = ", ".join(f"{b.pk} ({b.name})" for b in Booth.objects.order_by("pk")[:20])
            raise CommandError(f"There is no booth {booth}. Booths: {known or 'none yet'}.")
        with transaction.atomic():
            user = user_named(username, password)
            current = found.creator
            if current is not None and current.pk != user.pk and not replace:
                raise CommandError(
                    f"{found.name} (booth {found.pk}) is created by {current.get_username()}; "
                    "give --replace to hand it over."
                )
            booth_creator_set(booth=found, user=user)
        namespaces = ", ".join(n.slug for n in Namespace.objects.filter(booth=found))
        self.stdout.write(
            f"{username} creates {found.name} (booth {found.pk} of {found.market.name}); "
            f"upload at /upload/ into {namespaces}."
        )
