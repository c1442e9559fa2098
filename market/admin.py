"""Admin for markets and booths, with per-object rights for operators (django-guardian).

A superuser grants a staff operator `change_market` / `change_booth` on chosen
objects from each object's "Object permissions" page; the operator then sees and
edits only those. Who may read or write assets is not decided here: that is the
relation engine's (market.rebac), and its tuples are the one store of it.
"""

from typing import Any

from django.contrib import admin
from django.db.models import Model, QuerySet
from django.http import HttpRequest
from guardian.admin import GuardedModelAdmin
from guardian.shortcuts import get_objects_for_user

from market.models import Booth, Market
from market.rebac.models import RelationTuple


class OperatorObjectAdmin(GuardedModelAdmin):
    """Staff see and change only the objects they hold guardian permissions on."""

    def _perm(self, action: str) -> str:
        meta = self.model._meta
        return f"{meta.app_label}.{action}_{meta.model_name}"

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        queryset = super().get_queryset(request)
        if request.user.is_superuser:
            return queryset
        return get_objects_for_user(
            request.user, self._perm("change"), queryset, accept_global_perms=True
        )

    def _allowed(self, request: HttpRequest, action: str, obj: Model | None) -> bool:
        user = request.user
        if user.is_superuser:
            return True
        if obj is None:  # the list and the app index: allowed if any object is
            return user.has_perm(self._perm(action)) or self.get_queryset(request).exists()
        return user.has_perm(self._perm(action)) or user.has_perm(self._perm(action), obj)

    def has_module_permission(self, request: HttpRequest) -> bool:
        return (
            request.user.is_active
            and request.user.is_staff
            and self._allowed(request, "change", None)
        )

    def has_view_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return self._allowed(request, "change", obj)

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return self._allowed(request, "change", obj)


class BoothInline(admin.TabularInline):
    model = Booth
    extra = 0


@admin.register(Market)
class MarketAdmin(OperatorObjectAdmin):
    list_display = ["name", "slug", "width_x_m", "depth_z_m", "height_y_m"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [BoothInline]


@admin.register(Booth)
class BoothAdmin(OperatorObjectAdmin):
    list_display = ["name", "market", "zone_index", "colour", "creator"]
    list_filter = ["market"]
    search_fields = ["name"]


@admin.register(RelationTuple)
class RelationTupleAdmin(admin.ModelAdmin):
    """Tuples are listed and may be deleted here; they are written through market.rebac.services,
    which checks each one against the market's model."""

    list_display = [
        "object_type",
        "object_id",
        "relation",
        "subject_type",
        "subject_id",
        "subject_relation",
    ]
    list_filter = ["object_type", "relation", "subject_type"]
    search_fields = ["object_id", "subject_id"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
