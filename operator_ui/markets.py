"""Operators create markets from a generated map config, and see a generated market's map.

`/dashboard/markets/new/` is a form of the map config (docs/mapgen.md) with a preview
drawn in the browser by the JavaScript generator as the fields change; the server
checks and generates the same layout with the Python one, creates the market with the
generated booths, makes the operator who asked its operator, and shows its map at
`/dashboard/markets/<id>/map/`, where the browser generates the layout again from the
stored config and compares its hash with the one the server recorded.
"""

import secrets
from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render

from market.maps import MarketGenerateError, market_generate
from market.models import Market, MarketMap
from market.roles import markets_operated
from operator_ui.access import may_operate
from zones.core.mapgen import ARRANGEMENTS, PROP_SETS, SIDES, Floor, MapConfig

NUMBER_FIELDS = ("seed", "instance_id", "booths", "item_density", "npc_density")
FLOOR_FIELDS = tuple(Floor.__dataclass_fields__)


def may_create_markets(user: Any) -> bool:
    """Superusers, and users who operate at least one market."""
    return bool(user.is_superuser or markets_operated(user))


def _whole(name: str, text: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise MarketGenerateError(f"{name} must be a whole number, got {text.strip()!r}") from None


def config_from_form(data: Any) -> dict[str, Any]:
    """The map config the form's fields describe (the generator checks the values)."""
    config: dict[str, Any] = {}
    for name in NUMBER_FIELDS:
        config[name] = _whole(name, data.get(name, ""))
    config["arrangement"] = data.get("arrangement", "")
    config["bounds_m"] = [
        _whole("bounds x", data.get("bounds_x", "")),
        _whole("bounds z", data.get("bounds_z", "")),
    ]
    config["floor"] = {name: _whole(f"floor.{name}", data.get(name, "")) for name in FLOOR_FIELDS}
    config["prop_sets"] = data.getlist("prop_sets")
    portals = []
    for line in data.get("portals", "").replace(",", "\n").splitlines():
        if not line.strip():
            continue
        parts = [part.strip() for part in line.split(":")]
        if len(parts) > 3:
            raise MarketGenerateError(f"a portal is SIDE[:AT[:TARGET]], not {line.strip()!r}")
        portal: dict[str, Any] = {"side": parts[0]}
        if len(parts) > 1 and parts[1]:
            portal["at"] = _whole("portal at", parts[1])
        if len(parts) > 2 and parts[2]:
            portal["target"] = _whole("portal target", parts[2])
        portals.append(portal)
    config["portals"] = portals
    return config


def _form_defaults() -> dict[str, Any]:
    base = MapConfig(market_id=1, seed=secrets.randbelow(1 << 32))
    values: dict[str, Any] = {name: getattr(base, name) for name in NUMBER_FIELDS}
    values.update({name: getattr(base.floor, name) for name in FLOOR_FIELDS})
    values.update(
        name="",
        slug="",
        arrangement=base.arrangement,
        bounds_x=base.bounds_m[0],
        bounds_z=base.bounds_m[1],
        prop_sets=list(base.prop_sets),
        portals="",
    )
    return values


@login_required
def market_new(request: HttpRequest) -> HttpResponse:
    """The form (GET) and the creation (POST) of a generated market."""
    if not may_create_markets(request.user):
        return render(request, "operator_ui/not_operator.html", {"market": None}, status=403)
    error = None
    values = _form_defaults()
    status = 200
    if request.method == "POST":
        values = {key: request.POST.get(key, "") for key in values}
        values["prop_sets"] = request.POST.getlist("prop_sets")
        try:
            made = market_generate(
                name=request.POST.get("name", ""),
                slug=request.POST.get("slug", ""),
                config=config_from_form(request.POST),
                operator=request.user,  # type: ignore[arg-type]
            )
        except MarketGenerateError as failure:
            error, status = str(failure), 400
        else:
            return redirect("market-map", market_id=made.market.pk)
    return render(
        request,
        "operator_ui/market_new.html",
        {
            "values": values,
            "error": error,
            "arrangements": ARRANGEMENTS,
            "prop_sets": sorted(PROP_SETS),
            "sides": SIDES,
        },
        status=status,
    )


@login_required
def market_map(request: HttpRequest, market_id: int) -> HttpResponse:
    """A generated market's map, booths and figures, for its operators."""
    market = get_object_or_404(Market, pk=market_id)
    if not may_operate(request.user, market.pk):
        return render(request, "operator_ui/not_operator.html", {"market": market}, status=403)
    found = MarketMap.objects.filter(market=market).first()
    if found is None:
        return render(
            request, "operator_ui/market_map.html", {"market": market, "map": None}, status=404
        )
    return render(
        request,
        "operator_ui/market_map.html",
        {"market": market, "map": found, "booths": market.booths.order_by("zone_index")},
    )
