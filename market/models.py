"""A market is one persistent space; booths divide it, one zone each."""

import uuid

from django.conf import settings
from django.core.validators import MinValueValidator, RegexValidator
from django.db import models

from zones.core.constants import MARKET_SIZE_M

DEFAULT_WIDTH_X_M, DEFAULT_HEIGHT_Y_M, DEFAULT_DEPTH_Z_M = MARKET_SIZE_M

colour_hex = RegexValidator(r"^#[0-9a-f]{6}$", "Use a lower-case hex colour such as #1f77b4.")


class Market(models.Model):
    """A 3D space with its bounds in metres from the origin, y up."""

    name = models.CharField(max_length=100)
    slug = models.SlugField(unique=True)
    width_x_m = models.FloatField(default=DEFAULT_WIDTH_X_M, validators=[MinValueValidator(1.0)])
    depth_z_m = models.FloatField(default=DEFAULT_DEPTH_Z_M, validators=[MinValueValidator(1.0)])
    height_y_m = models.FloatField(default=DEFAULT_HEIGHT_Y_M, validators=[MinValueValidator(1.0)])
    # Ids restart at 1 in every database; this tells two markets 1 apart, so that zone
    # state kept on disk for one is never resumed by the other (zones/serve.py).
    identity = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.name


class Booth(models.Model):
    """A creator's part of a market, simulated by the zone with the same index."""

    market = models.ForeignKey(Market, on_delete=models.CASCADE, related_name="booths")
    name = models.CharField(max_length=100)
    colour = models.CharField(max_length=7, default="#1f77b4", validators=[colour_hex])
    zone_index = models.PositiveSmallIntegerField()
    creator = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="booths",
    )

    class Meta:
        ordering = ["market", "zone_index"]
        constraints = [
            models.UniqueConstraint(
                fields=["market", "zone_index"], name="booth_zone_index_unique_per_market"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} (zone {self.zone_index})"


class VisitorIdentity(models.Model):
    """A visitor program that joins with an authKey: the same key, the same entity id.

    The raw key is a credential, so it is never stored: `key_hash` is the SHA-256
    hex of its UTF-8 bytes, which is all a later join needs to find the row.
    """

    key_hash = models.CharField(max_length=64, unique=True, db_index=True)
    created = models.DateTimeField(auto_now_add=True)
    last_joined = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "visitor identities"

    def __str__(self) -> str:
        return f"visitor {self.key_hash[:8]}"


from market.rebac.models import (  # noqa: E402, F401  (registers the tuple store with the app)
    RelationTuple,
    RelationTupleChange,
    RelationTupleRevision,
)


class OutboxEvent(models.Model):
    """An event written in the same transaction as the change it reports.

    The relay (market/events/outbox.py) appends it to the market's stream after the
    commit and then stamps `relayed_at`; appends are idempotent by `id`, so a relay
    that dies between the two appends nothing twice when it runs again.
    """

    id = models.CharField(primary_key=True, max_length=32)
    market_id = models.PositiveIntegerField()
    subject = models.CharField(max_length=200)
    envelope = models.BinaryField()
    created_at = models.DateTimeField(auto_now_add=True)
    relayed_at = models.DateTimeField(null=True, blank=True)
    offset = models.PositiveBigIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["relayed_at", "created_at"], name="outbox_pending")]

    def __str__(self) -> str:
        return f"{self.subject} {self.id}"


class MarketMap(models.Model):
    """The generated layout of a market: the config it is generated from, and the hash of
    the layout's canonical bytes when it was made (zones/core/mapgen.py, docs/mapgen.md)."""

    market = models.OneToOneField(Market, on_delete=models.CASCADE, related_name="map")
    config = models.JSONField()
    generator = models.CharField(max_length=40)
    layout_sha256 = models.CharField(max_length=64)
    created = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"map of {self.market} ({self.layout_sha256[:12]})"
