"""A live market with one furnished booth: a GLB box and a PNG placed in the booth at zone 1,
published by its creator and readable by everyone, set up through the services directly."""

import json
from dataclasses import dataclass

import numpy as np

from chunks.layouts import market_columns
from tests.chunks.glb import glb_box, png_image
from tests.live import LiveMarket

PASSWORD = "loom and shuttle"
BOX_COLOUR = (1.0, 0.1, 0.6)
FURNISH = """
import json, blake3
from django.contrib.auth import get_user_model
from chunks.layouts import PlacementInput, booth_layout_publish
from chunks.models import Chunk, ChunkNamespace, Namespace
from chunks.services import asset_create
from chunks.storage import chunk_store
from market.models import Booth
from market.rebac.services import rebac_tuple_write
from market.roles import booth_creator_set, market_operator_add

booth = Booth.objects.get(zone_index=1)
cleo = get_user_model().objects.create_user("cleo", password={password!r})
olga = get_user_model().objects.create_user("olga", password={password!r})
booth_creator_set(booth=booth, user=cleo)
market_operator_add(market=booth.market, user=olga)
namespace = Namespace.objects.get(booth=booth)
rebac_tuple_write(object=namespace.rebac_object, relation="reader", user=f"booth:{{booth.pk}}#visitor")
placements = []
for name, data, (x, z) in {files!r}:
    data = bytes.fromhex(data)
    digest = blake3.blake3(data).hexdigest()
    path = chunk_store().path_for(digest)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    Chunk.objects.get_or_create(hash=digest, defaults={{"size": len(data)}})
    ChunkNamespace.objects.get_or_create(chunk_id=digest, namespace=namespace)
    asset = asset_create(user=cleo, booth_id=booth.pk, namespace_reference=None, name=name,
                         content_type="", hashes=[digest])
    placements.append(PlacementInput(asset=asset.pk, x=x, y=0.0, z=z, yaw=0.0, scale=1.5))
booth_layout_publish(user=cleo, booth_id=booth.pk, version=0, placements=placements)
print(json.dumps({{"booth": booth.pk, "market": booth.market_id}}))
"""


@dataclass
class FurnishedMarket:
    server: LiveMarket
    booth: int
    market: int
    box: tuple[float, float]  # where the model stands (x, z)
    panel: tuple[float, float]

    @property
    def url(self) -> str:
        return self.server.url


def furnish_spots(
    booths: int = 3,
) -> tuple[tuple[float, float], tuple[float, float], tuple[float, float]]:
    """Floor points of zone 1: the model, the panel, and a visitor's place 5 m in front (+z)
    of the model, in the same booth."""
    grid = market_columns(booths)
    width = 128.0 / grid.shape[0]
    for i, k in np.argwhere(grid == 1):
        if (
            k + 1 < grid.shape[1]
            and grid[i, k + 1] == 1
            and i + 1 < grid.shape[0]
            and grid[i + 1, k] == 1
        ):
            box = (float(i + 0.5) * width, float(k + 0.5) * width)
            panel = (float(i + 1.5) * width, float(k + 0.5) * width)
            return box, panel, (box[0], box[1] + 5.0)
    raise AssertionError("zone 1 has no 2 x 2 corner")


def furnished(server: LiveMarket) -> FurnishedMarket:
    box, panel, _ = furnish_spots()
    files = [
        ("lantern.glb", glb_box(BOX_COLOUR).hex(), box),
        ("banner.png", png_image((20, 200, 240), (320, 200)).hex(), panel),
    ]
    made = server.manage("shell", "-c", FURNISH.format(password=PASSWORD, files=files))
    assert made.returncode == 0, made.stderr
    found = json.loads(made.stdout.strip().splitlines()[-1])
    return FurnishedMarket(server, found["booth"], found["market"], box, panel)


def pink_pixels(png: bytes, at: tuple[float, float], radius: int = 14) -> int:
    """How many pixels of the box's colour lie within `radius` pixels of `at` in a screenshot."""
    import io

    from PIL import Image

    with Image.open(io.BytesIO(png)) as image:
        pixels = np.asarray(image.convert("RGB")).astype(int)
    x, y = int(round(at[0])), int(round(at[1]))
    patch = pixels[max(0, y - radius) : y + radius, max(0, x - radius) : x + radius]
    r, g, b = patch[..., 0], patch[..., 1], patch[..., 2]
    return int(np.count_nonzero((r > 200) & (g < 150) & (b > 140)))
