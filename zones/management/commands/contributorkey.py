"""`manage.py contributorkey create|revoke|list --market ID`: a market's contributor keys.

`create --label NAME` prints the new key once (only its SHA-256 is stored); `revoke
LABEL_OR_DIGEST` revokes the market's active keys with that label, or whose digest starts
so, and contributors connected with them are cut off (zones/contributor_keys.py).
"""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from zones.contributor_keys import ContributorKeyError, key_create, key_revoke
from zones.models import ContributorKey


class Command(BaseCommand):
    help = "Create, revoke or list the contributor keys of a market."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True)
        create = actions.add_parser("create", help="a new key, printed once")
        create.add_argument("--market", type=int, required=True, help="market id")
        create.add_argument("--label", required=True, help="who holds the key")
        revoke = actions.add_parser("revoke", help="revoke a key")
        revoke.add_argument("--market", type=int, required=True, help="market id")
        revoke.add_argument("which", help="the key's label, or the start of its digest")
        listing = actions.add_parser("list", help="the market's keys")
        listing.add_argument("--market", type=int, required=True, help="market id")

    def handle(self, *args: Any, action: str, market: int, **options: Any) -> None:
        try:
            if action == "create":
                row, key = key_create(market, options["label"])
                self.stdout.write(key)
                self.stderr.write(
                    f"key {row.digest[:12]} for {row.label!r} on market {market}: "
                    "shown once, only its SHA-256 is stored"
                )
            elif action == "revoke":
                for row in key_revoke(market, options["which"]):
                    self.stdout.write(f"revoked {row.digest[:12]} {row.label}")
            else:
                for row in ContributorKey.objects.filter(market_id=market):
                    state = (
                        f"revoked {row.revoked_at:%Y-%m-%d %H:%M}" if row.revoked_at else "active"
                    )
                    self.stdout.write(f"{row.digest[:12]}  {row.label}  {state}")
        except ContributorKeyError as exc:
            raise CommandError(str(exc)) from None
