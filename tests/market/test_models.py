"""Markets default to the core's bounds; a zone index belongs to one booth per market."""

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError

from market.models import Booth, Market
from zones.core.constants import MARKET_SIZE_M

pytestmark = pytest.mark.django_db


def test_market_bounds_default_to_the_core_market_size():
    market = Market.objects.create(name="Weavers' Row", slug="weavers-row")

    assert (market.width_x_m, market.height_y_m, market.depth_z_m) == MARKET_SIZE_M


def test_zone_index_is_unique_within_a_market():
    market = Market.objects.create(name="Weavers' Row", slug="weavers-row")
    Booth.objects.create(market=market, name="Looms", zone_index=0)

    with pytest.raises(IntegrityError):
        Booth.objects.create(market=market, name="Also zone 0", zone_index=0)


def test_the_same_zone_index_is_free_in_another_market():
    Booth.objects.create(market=Market.objects.create(name="A", slug="a"), name="A0", zone_index=0)
    Booth.objects.create(market=Market.objects.create(name="B", slug="b"), name="B0", zone_index=0)

    assert Booth.objects.filter(zone_index=0).count() == 2


@pytest.mark.parametrize("colour", ["#AA3300", "aa3300", "#abc", "#gg0000"])
def test_booth_colour_must_be_lower_case_rrggbb(colour):
    booth = Booth(market=Market.objects.create(name="A", slug="a"), name="A0", zone_index=0)
    booth.colour = colour

    with pytest.raises(ValidationError):
        booth.full_clean()


@pytest.mark.django_db
def test_demo_market_is_created_once_and_only_in_an_empty_database():
    from market.selectors import market_zone_booths
    from market.services import DEMO_BOOTHS, market_demo_ensure

    market = market_demo_ensure()
    assert market_zone_booths(market) == list(DEMO_BOOTHS)
    assert market_demo_ensure() == market
    assert Market.objects.count() == 1


@pytest.mark.django_db
def test_an_existing_market_is_used_as_it_is():
    from market.services import market_demo_ensure

    mine = Market.objects.create(name="Mine", slug="mine")
    assert market_demo_ensure() == mine
    assert mine.booths.count() == 0
