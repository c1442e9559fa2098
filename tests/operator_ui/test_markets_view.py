"""The new-market page and a generated market's map page, for operators."""

import pytest

from market.live import live_market_set
from market.maps import booth_zones, market_generate
from market.models import Market
from market.rebac.selectors import rebac_check
from market.selectors import market_zone_booths
from zones.core.mapgen import MapConfig, generate, layout_hash
from zones.serve import MarketPlan

pytestmark = pytest.mark.django_db

FORM = {
    "name": "Lantern Row",
    "slug": "",
    "seed": "31337",
    "instance_id": "0",
    "booths": "10",
    "arrangement": "rows",
    "bounds_x": "128",
    "bounds_z": "96",
    "aisle_cm": "400",
    "wall_cm": "20",
    "wall_height_cm": "300",
    "tile_cm": "200",
    "inset_cm": "100",
    "prop_sets": ["lanterns", "market"],
    "item_density": "30",
    "npc_density": "50",
    "portals": "north:500:1\neast",
}


def test_anonymous_users_are_sent_to_sign_in(client):
    response = client.get("/dashboard/markets/new/")
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_users_who_operate_no_market_may_not_create_one(client, django_user_model):
    client.force_login(django_user_model.objects.create_user("sam", password="pw"))
    assert client.get("/dashboard/markets/new/").status_code == 403
    assert client.post("/dashboard/markets/new/", FORM).status_code == 403
    assert not Market.objects.filter(slug="lantern-row").exists()


def test_the_form_offers_every_field_and_the_preview(client, olga):
    client.force_login(olga)
    page = client.get("/dashboard/markets/new/").content.decode()
    for field in ("seed", "booths", "arrangement", "bounds_x", "aisle_cm", "prop_sets", "portals"):
        assert f'name="{field}"' in page
    assert "operator_ui/market_new.js" in page and 'id="preview"' in page


def test_creating_a_market_makes_its_booths_and_its_operator(client, olga):
    client.force_login(olga)
    response = client.post("/dashboard/markets/new/", FORM)
    market = Market.objects.get(slug="lantern-row")
    assert response.status_code == 302
    assert response["Location"] == f"/dashboard/markets/{market.pk}/map/"
    config = market.map.config
    assert config["prop_sets"] == ["lanterns", "market"]
    assert config["portals"] == [
        {"side": "north", "at": 500, "target": 1},
        {"side": "east", "at": 500, "target": None},
    ]
    layout = generate(MapConfig.from_dict(config))
    zone_booths = market_zone_booths(market)
    for booth, zone in zip(layout["booths"], booth_zones(layout), strict=True):
        assert zone_booths[zone] == (booth["name"], booth["colour"])
    assert rebac_check(object=f"market:{market.pk}", relation="operator", user=f"user:{olga.pk}")

    page = client.get(response["Location"]).content.decode()
    assert market.map.layout_sha256 == layout_hash(layout)
    assert market.map.layout_sha256 in page
    assert 'id="market-map-config"' in page and "operator_ui/market_map.js" in page
    assert page.count("<tr><td>") == 10


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"seed": "4294967296"}, "seed must be 0..4294967295, got 4294967296"),
        ({"seed": "many"}, "seed must be a whole number, got &#x27;many&#x27;"),
        ({"booths": "33"}, "booths must be 1..32, got 33"),
        ({"bounds_x": "20", "bounds_z": "20"}, "bounds 20 x 20 m are too small for 10 booths"),
        ({"prop_sets": ["market", "space"]}, "unknown prop set &#x27;space&#x27;"),
        ({"prop_sets": []}, "prop_sets needs at least one prop set"),
        ({"portals": "up"}, "portal 0: unknown side &#x27;up&#x27;"),
        ({"name": " "}, "the market needs a name"),
    ],
)
def test_bad_values_are_refused_with_the_reason_and_nothing_is_created(
    client, olga, change, message
):
    client.force_login(olga)
    before = Market.objects.count()
    response = client.post("/dashboard/markets/new/", {**FORM, **change})
    assert response.status_code == 400
    assert message in response.content.decode()
    assert Market.objects.count() == before


def test_the_map_page_is_for_the_market_s_operators(client, django_user_model):
    made = market_generate(name="Closed", config={"seed": 5, "booths": 2})
    client.force_login(django_user_model.objects.create_user("sam", password="pw"))
    assert client.get(f"/dashboard/markets/{made.market.pk}/map/").status_code == 403


def test_a_market_not_generated_has_no_map_page(client, olga, market):
    client.force_login(olga)
    response = client.get(f"/dashboard/markets/{market.pk}/map/")
    assert response.status_code == 404
    assert b"was not generated from a map config" in response.content


def test_the_dashboard_of_a_generated_market_carries_its_config(client, django_user_model):
    root = django_user_model.objects.create_superuser("root", password="pw")
    made = market_generate(name="Served", config={"seed": 8, "booths": 4})
    plan = MarketPlan(market_id=made.market.pk, booths=tuple(market_zone_booths(made.market)))
    live_market_set(plan.live())
    try:
        client.force_login(root)
        page = client.get("/dashboard/").content.decode()
    finally:
        live_market_set(None)
    assert 'id="market-map-config"' in page and '"seed": 8' in page
    assert f"/dashboard/markets/{made.market.pk}/map/" in page


def test_the_dashboard_of_a_market_not_generated_has_no_config(client, olga, market):
    client.force_login(olga)
    page = client.get("/dashboard/").content.decode()
    assert 'id="market-map-config"' not in page and "/dashboard/markets/new/" in page
