"""Booth layouts: where a booth's assets stand, published as one versioned whole.

A layout is the list of a booth's placements (an asset, a position in metres, a turn
about the vertical and a scale). Only the booth's creator (`booth:<id>#creator`) may
publish one; every placement must stand on the booth's own floor, the columns its zone
owns (the same map the dashboard draws, zones/core/ranges.py `column_booths`). Each
publish names the version it was made from and is refused with 409 when another publish
came in between, so a page left open cannot overwrite a newer layout. Placements are part
of the booth's manifest, and a publish tells the booth's visitors through `asset_changed`
(change `changed`) for every asset it moved, added or removed.
"""

import functools
import math
from dataclasses import dataclass

import numpy as np
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import transaction
from django.utils import timezone

from chunks.errors import ChunkError, ChunkErrorKind
from chunks.models import Asset, BoothLayout, Placement
from chunks.selectors import booth_for_assets
from market.events.publish import event_publish_on_commit
from market.events.types import AssetChanged
from market.models import Booth
from market.rebac.selectors import rebac_check, rebac_principal
from zones.core.constants import FLOOR_HEIGHT_M, MARKET_SIZE_M
from zones.core.ranges import column_booths, floor_ranges

PLACEMENTS_MAX = 200
SCALE_MIN, SCALE_MAX = 0.05, 20.0


@dataclass(frozen=True)
class PlacementInput:
    """One placement as a publish gives it."""

    asset: int
    x: float
    y: float
    z: float
    yaw: float = 0.0
    scale: float = 1.0


@dataclass(frozen=True)
class LayoutView:
    """A booth's published layout: its version and placements in order."""

    booth: Booth
    version: int
    placements: list[Placement]


@functools.cache
def market_columns(booths: int) -> np.ndarray:
    """[x column, z column] → zone of the floor of a market of `booths` booths."""
    grid = column_booths(floor_ranges(booths))
    grid.setflags(write=False)
    return grid


def booth_columns(booth: Booth) -> np.ndarray:
    """The column map of the booth's market (the zones number its booths in order)."""
    return market_columns(Booth.objects.filter(market_id=booth.market_id).count())


def region_contains(grid: np.ndarray, zone: int, x: float, z: float) -> bool:
    """Whether floor point (x, z), in metres, lies in a column of `zone`."""
    count = grid.shape[0]
    i = math.floor(x / (MARKET_SIZE_M[0] / count))
    k = math.floor(z / (MARKET_SIZE_M[2] / count))
    return 0 <= i < count and 0 <= k < count and int(grid[i, k]) == zone


def booth_may_arrange(user: AbstractBaseUser | AnonymousUser, booth: Booth) -> bool:
    """Whether `user` is the booth's creator (relation tuples, market/roles.py)."""
    principal = rebac_principal(user)
    if principal is None:
        return False
    return rebac_check(object=f"booth:{booth.pk}", relation="creator", user=principal)


def _booth_for_arranging(user: AbstractBaseUser | AnonymousUser, booth_id: int) -> Booth:
    if not user.is_authenticated:
        raise ChunkError(ChunkErrorKind.NOT_AUTHENTICATED, "Sign in to arrange a booth.")
    booth = booth_for_assets(booth_id)
    if not booth_may_arrange(user, booth):
        raise ChunkError(
            ChunkErrorKind.FORBIDDEN, f"Only the creator of booth {booth_id} may arrange it."
        )
    return booth


def layout_of(booth: Booth) -> LayoutView:
    """The booth's published layout (version 0 and nothing placed before a first publish)."""
    layout = BoothLayout.objects.filter(booth=booth).first()
    placements = list(Placement.objects.filter(booth=booth).order_by("index"))
    return LayoutView(booth, layout.version if layout else 0, placements)


def booth_layout_for_editing(
    *, user: AbstractBaseUser | AnonymousUser, booth_id: int
) -> LayoutView:
    """The booth's layout, for its creator."""
    return layout_of(_booth_for_arranging(user, booth_id))


