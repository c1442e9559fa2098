"""Contributor keys in the admin: listed, and revoked by an action (created with
`manage.py contributorkey create`, which shows the key once). They cannot be deleted: a
revoked key keeps the market closed and is refused with its own reason, while deleting a
market's last key would open it to any key again."""

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponseBase
from django.utils import timezone

from zones.models import ContributorKey

NEVER_DELETED = (
    "Keys are revoked, never deleted: a revoked key keeps its market closed to other keys "
    "and is refused with its reason; deleting a market's last key would open it to any key."
)


@admin.register(ContributorKey)
class ContributorKeyAdmin(admin.ModelAdmin):
    list_display = ["label", "market", "short_digest", "created_at", "revoked_at"]
    list_filter = ["market"]
    readonly_fields = ["market", "label", "digest", "created_at", "revoked_at"]
    actions = ["revoke"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # a new key is shown once: manage.py contributorkey create

    def has_delete_permission(
        self, request: HttpRequest, obj: ContributorKey | None = None
    ) -> bool:
        return False  # keys are revoked, never deleted (see the module docstring)

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponseBase:
        extra_context = {"subtitle": NEVER_DELETED, **(extra_context or {})}
        return super().changelist_view(request, extra_context)

    @admin.display(description="digest")
    def short_digest(self, obj: ContributorKey) -> str:
        return obj.digest[:12]

    @admin.action(description="Revoke the selected keys")
    def revoke(self, request: HttpRequest, queryset: QuerySet[ContributorKey]) -> None:
        count = queryset.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())
        self.message_user(request, f"{count} key(s) revoked", messages.SUCCESS)
