"""Markets generated from a map config: the market, its booths and its map in one step.

The config is that of zones/core/mapgen.py (docs/mapgen.md) without `market_id`, which
is the new market's own id. The generated booths become the market's booths, one zone
each, so the zones serve it as they serve any other. Zones own parts of the floor cut
along the Hilbert curve (zones/core/ranges.py `floor_ranges`), not the generator's
rectangles: each generated booth goes to the zone that owns most of its floor, one booth
per zone (`booth_zones`), so that a booth's name and colour are those of the zone that
simulates most of it.
"""

from dataclasses import dataclass
from typing import Any

import numpy as np
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.utils.text import slugify

from market.models import Booth, Market, MarketMap
from market.roles import market_operator_add
from zones.core.constants import MARKET_SIZE_M
from zones.core.mapgen import GENERATOR, MapConfig, MapConfigError, generate, layout_hash
from zones.core.ranges import column_booths, floor_ranges

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


def booth_zones(layout: dict[str, Any]) -> list[int]:
    """The zone of each generated booth, in booth order: a one-to-one assignment, greedy by
    the floor area a zone owns of a booth, largest first (ties: lower booth, lower zone)."""
    rects = np.array([b["rect"] for b in layout["booths"]], dtype=np.float64) / 100.0
    n = len(rects)
    owners = column_booths(floor_ranges(n))
    count = owners.shape[0]
    edges_x = np.linspace(0.0, MARKET_SIZE_M[0], count + 1)
    edges_z = np.linspace(0.0, MARKET_SIZE_M[2], count + 1)
    shares = np.zeros((n, n))
    for b, (x0, z0, x1, z1) in enumerate(rects):
        along_x = np.clip(np.minimum(x1, edges_x[1:]) - np.maximum(x0, edges_x[:-1]), 0, None)
        along_z = np.clip(np.minimum(z1, edges_z[1:]) - np.maximum(z0, edges_z[:-1]), 0, None)
        area = np.outer(along_x, along_z)
        shares[b] = np.bincount(owners.ravel(), weights=area.ravel(), minlength=n)[:n]
    zone_of = [-1] * n
    taken = set()
    for flat in np.argsort(-shares, axis=None, kind="stable"):
        b, z = divmod(int(flat), n)
        if zone_of[b] < 0 and z not in taken:
            zone_of[b] = z
            taken.add(z)
    return zone_of


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
        Booth(market=market, name=b["name"], colour=b["colour"], zone_index=zone)
        for b, zone in zip(layout["booths"], booth_zones(layout), strict=True)
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


DEMO_PAIR = (
    ("North Market", "north-market", 11, "south"),
    ("South Market", "south-market", 12, "north"),
)
"""The demo host's two markets: name, slug, seed, and the side of the portal to the other."""
DEMO_PAIR_BOOTHS = 4


def market_demo_pair_ensure() -> tuple[Market, Market]:
    """Two generated markets linked by portals, each leading to the other; created once.

    A portal names its target's id, so the first market is generated, the second with a
    portal to it, then the first's map again with its portal to the second. Portals are
    placed after the booths and draw from no booth's stream, so the first market's booths
    stay what they were (checked).
    """
    found = {m.slug: m for m in Market.objects.filter(slug__in=[p[1] for p in DEMO_PAIR])}
    if len(found) == len(DEMO_PAIR):
        return found[DEMO_PAIR[0][1]], found[DEMO_PAIR[1][1]]
    if found:
        raise MarketGenerateError(
            f"only {', '.join(sorted(found))} of the demo pair exists: delete it, or run the"
            " host with --markets"
        )
    (first_name, first_slug, first_seed, first_side) = DEMO_PAIR[0]
    (second_name, second_slug, second_seed, second_side) = DEMO_PAIR[1]
    with transaction.atomic():
        first = market_generate(
            name=first_name,
            slug=first_slug,
            config={"seed": first_seed, "booths": DEMO_PAIR_BOOTHS},
        )
        second = market_generate(
            name=second_name,
            slug=second_slug,
            config={
                "seed": second_seed,
                "booths": DEMO_PAIR_BOOTHS,
                "portals": [{"side": second_side, "target": first.market.pk}],
            },
        )
        linked = MapConfig.from_dict(
            {
                **MarketMap.objects.get(market=first.market).config,
                "portals": [{"side": first_side, "target": second.market.pk}],
            }
        )
        layout = generate(linked)
        if layout["booths"] != first.layout["booths"]:  # never expected: see the docstring
            raise MarketGenerateError("adding a portal moved the booths of the first market")
        MarketMap.objects.filter(market=first.market).update(
            config=linked.to_dict(), layout_sha256=layout_hash(layout)
        )
    return first.market, second.market
