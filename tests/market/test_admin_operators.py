"""Operators manage exactly the markets and booths they hold guardian object permissions on."""

import pytest
from django.test import Client
from guardian.shortcuts import assign_perm

from market.models import Booth, Market

pytestmark = pytest.mark.django_db


@pytest.fixture
def booths():
    market = Market.objects.create(name="North", slug="north")
    mine = Booth.objects.create(market=market, name="Mine", zone_index=0)
    theirs = Booth.objects.create(market=market, name="Theirs", zone_index=1)
    return market, mine, theirs


@pytest.fixture
def operator(django_user_model, booths):
    user = django_user_model.objects.create_user("olga", password="pw", is_staff=True)
    assign_perm("market.change_booth", user, booths[1])
    return user


def signed_in(user):
    client = Client()
    client.force_login(user)
    return client


def test_operator_sees_and_changes_only_the_booth_granted(operator, booths):
    market, mine, theirs = booths
    client = signed_in(operator)
    listing = client.get("/admin/market/booth/")
    assert listing.status_code == 200
    assert "Mine" in listing.content.decode() and "Theirs" not in listing.content.decode()
    assert client.get(f"/admin/market/booth/{mine.pk}/change/").status_code == 200
    assert client.get(f"/admin/market/booth/{theirs.pk}/change/").status_code in (302, 403, 404)
    changed = client.post(
        f"/admin/market/booth/{mine.pk}/change/",
        {
            "market": market.pk,
            "name": "Mine, renamed",
            "colour": "#123456",
            "zone_index": 0,
            "creator": "",
        },
    )
    assert changed.status_code == 302
    mine.refresh_from_db()
    assert mine.name == "Mine, renamed"


def test_staff_without_object_permissions_sees_no_market_admin(django_user_model, booths):
    client = signed_in(django_user_model.objects.create_user("sam", password="pw", is_staff=True))
    assert client.get("/admin/market/booth/").status_code == 403
    assert client.get("/admin/market/market/").status_code == 403


def test_superuser_grants_object_permissions_from_the_guardian_page(django_user_model, booths):
    admin_user = django_user_model.objects.create_superuser("root", password="pw")
    market = booths[0]
    page = signed_in(admin_user).get(f"/admin/market/market/{market.pk}/permissions/")
    assert page.status_code == 200 and "Object permissions" in page.content.decode()
