from django.contrib import admin

from market.models import Booth, Market
from market.rebac.models import RelationTuple


class BoothInline(admin.TabularInline):
    model = Booth
    extra = 0


@admin.register(Market)
class MarketAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "width_x_m", "depth_z_m", "height_y_m"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [BoothInline]


@admin.register(Booth)
class BoothAdmin(admin.ModelAdmin):
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
