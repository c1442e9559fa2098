"""The JSON endpoints of the chunk store (DRF): missing chunks, booth manifests, assets.

Each view parses its input, calls one selector or service, and serializes the
answer; a ChunkError becomes its response in `ChunkApi.handle_exception`.
"""

from typing import Any

from django.http import HttpResponseBase
from django.urls import reverse
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import exceptions, serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from chunks.errors import ChunkError, ChunkErrorKind
from chunks.http import chunk_error_response, chunk_error_throttled
from chunks.layouts import PlacementInput, booth_layout_for_editing, booth_layout_publish
from chunks.models import Asset, AssetChunk, Placement
from chunks.permissions import principal_of
from chunks.selectors import MISSING_QUERY_LIMIT, booth_at_zone, booth_manifest, chunks_missing
from chunks.services import asset_record, asset_update


class ErrorSerializer(serializers.Serializer):
    """The body of every refused request (chunks.errors.ChunkError.body)."""

    error = serializers.CharField(help_text="invalid, forbidden, not_authenticated, …")
    detail = serializers.CharField(help_text="What went wrong, for people.")


REFUSALS = {
    400: OpenApiResponse(ErrorSerializer, description="Malformed input; see `detail`."),
    403: OpenApiResponse(ErrorSerializer, description="Not signed in, or not allowed."),
}


class ChunkApi(APIView):
    """An APIView that answers a ChunkError the way every chunk endpoint does."""

    def handle_exception(self, exc: Exception) -> HttpResponseBase:
        if isinstance(exc, exceptions.Throttled):
            exc = chunk_error_throttled(exc)
        elif isinstance(exc, exceptions.AuthenticationFailed):  # a bad asset token, say
            exc = ChunkError(ChunkErrorKind.AUTHENTICATION_FAILED, str(exc.detail))
        if isinstance(exc, ChunkError):
            return chunk_error_response(exc, self.request._request)
        return super().handle_exception(exc)


class AssetPartOutput(serializers.Serializer):
    """One chunk of an asset, where it sits in the asset, and where to fetch it."""

    hash = serializers.CharField(source="chunk_id")
    offset = serializers.IntegerField()
    size = serializers.IntegerField()
    url = serializers.SerializerMethodField()

    def get_url(self, part: AssetChunk) -> str:
        return self.context["request"].build_absolute_uri(
            reverse("chunks:chunk", args=[part.chunk_id])
        )


class PlacementOutput(serializers.Serializer):
    """Where one copy of the asset stands in the booth: metres (y up), yaw in radians."""

    position = serializers.SerializerMethodField()
    yaw = serializers.FloatField()
    scale = serializers.FloatField()

    def get_position(self, placement: Placement) -> list[float]:
        return [placement.x, placement.y, placement.z]


class ThumbnailOutput(serializers.Serializer):
    hash = serializers.CharField()
    url = serializers.CharField()


class AssetOutput(serializers.Serializer):
    """An asset: its chunks in order, concatenated, are its bytes."""

    id = serializers.IntegerField()
    name = serializers.CharField()
    content_type = serializers.CharField(help_text="Read from the asset's bytes.")
    size = serializers.IntegerField()
    namespace = serializers.CharField(source="namespace.slug", help_text="Its namespace's slug.")
    chunks = AssetPartOutput(source="parts", many=True)
    thumbnail_state = serializers.CharField(help_text="none, pending, ready or failed.")
    thumbnail = serializers.SerializerMethodField()
    placements = PlacementOutput(many=True, help_text="Where the asset stands in the booth.")

    def get_thumbnail(self, asset: Asset) -> dict[str, str] | None:
        if not asset.thumbnail:
            return None
        url = reverse("chunks:chunk", args=[asset.thumbnail])
        return {"hash": asset.thumbnail, "url": self.context["request"].build_absolute_uri(url)}


