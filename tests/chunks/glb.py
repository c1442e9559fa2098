"""Small files of each kind an asset may be: a GLB model (an unlit box), images, broken ones."""

import io
import json
import struct

from PIL import Image


def glb_box(colour: tuple[float, float, float] = (1.0, 0.1, 0.6), size: float = 1.0) -> bytes:
    """A GLB holding one unlit box of `size` metres, its base on y = 0, in `colour` (0-1 RGB)."""
    h = size / 2
    corners = [(x, y, z) for x in (-h, h) for y in (0.0, size) for z in (-h, h)]
    faces = [
        (0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3),
    ]  # fmt: skip
    indices = [i for a, b, c, d in faces for i in (a, b, c, a, c, d)]
    positions = b"".join(struct.pack("<3f", *corner) for corner in corners)
    index_bytes = struct.pack(f"<{len(indices)}H", *indices)
    index_bytes += b"\0" * (-len(index_bytes) % 4)
    binary = positions + index_bytes
    document = {
        "asset": {"version": "2.0", "generator": "tests"},
        "extensionsUsed": ["KHR_materials_unlit"],
        "scene": 0,
        "scenes": [{"nodes": [0]}],
        "nodes": [{"mesh": 0}],
        "meshes": [{"primitives": [{"attributes": {"POSITION": 0}, "indices": 1, "material": 0}]}],
        "materials": [
            {
                "pbrMetallicRoughness": {"baseColorFactor": [*colour, 1.0]},
                "extensions": {"KHR_materials_unlit": {}},
                "doubleSided": True,
            }
        ],
        "buffers": [{"byteLength": len(binary)}],
        "bufferViews": [
            {"buffer": 0, "byteOffset": 0, "byteLength": len(positions), "target": 34962},
            {
                "buffer": 0,
                "byteOffset": len(positions),
                "byteLength": len(indices) * 2,
                "target": 34963,
            },
        ],
        "accessors": [
            {
                "bufferView": 0,
                "componentType": 5126,
                "count": len(corners),
                "type": "VEC3",
                "min": [-h, 0.0, -h],
                "max": [h, size, h],
            },
            {"bufferView": 1, "componentType": 5123, "count": len(indices), "type": "SCALAR"},
        ],
    }
    text = json.dumps(document).encode()
    text += b" " * (-len(text) % 4)
    body = struct.pack("<II", len(text), 0x4E4F534A) + text
    body += struct.pack("<II", len(binary), 0x004E4942) + binary
    return struct.pack("<4sII", b"glTF", 2, 12 + len(body)) + body


def png_image(colour: tuple[int, int, int] = (20, 200, 240), size: tuple[int, int] = (64, 48)):
    """A PNG of one colour."""
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, format="PNG")
    return out.getvalue()


def image_bytes(kind: str) -> bytes:
    """A small image in `kind` (PNG, JPEG, WEBP)."""
    out = io.BytesIO()
    Image.new("RGB", (40, 30), (200, 120, 30)).save(out, format=kind)
    return out.getvalue()


def glb_cut_short() -> bytes:
    """A GLB missing its last 40 bytes: its header still claims the full length."""
    return glb_box()[:-40]
