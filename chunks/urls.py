"""Chunk store URLs: the raw chunk endpoint, the JSON endpoints around it, the upload page."""

from django.urls import path, register_converter

from chunks.access_api import NamespaceReadersApi
from chunks.api import (
    BoothAssetApi,
    BoothAssetsApi,
    BoothLayoutApi,
    ChunksMissingApi,
    ZoneAssetsApi,
)
from chunks.pages import upload_page
from chunks.schema import describe_chunk_endpoint
from chunks.views import chunk_endpoint

app_name = "chunks"


class AnyText:
    """Everything up to the end of the path, newlines too (the `path` converter stops at one)."""

    regex = r"[\s\S]+"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


register_converter(AnyText, "anytext")

urlpatterns = [
    path("upload/", upload_page, name="upload"),
    path("chunks/missing", ChunksMissingApi.as_view(), name="missing"),
    # Any path after chunks/ reaches the view, which refuses all but a well-formed hash
    # with a 400 (rather than a 404 for `..`, a slash or a newline).
    path("chunks/<anytext:chunk_hash>", describe_chunk_endpoint(chunk_endpoint), name="chunk"),
    path("shards/<int:booth_id>/assets", BoothAssetsApi.as_view(), name="booth-assets"),
    path("shards/<int:booth_id>/layout", BoothLayoutApi.as_view(), name="booth-layout"),
    path(
        "markets/<int:market_id>/zones/<int:zone>/assets",
        ZoneAssetsApi.as_view(),
        name="zone-assets",
    ),
    path(
        "shards/<int:booth_id>/assets/<int:asset_id>", BoothAssetApi.as_view(), name="booth-asset"
    ),
    path(
        "namespaces/<int:namespace_id>/readers",
        NamespaceReadersApi.as_view(),
        name="namespace-readers",
    ),
]
