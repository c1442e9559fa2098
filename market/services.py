"""Writes to markets, booths and visitor identities."""

import colorsys
import hashlib
import logging
from collections.abc import Callable

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


SIZED_MARKET_SLUG = "booths-{count}"
GOLDEN_ANGLE = 0.381966  # of a turn: consecutive hues land far apart, none repeats


def booth_colour(index: int) -> str:
    """A lower-case #rrggbb for the booth at `index`, distinct from its neighbours' hues."""
    red, green, blue = colorsys.hls_to_rgb((index * GOLDEN_ANGLE) % 1.0, 0.5, 0.65)
    return "#" + "".join(f"{round(channel * 255):02x}" for channel in (red, green, blue))


@transaction.atomic
def market_sized_ensure(*, booths: int) -> Market:
    """The market with `booths` generated booths (zone i: "Booth i+1"), created on first use.

    For load runs and demonstrations of a larger market; the demo market is left alone.
    A market of that slug whose booths were changed since is refused (ValueError), not
    rebuilt: its booths may hold creators' work.
    """
    slug = SIZED_MARKET_SLUG.format(count=booths)
    market, created = Market.objects.get_or_create(
        slug=slug, defaults={"name": f"Market of {booths} booths"}
    )
    if created:
        Booth.objects.bulk_create(
            Booth(market=market, name=f"Booth {i + 1}", colour=booth_colour(i), zone_index=i)
            for i in range(booths)
        )
        return market
    found = list(market.booths.order_by("zone_index").values_list("zone_index", flat=True))
    if found != list(range(booths)):
        raise ValueError(
            f"{market.name} ({slug}) no longer has booths 0 to {booths - 1}"
            f" ({len(found)} booths now); fix it or delete it in the admin at /admin/market/"
        )
    return market


def visitor_key_hash(key: str) -> str:
    """The SHA-256 hex of an authKey: what is stored, and all that may be logged (a prefix)."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def visitor_identity_for_key(key: str, before_create: Callable[[], None] | None = None) -> int:
    """The entity id of the visitor with this authKey, creating its identity on first use.

    `before_create` runs only when the key is new, before its row is written: it may
    raise to refuse the key, and then nothing is stored.
    """
    key_hash = visitor_key_hash(key)
    found = VisitorIdentity.objects.filter(key_hash=key_hash).first()
    if found is None and before_create is not None:
        before_create()
    identity, created = (
        (found, False) if found else VisitorIdentity.objects.get_or_create(key_hash=key_hash)
    )
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
