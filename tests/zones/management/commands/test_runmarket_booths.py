"""`runmarket --booths N` serves a market of N generated booths; without it, the demo market."""

import pytest
from django.core.management import CommandError, call_command

from market.models import Booth, Market
from market.services import market_sized_ensure
from zones.management.commands import runmarket

pytestmark = pytest.mark.django_db


@pytest.fixture
def served(monkeypatch):
    """The plans runmarket would serve, instead of serving them."""
    plans = []

    async def serve_market(*, host, port, announce, plan):
        plans.append(plan)

    monkeypatch.setattr(runmarket, "serve_market", serve_market)
    return plans


@pytest.mark.parametrize("count", [1, 2, 32])
def test_booths_makes_a_market_of_that_many_distinct_booths(served, count):
    call_command("runmarket", booths=count, walkers=0)
    (plan,) = served
    assert len(plan.booths) == count
    names, colours = zip(*plan.booths, strict=True)
    assert len(set(names)) == count and len(set(colours)) == count
    assert all(len(c) == 7 and c == c.lower() and c.startswith("#") for c in colours)
    booths = Booth.objects.filter(market_id=plan.market_id).order_by("zone_index")
    assert [b.zone_index for b in booths] == list(range(count))
    for booth in booths:
        booth.full_clean()  # colours pass the model's own validator


def test_without_booths_the_demo_market_is_served(served):
    call_command("runmarket", walkers=0)
    (plan,) = served
    assert [name for name, _ in plan.booths] == ["Loom & Thread", "Glass Garden", "Pixel Forge"]


def test_the_same_count_serves_the_same_market_again(served):
    call_command("runmarket", booths=5)
    call_command("runmarket", booths=5)
    call_command("runmarket", booths=6)
    first, again, other = served
    assert first.market_id == again.market_id != other.market_id
    assert Market.objects.count() == 2


@pytest.mark.parametrize("count", [0, -3, 33])
def test_a_count_outside_one_to_thirty_two_is_refused(served, count):
    with pytest.raises(CommandError, match=f"--booths must be 1 to 32 .*not {count}"):
        call_command("runmarket", booths=count)
    assert served == [] and not Market.objects.exists()


def test_a_sized_market_whose_booths_were_changed_is_refused_not_rebuilt(served):
    market = market_sized_ensure(booths=4)
    market.booths.filter(zone_index=3).delete()
    with pytest.raises(CommandError, match="no longer has booths 0 to 3"):
        call_command("runmarket", booths=4)
    assert market.booths.count() == 3
