"""Namespaces, the chunks they hold, and the assets assembled from chunks.

A chunk is named by the BLAKE3 hash of its bytes and stored once, however many
namespaces hold it. Who may read or write a namespace is a ReBAC question
(object `namespace:<pk>`), answered by market.rebac, never by these rows.
"""

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.utils import timezone

from chunks.hashes import CHUNK_HASH_PATTERN, HASH_HEX_LENGTH
from market.models import Booth, Market

chunk_hash_format = RegexValidator(
    rf"\A{CHUNK_HASH_PATTERN.pattern}\Z", "A chunk hash is 64 lower-case hex digits."
)
# `?namespace=12` means the namespace with id 12, so a slug must never be all digits.
slug_not_numeric = RegexValidator(
    r"\A\d+\Z", "A namespace slug needs at least one letter or dash.", inverse_match=True
)


class Namespace(models.Model):
    """A set of chunks that share who may read and write them."""

    slug = models.SlugField(unique=True, validators=[slug_not_numeric])
    name = models.CharField(max_length=100)
    market = models.ForeignKey(
        Market,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="chunk_namespaces",
    )
    booth = models.ForeignKey(
        Booth,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="chunk_namespaces",
    )

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.slug

    @property
    def rebac_object(self) -> str:
        """This namespace as a ReBAC object."""
        return f"namespace:{self.pk}"


class Chunk(models.Model):
    """One stored chunk file: its hash, size, and when an upload last vouched for it.

    `touched_at` is set by every upload that proves it holds the bytes; garbage
    collection only deletes chunks that no namespace or asset holds and that no
    upload has touched within CHUNK_GC_GRACE_SECONDS.
    """

    hash = models.CharField(
        primary_key=True, max_length=HASH_HEX_LENGTH, validators=[chunk_hash_format]
    )
    size = models.PositiveBigIntegerField()
    created_at = models.DateTimeField(default=timezone.now)
    touched_at = models.DateTimeField(default=timezone.now, db_index=True)
    namespaces = models.ManyToManyField(Namespace, through="ChunkNamespace", related_name="chunks")

    class Meta:
        ordering = ["created_at", "hash"]

    def __str__(self) -> str:
        return self.hash


class ChunkNamespace(models.Model):
    """A chunk's membership of a namespace: readers of the namespace may fetch it."""

    chunk = models.ForeignKey(Chunk, on_delete=models.CASCADE, related_name="namespace_links")
    namespace = models.ForeignKey(Namespace, on_delete=models.CASCADE, related_name="chunk_links")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["chunk", "namespace"], name="chunk_once_per_namespace"),
        ]

    def __str__(self) -> str:
        return f"{self.chunk_id} in {self.namespace_id}"


class Asset(models.Model):
    """A file a booth shows, stored as an ordered list of chunks in one namespace.

    The namespace decides who may read the asset: a booth may keep a public
    namespace and a private one, and its manifest lists to each principal only
    the assets of the namespaces they can read.
    """

    booth = models.ForeignKey(Booth, on_delete=models.CASCADE, related_name="assets")
    namespace = models.ForeignKey(Namespace, on_delete=models.PROTECT, related_name="assets")
    name = models.CharField(max_length=200)
    content_type = models.CharField(max_length=100, default="application/octet-stream")
    size = models.PositiveBigIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    # A small PNG of an image asset, made in the background (chunks/thumbnails.py) and
    # stored as a chunk of the asset's namespace, so whoever reads the asset reads it.
    thumbnail = models.CharField(max_length=HASH_HEX_LENGTH, blank=True, default="")
    thumbnail_state = models.CharField(
        max_length=8,
        choices=[(s, s) for s in ("none", "pending", "ready", "failed")],
        default="none",
    )
    # Chosen by the uploading client once per upload and sent with every attempt to record
    # it, so that an attempt repeated after a reload finds the asset the first one made.
    upload_key = models.CharField(max_length=64, blank=True, default="")

    class Meta:
        ordering = ["booth", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["booth", "upload_key"],
                condition=~models.Q(upload_key=""),
                name="chunks_asset_one_per_upload_key",
            )
        ]

    def __str__(self) -> str:
        return self.name


class AssetChunk(models.Model):
    """The chunk at position `index` of an asset, covering bytes [offset, offset + size)."""

    asset = models.ForeignKey(Asset, on_delete=models.CASCADE, related_name="parts")
    index = models.PositiveIntegerField()
    chunk = models.ForeignKey(Chunk, on_delete=models.PROTECT, related_name="asset_parts")
    offset = models.PositiveBigIntegerField()
    size = models.PositiveBigIntegerField()

    class Meta:
        ordering = ["asset", "index"]
        constraints = [
            models.UniqueConstraint(fields=["asset", "index"], name="asset_chunk_index_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.asset_id}[{self.index}] = {self.chunk_id}"


class BoothLayout(models.Model):
    """The version of a booth's published arrangement; every publish adds one.

    A publish names the version it was made from, and is refused when another publish
    came in between, so a page left open cannot overwrite a newer arrangement.
    """

    booth = models.OneToOneField(Booth, on_delete=models.CASCADE, related_name="layout")
    version = models.PositiveIntegerField(default=0)
    published_at = models.DateTimeField(null=True, blank=True)
    published_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True
    )

    def __str__(self) -> str:
        return f"layout of booth {self.booth_id}, version {self.version}"


class Placement(models.Model):
    """One asset standing in its booth: where (metres, y up), turned by `yaw`, scaled."""

    booth = models.ForeignKey(Booth, on_delete=models.CASCADE, related_name="placements")
    asset = models.ForeignKey(Asset, on_delete=models.CASCADE, related_name="placements")
    index = models.PositiveIntegerField()
    x = models.FloatField()
    y = models.FloatField(default=0.0)
    z = models.FloatField()
    yaw = models.FloatField(default=0.0)  # radians about y, counter-clockwise seen from above
    scale = models.FloatField(default=1.0)

    class Meta:
        ordering = ["booth", "index"]
        constraints = [
            models.UniqueConstraint(fields=["booth", "index"], name="placement_index_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.asset_id} at ({self.x:.2f}, {self.y:.2f}, {self.z:.2f})"
