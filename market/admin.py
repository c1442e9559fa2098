from django.contrib import admin

from market.models import Booth, Market


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
