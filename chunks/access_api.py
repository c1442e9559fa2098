"""`/namespaces/<id>/readers`: list, grant and revoke read access (DRF).

GET    → {"namespace": id, "readers": [{"kind", "subject", "label"}]}
POST   {"kind": "everyone" | "visitors" | "user" | "group", "username"?, "group"?} → 201
DELETE the same body → 204, or 404 when there was no such grant
"""

from dataclasses import asdict
from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from chunks.access import (
    namespace_for_writer,
    namespace_reader_grant,
    namespace_reader_revoke,
    namespace_readers,
)
from chunks.api import REFUSALS, ChunkApi
from chunks.permissions import principal_of


class GrantInput(serializers.Serializer):
    kind = serializers.ChoiceField(choices=["everyone", "visitors", "user", "group"])
    username = serializers.CharField(required=False)
    group = serializers.CharField(required=False)


class GrantOutput(serializers.Serializer):
    kind = serializers.CharField()
    subject = serializers.CharField(
        help_text="The ReBAC subject: user:*, user:<id>, group:<id>#member, booth:<id>#visitor"
    )
    label = serializers.CharField()


class ReadersOutput(serializers.Serializer):
    namespace = serializers.IntegerField()
    readers = GrantOutput(many=True)


class NamespaceReadersApi(ChunkApi):
    """Who may read a namespace; only its writers may see or change that."""

    @extend_schema(responses={200: ReadersOutput, **REFUSALS})
    def get(self, request: Request, namespace_id: int) -> Response:
        namespace = namespace_for_writer(
            namespace_id=namespace_id, principal=principal_of(request.user)
        )
        readers = [asdict(g) for g in namespace_readers(namespace=namespace)]
        return Response({"namespace": namespace.pk, "readers": readers})

    @extend_schema(request=GrantInput, responses={201: GrantOutput, **REFUSALS})
    def post(self, request: Request, namespace_id: int) -> Response:
        namespace = namespace_for_writer(
            namespace_id=namespace_id, principal=principal_of(request.user)
        )
        grant = namespace_reader_grant(namespace=namespace, spec=_spec(request.data))
        return Response(asdict(grant), status=201)

    @extend_schema(request=GrantInput, responses={204: None, **REFUSALS})
    def delete(self, request: Request, namespace_id: int) -> Response:
        namespace = namespace_for_writer(
            namespace_id=namespace_id, principal=principal_of(request.user)
        )
        removed = namespace_reader_revoke(namespace=namespace, spec=_spec(request.data))
        return Response(status=204 if removed else 404)


def _spec(data: Any) -> Any:
    """The grant request as a plain dict (validated by the service, which names the problem)."""
    return dict(data) if hasattr(data, "items") else data