class AssetInput(serializers.Serializer):
    """An asset to create or replace, from chunks already uploaded to its namespace."""

    name = serializers.CharField(max_length=200)
    content_type = serializers.CharField(max_length=100, default="application/octet-stream")
    chunks = serializers.ListField(
        child=serializers.CharField(max_length=128),
        allow_empty=False,
        help_text="The asset's chunk hashes, in order.",
    )


class AssetCreateInput(AssetInput):
    namespace = serializers.CharField(
        required=False,
        help_text="Id or slug of the booth's namespace; may be left out if it has only one.",
    )
    upload_key = serializers.RegexField(
        r"^[A-Za-z0-9_-]{16,64}$",
        required=False,
        help_text="16 to 64 letters, digits, '-' or '_' the client chose for this upload: "
        "recording it again with the same key answers 200 with the asset already made.",
        error_messages={"invalid": "upload_key must be 16 to 64 letters, digits, '-' or '_'."},
    )


class ManifestOutput(serializers.Serializer):
    booth = serializers.IntegerField(source="booth.pk")
    layout_version = serializers.IntegerField(help_text="Version of the booth's placements.")
    assets = AssetOutput(many=True)


class PlacementInputSerializer(serializers.Serializer):
    asset = serializers.IntegerField()
    position = serializers.ListField(
        child=serializers.FloatField(), min_length=3, max_length=3, help_text="x, y, z in metres."
    )
    yaw = serializers.FloatField(default=0.0, help_text="Radians about the vertical.")
    scale = serializers.FloatField(default=1.0)


class LayoutInput(serializers.Serializer):
    version = serializers.IntegerField(
        min_value=0, help_text="The version this layout was made from."
    )
    placements = PlacementInputSerializer(many=True)


class LayoutPlacementOutput(PlacementOutput):
    asset = serializers.IntegerField(source="asset_id")


class LayoutOutput(serializers.Serializer):
    booth = serializers.IntegerField(source="booth.pk")
    version = serializers.IntegerField()
    placements = LayoutPlacementOutput(many=True)


def asset_body(asset: Asset, request: Request) -> dict[str, Any]:
    """An asset as AssetOutput."""
    return AssetOutput(asset, context={"request": request}).data


def manifest_response(request: Request, booth_id: int) -> Response:
    """The booth's manifest as the caller may see it (ManifestOutput), or a ChunkError."""
    manifest = booth_manifest(booth_id=booth_id, principal=principal_of(request.user))
    return Response(ManifestOutput(manifest, context={"request": request}).data)


class ChunksMissingApi(ChunkApi):
    """Which chunks a namespace lacks, so an uploader sends only those."""

    class InputSerializer(serializers.Serializer):
        namespace = serializers.CharField(help_text="Id or slug of the namespace to upload to.")
        hashes = serializers.ListField(
            child=serializers.CharField(max_length=128), max_length=MISSING_QUERY_LIMIT
        )

    class OutputSerializer(serializers.Serializer):
        missing = serializers.ListField(
            child=serializers.CharField(),
            help_text="The hashes the namespace does not hold, in the order asked. A chunk "
            "stored only in other namespaces is listed: PUT its bytes to link it.",
        )

    @extend_schema(
        operation_id="chunks_missing",
        request=InputSerializer,
        responses={200: OutputSerializer, **REFUSALS},
    )
    def post(self, request: Request) -> Response:
        given = self.InputSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        missing = chunks_missing(
            user=request.user,
            namespace_reference=given.validated_data["namespace"],
            hashes=given.validated_data["hashes"],
        )
        return Response(self.OutputSerializer({"missing": missing}).data)