def placement_check(booth: Booth, grid: np.ndarray, index: int, given: PlacementInput) -> None:
    """Refuse a placement off the booth's floor, or with a scale or turn out of range."""
    where = f"Placement {index} (asset {given.asset})"
    numbers = (given.x, given.y, given.z, given.yaw, given.scale)
    if not all(math.isfinite(n) for n in numbers):
        raise ChunkError(
            ChunkErrorKind.INVALID,
            f"{where} has a number that is not finite.",
            extra={"placement": index},
        )
    if not region_contains(grid, booth.zone_index, given.x, given.z):
        raise ChunkError(
            ChunkErrorKind.INVALID,
            f"{where} at x={given.x:.2f} m, z={given.z:.2f} m is outside booth "
            f"{booth.name!r}: place it on the booth's own floor.",
            extra={"placement": index},
        )
    if not 0.0 <= given.y <= FLOOR_HEIGHT_M:
        raise ChunkError(
            ChunkErrorKind.INVALID,
            f"{where}: y={given.y:.2f} m is not between 0 and {FLOOR_HEIGHT_M} m.",
            extra={"placement": index},
        )
    if not SCALE_MIN <= given.scale <= SCALE_MAX:
        raise ChunkError(
            ChunkErrorKind.INVALID,
            f"{where}: scale {given.scale} is not between {SCALE_MIN} and {SCALE_MAX}.",
            extra={"placement": index},
        )


def booth_layout_publish(
    *,
    user: AbstractBaseUser | AnonymousUser,
    booth_id: int,
    version: int,
    placements: list[PlacementInput],
) -> LayoutView:
    """Make `placements` the booth's layout, if `version` is still its newest; 409 if not."""
    booth = _booth_for_arranging(user, booth_id)
    if len(placements) > PLACEMENTS_MAX:
        raise ChunkError(
            ChunkErrorKind.INVALID,
            f"A booth holds at most {PLACEMENTS_MAX} placements; got {len(placements)}.",
        )
    grid = booth_columns(booth)
    for index, given in enumerate(placements):
        placement_check(booth, grid, index, given)
    wanted = {given.asset for given in placements}
    names = dict(Asset.objects.filter(booth=booth, pk__in=wanted).values_list("pk", "name"))
    strangers = sorted(wanted - set(names))
    if strangers:
        raise ChunkError(
            ChunkErrorKind.INVALID,
            f"Assets {strangers} are not assets of booth {booth.name!r}.",
            extra={"assets": strangers},
        )
    with transaction.atomic():
        layout, _ = BoothLayout.objects.get_or_create(booth=booth)
        # The conditional write is the version check: of two publishes made from the same
        # version, exactly one moves it on (a row lock on PostgreSQL, the write lock on SQLite).
        moved = BoothLayout.objects.filter(pk=layout.pk, version=version).update(
            version=version + 1,
            published_at=timezone.now(),
            published_by=user if user.is_authenticated else None,
        )
        if not moved:
            newest = BoothLayout.objects.get(pk=layout.pk).version
            raise ChunkError(
                ChunkErrorKind.CONFLICT,
                f"Booth {booth.name!r} was published again (version {newest}) since this "
                f"layout was loaded (version {version}): reload to see the newer layout; "
                "nothing was changed.",
                extra={"version": newest},
            )
        before = {
            (p.asset_id, p.x, p.y, p.z, p.yaw, p.scale)
            for p in Placement.objects.filter(booth=booth)
        }
        Placement.objects.filter(booth=booth).delete()
        Placement.objects.bulk_create(
            Placement(
                booth=booth,
                asset_id=given.asset,
                index=index,
                x=given.x,
                y=given.y,
                z=given.z,
                yaw=given.yaw,
                scale=given.scale,
            )
            for index, given in enumerate(placements)
        )
        after = {(g.asset, g.x, g.y, g.z, g.yaw, g.scale) for g in placements}
        touched = sorted({row[0] for row in before ^ after})
        all_names = dict(
            Asset.objects.filter(booth=booth, pk__in=touched).values_list("pk", "name")
        )
        for asset_id in touched:
            event_publish_on_commit(
                booth.market_id,
                AssetChanged(
                    zone=booth.zone_index,
                    booth=booth.pk,
                    asset=asset_id,
                    name=all_names.get(asset_id, ""),
                    change="changed",
                ),
            )
    return layout_of(booth)
