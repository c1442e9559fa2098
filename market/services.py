"""Writes to markets, booths and visitor identities."""

import hashlib
import logging

from django.db import transaction
from django.utils import timezone

from market.models import Booth, Market, VisitorIdentity
from market.tickets import visitor_entity_keyed

logger = logging.getLogger(__name__)

DEMO_MARKET = ("Demo Market", "demo")
DEMO_BOOTHS = (
    ("Loom & Thread", "#e4572e"),
    ("Glass Garden", "#17bebb"),
    ("Pixel Forge", "#ffc914"),
)


@transaction.atomic
def market_demo_ensure() -> Market:
    """The first market, creating the demo market with its three booths if none exists."""
    market = Market.objects.order_by("id").first()
    if market is not None:
        return market
    name, slug = DEMO_MARKET
    market = Market.objects.create(name=name, slug=slug)
    Booth.objects.bulk_create(
        Booth(market=market, name=booth, colour=colour, zone_index=i)
        for i, (booth, colour) in enumerate(DEMO_BOOTHS)
    )
    return market


def visitor_key_hash(key: str) -> str:
    """The SHA-256 hex of an authKey: what is stored, and all that may be logged (a prefix)."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def visitor_identity_for_key(key: str) -> int:
    """The entity id of the visitor with this authKey, creating its identity on first use."""
    key_hash = visitor_key_hash(key)
    identity, created = VisitorIdentity.objects.get_or_create(key_hash=key_hash)
    if not created:
        # get_or_create saves nothing on a hit, so auto_now would not move.
        VisitorIdentity.objects.filter(pk=identity.pk).update(last_joined=timezone.now())
    logger.info(
        "visitor identity %s (key %s…) %s",
        identity.pk,
        key_hash[:8],
        "created" if created else "joined again",
    )
    return visitor_entity_keyed(identity.pk)
