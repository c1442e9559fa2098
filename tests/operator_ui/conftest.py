"""The demo market announced live in this process, and its operator olga."""

import pytest

from market.live import live_market_set
from market.rebac.services import rebac_tuple_write
from market.selectors import market_zone_booths
from market.services import market_demo_ensure
from zones.serve import MarketPlan


@pytest.fixture
def plan(db):
    found = market_demo_ensure()
    plan = MarketPlan(market_id=found.pk, booths=tuple(market_zone_booths(found)))
    live_market_set(plan.live())
    yield plan
    live_market_set(None)


@pytest.fixture
def market(plan):
    from market.models import Market

    return Market.objects.get(pk=plan.market_id)


@pytest.fixture
def olga(django_user_model, market):
    user = django_user_model.objects.create_user("olga", password="pw")
    rebac_tuple_write(object=f"market:{market.pk}", relation="operator", user=f"user:{user.pk}")
    return user
