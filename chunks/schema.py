"""The OpenAPI description of `/chunks/{hash}`, which is not a DRF view.

drf-spectacular documents only DRF views, and finds a view's operations on the
class its URL callback names in `cls`. `chunk_endpoint` (chunks/views.py) is a
plain async Django view, so `describe_chunk_endpoint` hangs this class on it:
the schema generator reads the `extend_schema` descriptions below, while Django
keeps routing requests to the async view. No request ever reaches these methods;
they answer 405 if one were routed here by mistake.
"""

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from chunks.api import ErrorSerializer

HASH = OpenApiParameter(
    "chunk_hash",
    str,
    OpenApiParameter.PATH,
    description="Lower-case hex BLAKE3 of the chunk's bytes: exactly 64 of 0-9a-f.",
    pattern="^[0-9a-f]{64}$",
)
NAMESPACE = OpenApiParameter(
    "namespace",
    str,
    OpenApiParameter.QUERY,
    required=True,
    description="Id or slug of the namespace to store the chunk in; the caller needs can_write.",
)
REFUSAL = OpenApiResponse(ErrorSerializer)
OCTETS = "application/octet-stream"


class ChunkEndpointDescription(APIView):
    """GET, HEAD and PUT of one content-addressed chunk."""

    @extend_schema(
        operation_id="chunk_fetch",
        summary="Fetch a chunk (GET or HEAD)",
        description="Streamed; readable by whoever holds can_read on one of its namespaces.",
        parameters=[HASH],
        responses={
            (200, OCTETS): OpenApiResponse(
                OpenApiTypes.BINARY,
                description='The chunk\'s bytes. `ETag: "<hash>"`, `Cache-Control: public|private, '
                "max-age=31536000, immutable` (public when the world may read it), "
                "`Accept-Ranges: bytes`. HEAD answers the same headers without the body.",
            ),
            (206, OCTETS): OpenApiResponse(
                OpenApiTypes.BINARY,
                description="One range (`Range: bytes=a-b`, `a-` or `-n`), with Content-Range. "
                "A header listing several ranges is answered 200 with the whole chunk. "
                "`If-Range` with the chunk's ETag keeps the range; anything else drops it.",
            ),
            304: OpenApiResponse(description="`If-None-Match` names the chunk's ETag."),
            400: OpenApiResponse(ErrorSerializer, description="The hash is malformed."),
            403: OpenApiResponse(
                ErrorSerializer,
                description="The caller may read none of the chunk's namespaces, or there is "
                "no such chunk: both answers are identical, so hashes cannot be probed.",
            ),
            416: OpenApiResponse(
                ErrorSerializer, description="The range is outside the chunk (`bytes */size`)."
            ),
        },
    )
    def get(self, request: Request, chunk_hash: str) -> Response:
        return self.http_method_not_allowed(request)

    @extend_schema(
        operation_id="chunk_upload",
        summary="Upload a chunk",
        parameters=[HASH, NAMESPACE],
        request={OCTETS: OpenApiTypes.BINARY},
        responses={
            201: OpenApiResponse(description="Stored: the chunk is new to the store."),
            200: OpenApiResponse(
                description="Verified: the store had the chunk; it is now in the namespace too."
            ),
            400: OpenApiResponse(
                ErrorSerializer,
                description="Malformed hash, unknown namespace, a body whose BLAKE3 is not "
                "the hash, or a body shorter or longer than its Content-Length. Nothing is kept.",
            ),
            403: REFUSAL,
            411: OpenApiResponse(
                ErrorSerializer, description="No Content-Length (or a chunked body)."
            ),
            413: OpenApiResponse(
                ErrorSerializer, description="Content-Length over the store's CHUNK_MAX_BYTES."
            ),
        },
        description="The body is streamed to disk while it is hashed, never held in memory, "
        "and refused on its headers before any of it is read when it cannot be accepted.",
    )
    def put(self, request: Request, chunk_hash: str) -> Response:
        return self.http_method_not_allowed(request)


def describe_chunk_endpoint(view: Any) -> Any:
    """`view`, carrying ChunkEndpointDescription for the schema generator."""
    view.cls = ChunkEndpointDescription
    view.initkwargs = {}
    return view
