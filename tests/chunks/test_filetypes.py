"""Asset types are read from the bytes; malformed GLB models are refused with the reason."""

import json
import struct

import pytest

from chunks.filetypes import MalformedAsset, asset_kind
from tests.chunks.glb import glb_box, glb_cut_short, image_bytes, png_image


def kind_of(data: bytes) -> str:
    return asset_kind(len(data), lambda start, length: data[start : start + length]).content_type


def glb_with(json_part: bytes, *, version: int = 2, extra: bytes = b"") -> bytes:
    body = struct.pack("<II", len(json_part), 0x4E4F534A) + json_part + extra
    return struct.pack("<4sII", b"glTF", version, 12 + len(body)) + body


def test_each_kind_is_told_by_its_bytes():
    assert kind_of(glb_box()) == "model/gltf-binary"
    assert kind_of(png_image()) == "image/png"
    assert kind_of(image_bytes("JPEG")) == "image/jpeg"
    assert kind_of(image_bytes("WEBP")) == "image/webp"
    assert kind_of(json.dumps({"asset": {"version": "2.0"}}).encode()) == "model/gltf+json"


def test_anything_else_is_a_download():
    assert kind_of(b"warp and weft") == "application/octet-stream"
    assert kind_of(b"") == "application/octet-stream"
    assert kind_of(b'{"not": "a model"}') == "application/octet-stream"
    assert kind_of(b"{ broken json") == "application/octet-stream"


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (glb_cut_short(), "cut short"),
        (glb_box() + b"\0\0\0\0", "cut short or has bytes appended"),
        (b"glTF\x02\0\0\0", "less than its 20-byte headers"),
        (glb_with(b'{"asset": {"version": "2.0"}}', version=1), "version 1"),
        (glb_with(b"not json at all!"), "not glTF JSON"),
        (glb_with(b'{"nodes": []}    '), "not glTF JSON"),
        (
            struct.pack("<4sII", b"glTF", 2, 28) + struct.pack("<II", 8, 0x004E4942) + bytes(8),
            "does not start with its JSON part",
        ),
        (
            glb_with(b'{"asset":{"version":"2.0"}}    ', extra=struct.pack("<II", 4, 7) + bytes(4)),
            "second part is not its binary buffer",
        ),
        (
            glb_with(b'{"asset":{"version":"2.0"}}    ', extra=struct.pack("<II", 400, 0x004E4942)),
            "past the file's end",
        ),
    ],
)
def test_malformed_glb_is_refused_with_its_reason(data, reason):
    with pytest.raises(MalformedAsset, match=reason):
        kind_of(data)
