"""Contributor keys: who may connect compute to a market's NPCs (docs/npcs.md)."""

from django.db import models

from market.models import Market


class ContributorKey(models.Model):
    """A key a contributor connects with. Only its SHA-256 is kept: the key is shown once."""

    market = models.ForeignKey(Market, on_delete=models.CASCADE, related_name="contributor_keys")
    label = models.CharField(max_length=100, help_text="who holds the key")
    digest = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["market", "created_at"]

    def __str__(self) -> str:
        state = "revoked" if self.revoked_at else "active"
        return f"{self.label} ({self.digest[:8]}, {state})"
