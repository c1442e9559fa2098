"""Contributor keys in the admin: listed, and revoked by an action (created with
`manage.py contributorkey create`, which shows the key once)."""

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone

from zones.models import ContributorKey


@admin.register(ContributorKey)
class ContributorKeyAdmin(admin.ModelAdmin):
    list_display = ["label", "market", "short_digest", "created_at", "revoked_at"]
    list_filter = ["market"]
    readonly_fields = ["market", "label", "digest", "created_at", "revoked_at"]
    actions = ["revoke"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # a new key is shown once: manage.py contributorkey create

    @admin.display(description="digest")
    def short_digest(self, obj: ContributorKey) -> str:
        return obj.digest[:12]

    @admin.action(description="Revoke the selected keys")
    def revoke(self, request: HttpRequest, queryset: QuerySet[ContributorKey]) -> None:
        count = queryset.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())
        self.message_user(request, f"{count} key(s) revoked", messages.SUCCESS)
