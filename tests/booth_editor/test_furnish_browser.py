"""static/assets3d/furnish.js in Chromium: placed models and panels where the manifest puts
them, each asset parsed once however often it is placed, and models over the triangle budget
drawn as their bounding boxes. Served from static/ through Playwright's routing."""

import base64

import pytest

from tests.chunks.glb import glb_box, png_image
from tests.subprocesses import REPO_ROOT

ORIGIN = "http://fabric.test"
PAGE = """<!doctype html><title>furnish</title>
<script type="importmap">{"imports": {"three": "/static/vendor/three/three.module.js"}}</script>
"""


@pytest.fixture
def furnish(page):
    def serve(route):
        path = route.request.url.removeprefix(ORIGIN)
        if path == "/":
            route.fulfill(content_type="text/html", body=PAGE)
        else:
            route.fulfill(
                content_type="text/javascript",
                body=(REPO_ROOT / path.lstrip("/")).read_text(),
            )

    page.route(ORIGIN + "/**", serve)
    page.goto(ORIGIN + "/")
    page.evaluate("async () => { window.furnish = await import('/static/assets3d/furnish.js'); }")
    return page


def manifest_with(**files) -> dict:
    assets = []
    for n, (name, (data, type_, placements)) in enumerate(files.items()):
        assets.append(
            {
                "id": n + 1,
                "name": name,
                "content_type": type_,
                "size": len(data),
                "chunks": [{"hash": f"{n:064x}", "offset": 0, "size": len(data)}],
                "placements": placements,
                "bytes": base64.b64encode(data).decode(),
            }
        )
    return {"booth": 7, "layout_version": 1, "assets": assets}


FURNISH = """async ([manifest, budget]) => {
    const bytes = new Map(manifest.assets.map(a => [a.chunks[0].hash,
        Uint8Array.from(atob(a.bytes), c => c.charCodeAt(0)).buffer]));
    const cache = {asset: async a => bytes.get(a.chunks[0].hash)};
    const furnisher = new window.furnish.Furnisher(cache, budget);
    const group = furnisher.booth(manifest);
    const drawn = await group.userData.done;
    return {drawn, parsed: furnisher.parsed, triangles: furnisher.trianglesDrawn,
            children: group.children.map(c => ({position: c.position.toArray(),
                yaw: c.rotation.y, scale: c.scale.x, standIn: !!c.userData.standIn}))};
}"""


def at(x, z, yaw=0.0, scale=1.0):
    return {"position": [x, 0.0, z], "yaw": yaw, "scale": scale}


def test_placements_stand_where_the_manifest_puts_them(furnish):
    manifest = manifest_with(
        model=(glb_box(), "model/gltf-binary", [at(10, 20, 1.5, 2.0), at(12, 20)]),
        panel=(png_image(), "image/png", [at(14, 21, 0.5)]),
        notes=(b"just text", "application/octet-stream", [at(15, 22)]),
    )

    got = furnish.evaluate(FURNISH, [manifest, 400000])

    assert got["drawn"] == 3  # the download is not drawn
    assert got["parsed"] == 2  # the model once, for both its placements
    assert got["triangles"] == 24
    placed = sorted((c["position"], c["yaw"], c["scale"]) for c in got["children"])
    assert placed == [
        ([10, 0, 20], 1.5, 2.0),
        ([12, 0, 20], 0.0, 1.0),
        ([14, 0, 21], 0.5, 1.0),
    ]


def test_models_over_the_triangle_budget_are_drawn_as_boxes(furnish):
    manifest = manifest_with(model=(glb_box(), "model/gltf-binary", [at(1, 1), at(2, 2), at(3, 3)]))

    got = furnish.evaluate(FURNISH, [manifest, 20])

    assert [c["standIn"] for c in got["children"]] == [False, True, True]
    assert got["triangles"] == 12
