"""Operators' view of the chunk store: namespaces are created here, the rest is read-only."""

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from chunks.models import Asset, AssetChunk, Chunk, Namespace
from chunks.services import namespace_create


@admin.register(Namespace)
class NamespaceAdmin(admin.ModelAdmin):
    """A new namespace is made by `namespace_create`, which also ties it to its booth and
    market in the relation engine; those ties cannot be changed afterwards here."""

    list_display = ["slug", "name", "booth", "market"]
    list_filter = ["market"]
    search_fields = ["slug", "name"]
    prepopulated_fields = {"slug": ["name"]}

    def get_readonly_fields(self, request: HttpRequest, obj: Namespace | None = None) -> Any:
        return ["booth", "market"] if obj is not None else []

    def save_model(self, request: HttpRequest, obj: Namespace, form: Any, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        created = namespace_create(slug=obj.slug, name=obj.name, booth=obj.booth, market=obj.market)
        obj.pk = created.pk


@admin.register(Chunk)
class ChunkAdmin(admin.ModelAdmin):
    list_display = ["hash", "size", "created_at", "touched_at"]
    search_fields = ["hash"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # chunks arrive through PUT /chunks/<hash>, which verifies them

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class AssetChunkInline(admin.TabularInline):
    model = AssetChunk
    extra = 0
    can_delete = False
    readonly_fields = ["index", "chunk", "offset", "size"]

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Asset)
class AssetAdmin(admin.ModelAdmin):
    list_display = ["name", "booth", "namespace", "content_type", "size", "updated_at"]
    list_filter = ["booth"]
    readonly_fields = ["size", "created_at", "updated_at"]
    inlines = [AssetChunkInline]
