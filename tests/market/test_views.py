"""The landing page says what the market is and lists its booths."""

import pytest

from market.models import Booth, Market

pytestmark = pytest.mark.django_db


def test_landing_lists_booths_with_their_colours(client):
    market = Market.objects.create(name="Weavers' Row", slug="weavers-row")
    Booth.objects.create(market=market, name="Looms", colour="#aa3300", zone_index=0)
    Booth.objects.create(market=market, name="Dye Works", colour="#0055ff", zone_index=1)

    response = client.get("/")

    assert response.status_code == 200
    page = response.content.decode()
    assert "virtual creator market" in page
    assert "Booths of Weavers&#x27; Row" in page
    assert page.index("Looms") < page.index("Dye Works")  # in zone order
    assert "background: #aa3300" in page
    assert "#0055ff" in page


def test_landing_has_the_live_zone_table_and_its_script(client):
    response = client.get("/")

    page = response.content.decode()
    assert 'id="zones-body"' in page
    assert "market/landing.js" in page
    assert 'data-socket-path="/ws/markets/' in page and '/summary/"' in page


def test_landing_without_a_market_points_to_the_admin(client):
    response = client.get("/")

    assert response.status_code == 200
    assert "No market has been set up yet" in response.content.decode()


def test_landing_shows_the_first_market_only(client):
    first = Market.objects.create(name="First", slug="first")
    second = Market.objects.create(name="Second", slug="second")
    Booth.objects.create(market=first, name="Kept", zone_index=0)
    Booth.objects.create(market=second, name="Elsewhere", zone_index=0)

    page = client.get("/").content.decode()

    assert "Kept" in page
    assert "Elsewhere" not in page
