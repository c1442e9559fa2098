"""`manage.py namespace_create --booth ID --slug SLUG [--name NAME] [--writer USERNAME ...]`"""

from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from chunks.services import namespace_create
from market.models import Booth
from market.rebac.services import rebac_tuple_write


class Command(BaseCommand):
    help = (
        "Create a namespace in a booth (its creator and the market's operators may write it), "
        "and let the named users write it too."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--booth", type=int, required=True, help="the booth's id")
        parser.add_argument("--slug", required=True, help="letters, digits and dashes")
        parser.add_argument("--name", help="shown to people (default: the slug)")
        parser.add_argument(
            "--writer", action="append", default=[], help="username of a writer (repeatable)"
        )

    def handle(
        self, *args: Any, booth: int, slug: str, name: str | None, writer: list[str], **_: Any
    ) -> None:
        found = Booth.objects.select_related("market").filter(pk=booth).first()
        if found is None:
            raise CommandError(f"There is no booth {booth}.")
        users = {u.get_username(): u for u in get_user_model().objects.filter(username__in=writer)}
        unknown = sorted(set(writer) - set(users))
        if unknown:
            raise CommandError(f"No user named {', '.join(unknown)}.")
        try:
            with transaction.atomic():
                namespace = namespace_create(
                    slug=slug, name=name or slug, booth=found, market=found.market
                )
                for user in users.values():
                    rebac_tuple_write(
                        object=namespace.rebac_object, relation="writer", user=f"user:{user.pk}"
                    )
        except ValidationError as error:
            raise CommandError("; ".join(error.messages)) from error
        writers = f", written by {', '.join(sorted(users))}" if users else ""
        self.stdout.write(
            f"namespace {namespace.pk} {namespace.slug!r} in booth {found.pk} ({found.name}){writers}"
        )
