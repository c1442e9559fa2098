"""Operators create namespaces in the admin, tied to their booth in the relation engine."""

import pytest

from chunks.models import Namespace
from market.rebac.services import rebac_check, rebac_tuple_write

pytestmark = pytest.mark.django_db


def test_namespace_made_in_the_admin_lets_the_booth_creator_write(admin_client, booth, writer):
    rebac_tuple_write(object=f"booth:{booth.pk}", relation="creator", user=f"user:{writer.pk}")

    answer = admin_client.post(
        "/admin/chunks/namespace/add/",
        {"slug": "looms-assets", "name": "Looms assets", "booth": booth.pk, "market": ""},
    )

    assert answer.status_code == 302, answer.content.decode()[:2000]
    namespace = Namespace.objects.get(slug="looms-assets")
    assert rebac_check(
        object=namespace.rebac_object, relation="can_write", user=f"user:{writer.pk}"
    )


def test_chunk_list_is_read_only(admin_client):
    assert admin_client.get("/admin/chunks/chunk/").status_code == 200
    assert admin_client.get("/admin/chunks/chunk/add/").status_code == 403
