"""The admin lists and deletes tuples; writing goes through the services, which check them."""

import pytest
from django.urls import reverse

from market.rebac.models import RelationTuple
from market.rebac.services import rebac_tuple_write

pytestmark = pytest.mark.django_db


def test_the_admin_lists_stored_tuples(admin_client):
    rebac_tuple_write(object="namespace:1", relation="reader", user="group:weavers#member")

    page = admin_client.get(reverse("admin:market_relationtuple_changelist"))

    assert page.status_code == 200
    assert b"weavers" in page.content


def test_the_admin_does_not_add_tuples_unchecked(admin_client):
    page = admin_client.get(reverse("admin:market_relationtuple_add"))

    assert page.status_code == 403


def test_the_admin_deletes_a_tuple(admin_client):
    rebac_tuple_write(object="namespace:1", relation="reader", user="user:7")
    row = RelationTuple.objects.get()

    admin_client.post(reverse("admin:market_relationtuple_delete", args=[row.pk]), {"post": "yes"})

    assert not RelationTuple.objects.exists()
