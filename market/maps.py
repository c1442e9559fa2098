"""Markets generated from a map config: the market, its booths and its map in one step.

The config is that of zones/core/mapgen.py (docs/mapgen.md) without `market_id`, which
is the new market's own id. The generated booths become the market's booths, zone i
simulating booth i as in every market, so the zones serve it as they serve any other.
"""

from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.utils.text import slugify

from market.models import Booth, Market, MarketMap
from market.roles import market_operator_add
from zones.core.mapgen import GENERATOR, MapConfig, MapConfigError, generate, layout_hash

CHECK_MARKET_ID = 1  # the id a config is checked with before the market exists


class MarketGenerateError(ValueError):
    """A market that cannot be generated; the message says why."""


@dataclass(frozen=True)
class Generated:
    market: Market
    layout: dict[str, Any]
    sha256: str


def market_config_checked(config: dict[str, Any]) -> dict[str, Any]:
    """`config` (without market_id) if it generates a market, else MarketGenerateError."""
    if not isinstance(config, dict):
        raise MarketGenerateError("a map config is a JSON object")
    if "market_id" in config:
        raise MarketGenerateError("leave market_id out: it is the id the new market gets")
    try:
        generate(MapConfig.from_dict({**config, "market_id": CHECK_MARKET_ID}))
    except (MapConfigError, TypeError) as error:
        raise MarketGenerateError(str(error)) from None
    return config


@transaction.atomic
def market_generate(
    *, name: str, config: dict[str, Any], slug: str = "", operator: AbstractBaseUser | None = None
) -> Generated:
    """Create a market named `name` from `config`, its booths from the generated layout,
    and its MarketMap; `operator`, if given, operates it."""
    market_config_checked(config)
    name = name.strip()
    if not name:
        raise MarketGenerateError("the market needs a name")
    slug = slug.strip() or slugify(name)
    if not slug:
        raise MarketGenerateError(f"cannot make a slug of {name!r}: give one")
    if Market.objects.filter(slug=slug).exists():
        raise MarketGenerateError(f"a market with the slug {slug!r} exists already")
    width, depth = config.get("bounds_m", MapConfig(market_id=1, seed=0).bounds_m)
    try:
        with transaction.atomic():
            market = Market.objects.create(name=name, slug=slug, width_x_m=width, depth_z_m=depth)
    except IntegrityError:
        raise MarketGenerateError(f"a market with the slug {slug!r} exists already") from None
    full = MapConfig.from_dict({**config, "market_id": market.pk})
    layout = generate(full)
    Booth.objects.bulk_create(
        Booth(market=market, name=b["name"], colour=b["colour"], zone_index=b["zone"])
        for b in layout["booths"]
    )
    sha256 = layout_hash(layout)
    MarketMap.objects.create(
        market=market, config=full.to_dict(), generator=GENERATOR, layout_sha256=sha256
    )
    if operator is not None:
        market_operator_add(market=market, user=operator)
    return Generated(market=market, layout=layout, sha256=sha256)


def market_map_layout(market: Market) -> dict[str, Any] | None:
    """The generated layout of `market`, or None for a market not generated."""
    found = MarketMap.objects.filter(market=market).first()
    if found is None:
        return None
    return generate(MapConfig.from_dict(found.config))