class BoothAssetsApi(ChunkApi):
    """A booth's manifest (GET), and new assets for it (POST)."""

    @extend_schema(
        operation_id="booth_manifest",
        responses={200: ManifestOutput, 403: REFUSALS[403]},
        description="The booth's assets that the caller may read (a 403 when it may read "
        "none of the booth's namespaces, or when there is no such booth).",
    )
    def get(self, request: Request, booth_id: int) -> Response:
        return manifest_response(request, booth_id)

    @extend_schema(
        operation_id="booth_asset_create",
        request=AssetCreateInput,
        responses={201: AssetOutput, 200: AssetOutput, **REFUSALS},
        description="A 400 lists in `missing` the chunks the namespace does not hold yet. "
        "With an `upload_key` already used in this booth, the asset it recorded is answered "
        "with 200 (409 when that asset's namespace, name or chunks differ).",
    )
    def post(self, request: Request, booth_id: int) -> Response:
        given = AssetCreateInput(data=request.data)
        given.is_valid(raise_exception=True)
        asset, created = asset_record(
            user=request.user,
            booth_id=booth_id,
            namespace_reference=given.validated_data.get("namespace"),
            name=given.validated_data["name"],
            content_type=given.validated_data["content_type"],
            hashes=given.validated_data["chunks"],
            upload_key=given.validated_data.get("upload_key"),
        )
        return Response(asset_body(asset, request), status=201 if created else 200)


class ZoneAssetsApi(ChunkApi):
    """The manifest of the booth at a zone of a market: visitors know booths by zone."""

    @extend_schema(
        operation_id="zone_manifest",
        responses={200: ManifestOutput, 403: REFUSALS[403]},
        description="As GET /shards/<booth>/assets, for the booth at zone <zone> of the "
        "market (a 403 also when there is no such booth).",
    )
    def get(self, request: Request, market_id: int, zone: int) -> Response:
        return manifest_response(request, booth_at_zone(market_id=market_id, zone=zone))


class BoothAssetApi(ChunkApi):
    """Replace one asset of a booth."""

    @extend_schema(
        operation_id="booth_asset_update",
        request=AssetInput,
        responses={200: AssetOutput, **REFUSALS},
    )
    def put(self, request: Request, booth_id: int, asset_id: int) -> Response:
        given = AssetInput(data=request.data)
        given.is_valid(raise_exception=True)
        asset = asset_update(
            user=request.user,
            booth_id=booth_id,
            asset_id=asset_id,
            name=given.validated_data["name"],
            content_type=given.validated_data["content_type"],
            hashes=given.validated_data["chunks"],
        )
        return Response(asset_body(asset, request))


class BoothLayoutApi(ChunkApi):
    """A booth's layout, for its creator: read it (GET), publish a new one (PUT)."""

    @extend_schema(
        operation_id="booth_layout",
        responses={200: LayoutOutput, **REFUSALS},
        description="The booth's published placements and their version (creator only).",
    )
    def get(self, request: Request, booth_id: int) -> Response:
        layout = booth_layout_for_editing(user=request.user, booth_id=booth_id)
        return Response(LayoutOutput(layout).data)

    @extend_schema(
        operation_id="booth_layout_publish",
        request=LayoutInput,
        responses={
            200: LayoutOutput,
            **REFUSALS,
            409: OpenApiResponse(
                ErrorSerializer,
                description="The layout was published again since `version`: `version` in "
                "the body is the newest one.",
            ),
        },
        description="Replace the booth's placements. Every position must be on the booth's "
        "own floor; only the booth's creator may publish.",
    )
    def put(self, request: Request, booth_id: int) -> Response:
        given = LayoutInput(data=request.data)
        given.is_valid(raise_exception=True)
        placements = [
            PlacementInput(
                asset=item["asset"],
                x=item["position"][0],
                y=item["position"][1],
                z=item["position"][2],
                yaw=item["yaw"],
                scale=item["scale"],
            )
            for item in given.validated_data["placements"]
        ]
        layout = booth_layout_publish(
            user=request.user,
            booth_id=booth_id,
            version=given.validated_data["version"],
            placements=placements,
        )
        return Response(LayoutOutput(layout).data)
