"""Operators manage in the admin exactly the markets (and their booths) whose `operator`
relation tuple they hold: the tuple the dashboard reads, and nothing else."""

import pytest
from django.test import Client

from market.models import Booth, Market
from market.rebac.services import rebac_tuple_delete, rebac_tuple_write
from market.roles import market_operator_add
from operator_ui.access import may_operate

pytestmark = pytest.mark.django_db


@pytest.fixture
def markets():
    north = Market.objects.create(name="North", slug="north")
    south = Market.objects.create(name="South", slug="south")
    Booth.objects.create(market=north, name="Mine", zone_index=0)
    Booth.objects.create(market=south, name="Theirs", zone_index=0)
    return north, south


@pytest.fixture
def olga(django_user_model, markets):
    user = django_user_model.objects.create_user("olga", password="pw")
    market_operator_add(market=markets[0], user=user)
    user.refresh_from_db()
    return user


def signed_in(user):
    client = Client()
    client.force_login(user)
    return client


def test_making_an_operator_makes_them_staff_and_lets_them_watch(olga, markets):
    assert olga.is_staff
    assert may_operate(olga, markets[0].pk) and not may_operate(olga, markets[1].pk)


def test_an_operator_sees_and_changes_only_the_booths_of_the_market_operated(olga, markets):
    north, south = markets
    mine, theirs = Booth.objects.get(name="Mine"), Booth.objects.get(name="Theirs")
    client = signed_in(olga)

    listing = client.get("/admin/market/booth/").content.decode()
    assert "Mine" in listing and "Theirs" not in listing
    assert client.get(f"/admin/market/booth/{mine.pk}/change/").status_code == 200
    assert client.get(f"/admin/market/booth/{theirs.pk}/change/").status_code in (302, 403, 404)
    changed = client.post(
        f"/admin/market/booth/{mine.pk}/change/",
        {"market": north.pk, "name": "Mine, renamed", "colour": "#123456", "zone_index": 0},
    )
    assert changed.status_code == 302
    mine.refresh_from_db()
    assert mine.name == "Mine, renamed"
    # nor can the booth be moved into a market not operated
    moved = client.post(
        f"/admin/market/booth/{mine.pk}/change/",
        {"market": south.pk, "name": "Mine", "colour": "#123456", "zone_index": 1},
    )
    assert moved.status_code == 200  # the form, with its error
    mine.refresh_from_db()
    assert mine.market_id == north.pk


def test_an_operator_sees_only_the_markets_operated_and_may_neither_add_nor_delete(olga, markets):
    north, south = markets
    client = signed_in(olga)

    listing = client.get("/admin/market/market/").content.decode()
    assert "North" in listing and "South" not in listing
    assert client.get(f"/admin/market/market/{south.pk}/change/").status_code in (302, 403, 404)
    assert client.get("/admin/market/market/add/").status_code == 403
    assert client.get(f"/admin/market/market/{north.pk}/delete/").status_code == 403


def test_the_tuple_is_the_one_source_removing_it_ends_admin_and_dashboard_at_once(olga, markets):
    north = markets[0]
    rebac_tuple_delete(object=f"market:{north.pk}", relation="operator", user=f"user:{olga.pk}")

    client = signed_in(olga)
    assert client.get("/admin/market/booth/").status_code == 403
    assert client.get("/admin/market/market/").status_code == 403
    assert not may_operate(olga, north.pk)


def test_a_tuple_written_directly_grants_the_admin_to_staff(django_user_model, markets):
    sam = django_user_model.objects.create_user("sam", password="pw", is_staff=True)
    client = signed_in(sam)
    assert client.get("/admin/market/booth/").status_code == 403

    rebac_tuple_write(object=f"market:{markets[1].pk}", relation="operator", user=f"user:{sam.pk}")

    listing = client.get("/admin/market/booth/")
    assert listing.status_code == 200 and "Theirs" in listing.content.decode()


def test_a_superuser_chooses_a_market_s_operators_on_its_page(django_user_model, markets, olga):
    north = markets[0]
    root = django_user_model.objects.create_superuser("root", password="pw")
    ivan = django_user_model.objects.create_user("ivan", password="pw")
    client = signed_in(root)
    page = client.get(f"/admin/market/market/{north.pk}/change/").content.decode()
    assert 'name="operators"' in page

    saved = client.post(
        f"/admin/market/market/{north.pk}/change/",
        {
            "name": "North",
            "slug": "north",
            "width_x_m": north.width_x_m,
            "depth_z_m": north.depth_z_m,
            "height_y_m": north.height_y_m,
            "operators": [ivan.pk],
            "booths-TOTAL_FORMS": 0,
            "booths-INITIAL_FORMS": 0,
        },
    )

    assert saved.status_code == 302
    assert may_operate(ivan, north.pk) and not may_operate(olga, north.pk)
    ivan.refresh_from_db()
    assert ivan.is_staff


def test_an_operator_saving_the_market_keeps_its_operators(olga, markets):
    north = markets[0]
    client = signed_in(olga)
    assert (
        'name="operators"'
        not in client.get(f"/admin/market/market/{north.pk}/change/").content.decode()
    )

    saved = client.post(
        f"/admin/market/market/{north.pk}/change/",
        {
            "name": "North, renamed",
            "slug": "north",
            "width_x_m": north.width_x_m,
            "depth_z_m": north.depth_z_m,
            "height_y_m": north.height_y_m,
            "booths-TOTAL_FORMS": 0,
            "booths-INITIAL_FORMS": 0,
        },
    )

    assert saved.status_code == 302
    assert may_operate(olga, north.pk)
