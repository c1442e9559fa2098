"""Markets generated from a map config: the service and `manage.py market_generate`."""

import io
import json

import pytest
from django.core.management import CommandError, call_command

from market.maps import MarketGenerateError, booth_zones, market_generate, market_map_layout
from market.models import Market, MarketMap
from market.rebac.selectors import rebac_check
from market.selectors import market_zone_booths
from zones.core.constants import MARKET_SIZE_M
from zones.core.mapgen import MapConfig, generate, layout_hash
from zones.core.ranges import column_booths, floor_ranges

pytestmark = pytest.mark.django_db

CONFIG = {"seed": 4242, "booths": 6, "arrangement": "rows", "portals": [{"side": "east"}]}


def run(*args):
    out = io.StringIO()
    call_command("market_generate", *args, stdout=out)
    return out.getvalue()


def test_generated_booths_become_the_markets_booths(django_user_model):
    olga = django_user_model.objects.create_user("olga", password="pw")
    made = market_generate(name="Night Market", config=CONFIG, operator=olga)
    market = Market.objects.get(pk=made.market.pk)
    assert market.slug == "night-market"
    zone_booths = market_zone_booths(market)
    assert len(zone_booths) == 6
    for booth, zone in zip(made.layout["booths"], booth_zones(made.layout), strict=True):
        assert zone_booths[zone] == (booth["name"], booth["colour"])
    stored = MarketMap.objects.get(market=market)
    assert stored.config["market_id"] == market.pk
    assert stored.layout_sha256 == made.sha256
    assert (market.width_x_m, market.depth_z_m) == (128, 128)
    # the stored config regenerates the same bytes, in Python here and in JavaScript alike
    again = market_map_layout(market)
    assert layout_hash(again) == stored.layout_sha256
    assert layout_hash(generate(MapConfig.from_dict(stored.config))) == made.sha256
    assert rebac_check(object=f"market:{market.pk}", relation="operator", user=f"user:{olga.pk}")


@pytest.mark.parametrize(
    ("booths", "arrangement"), [(1, "grid"), (6, "grid"), (9, "ring"), (12, "rows"), (32, "grid")]
)
def test_each_booth_goes_to_a_zone_of_its_own_mostly_one_owning_part_of_its_floor(
    booths, arrangement
):
    layout = generate(MapConfig(market_id=1, seed=5, booths=booths, arrangement=arrangement))
    zones = booth_zones(layout)
    assert sorted(zones) == list(range(booths))
    owners = column_booths(floor_ranges(booths))
    cell_cm = MARKET_SIZE_M[0] * 100 / owners.shape[0]

    def owning(booth, zone):
        x0, z0, x1, z1 = (int(v // cell_cm) for v in booth["rect"])
        return zone in owners[x0 : x1 + 1, z0 : z1 + 1]

    # zones are cut along the Hilbert curve, booths in rows and columns: one booth per zone
    # cannot always match, but all but a few booths are simulated by a zone under them
    hits = sum(owning(b, z) for b, z in zip(layout["booths"], zones, strict=True))
    in_order = sum(owning(b, z) for z, b in enumerate(layout["booths"]))
    assert hits >= booths - max(2, booths // 8) and hits >= in_order


def test_a_market_not_generated_has_no_map():
    market = Market.objects.create(name="Plain", slug="plain")
    assert market_map_layout(market) is None


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"seed": 2**32}, r"seed must be 0\.\.4294967295"),
        ({"seed": 1, "booths": 40}, r"booths must be 1\.\.32, got 40"),
        ({"seed": 1, "booths": 32, "bounds_m": [40, 40]}, r"bounds 40 x 40 m are too small"),
        ({"seed": 1, "prop_sets": ["space"]}, r"unknown prop set 'space'"),
        ({"seed": 1, "market_id": 9}, r"leave market_id out"),
    ],
)
def test_bad_configs_create_nothing(config, message):
    with pytest.raises(MarketGenerateError, match=message):
        market_generate(name="Bad", config=config)
    assert not Market.objects.filter(slug="bad").exists()


def test_a_slug_in_use_is_refused():
    market_generate(name="Twice", config=CONFIG)
    with pytest.raises(MarketGenerateError, match="slug 'twice' exists already"):
        market_generate(name="Twice", config=CONFIG)
    assert Market.objects.filter(slug="twice").count() == 1


def test_command_creates_a_market_from_options():
    out = run(
        "Harbour Market",
        "--seed", "7",
        "--booths", "9",
        "--arrangement", "ring",
        "--bounds", "96", "96",
        "--props", "garden,lanterns",
        "--items", "40",
        "--portal", "north:250:1",
        "--portal", "south",
    )  # fmt: skip
    market = Market.objects.get(slug="harbour-market")
    assert f"market {market.pk}" in out
    assert "9 booths (ring)" in out and "2 portals" in out
    assert market.booths.count() == 9
    config = market.map.config
    assert config["seed"] == 7 and config["prop_sets"] == ["garden", "lanterns"]
    assert config["portals"][0] == {"side": "north", "at": 250, "target": 1}
    assert f"sha256 {market.map.layout_sha256}" in out


def test_command_reads_a_config_file_and_options_override_it(tmp_path, django_user_model):
    path = tmp_path / "map.json"
    path.write_text(json.dumps({**CONFIG, "booths": 4}))
    run(
        "From File",
        "--config",
        str(path),
        "--booths",
        "5",
        "--operator",
        "nina",
        "--password",
        "pw",
    )
    market = Market.objects.get(slug="from-file")
    assert market.booths.count() == 5 and market.map.config["seed"] == 4242
    nina = django_user_model.objects.get(username="nina")
    assert rebac_check(object=f"market:{market.pk}", relation="operator", user=f"user:{nina.pk}")


def test_command_dry_run_creates_nothing_and_prints_the_canonical_layout():
    out = run("Dry", "--seed", "3", "--dry-run", "--print")
    assert not Market.objects.filter(slug="dry").exists()
    lines = out.strip().splitlines()
    layout = json.loads(lines[-1])
    assert layout["config"]["seed"] == 3
    assert lines[-2] == f"The layout would be sha256 {layout_hash(layout)}."


def test_command_without_a_seed_draws_one_and_says_which():
    out = run("Random", "--booths", "2")
    market = Market.objects.get(slug="random")
    assert f"Seed {market.map.config['seed']}:" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--seed", "-1"), r"Bad map config: seed must be 0\.\.4294967295, got -1"),
        (("--seed", "1", "--booths", "0"), r"Bad map config: booths must be 1\.\.32, got 0"),
        (
            ("--seed", "1", "--booths", "32", "--bounds", "30", "30"),
            r"Bad map config: bounds 30 x 30 m are too small .* need at least 53 x 53 m",
        ),
        (("--seed", "1", "--props", "market,space"), r"Bad map config: unknown prop set 'space'"),
        (("--seed", "1", "--portal", "north:x"), r"--portal takes SIDE\[:AT\[:TARGET\]\]"),
        (("--seed", "1", "--config", "/nonexistent.json"), r"Cannot read the config"),
    ],
)
def test_command_refuses_bad_input_clearly(args, message):
    with pytest.raises(CommandError, match=message):
        run("Bad Input", *args)
    assert not Market.objects.filter(slug="bad-input").exists()
