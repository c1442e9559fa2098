"""What an asset is, decided from its bytes: a glTF model, an image, or a plain download.

The name and the type a creator's browser declares are never trusted: a file called
`statue.png` whose bytes are a GLB is a model, and one called `statue.glb` that starts
like no model is a download. A file that starts with the GLB magic but is not a well-formed
GLB (binary glTF 2.0) is refused, with the reason, so that no visitor's browser is handed a
model it cannot load.
"""

import json
import struct
from collections.abc import Callable
from dataclasses import dataclass

GLB = "model/gltf-binary"
GLTF = "model/gltf+json"
PNG = "image/png"
JPEG = "image/jpeg"
WEBP = "image/webp"
DOWNLOAD = "application/octet-stream"

IMAGE_TYPES = (PNG, JPEG, WEBP)
MODEL_TYPES = (GLB, GLTF)

GLB_MAGIC = b"glTF"
GLB_HEADER = struct.Struct("<4sII")  # magic, version, total length
GLB_CHUNK_HEADER = struct.Struct("<II")  # chunk length, chunk type
GLB_JSON = 0x4E4F534A
GLB_BIN = 0x004E4942
GLTF_JSON_MAX_BYTES = 16 << 20
"""Largest JSON part of a model (GLB's first chunk, or a whole .gltf) that is parsed."""

SNIFF_BYTES = 64
"""How many leading bytes decide the type (a model's JSON is read further when needed)."""

ReadRange = Callable[[int, int], bytes]
"""Bytes [start, start + length) of the asset; fewer only at its end."""


class MalformedAsset(ValueError):
    """The bytes start like a model but are not a well-formed one; the message says why."""


@dataclass(frozen=True)
class AssetKind:
    """The type an asset's bytes show, as a MIME type."""

    content_type: str

    @property
    def is_image(self) -> bool:
        return self.content_type in IMAGE_TYPES

    @property
    def is_model(self) -> bool:
        return self.content_type in MODEL_TYPES


def asset_kind(size: int, read: ReadRange) -> AssetKind:
    """The type of an asset of `size` bytes read through `read`; MalformedAsset for a bad GLB."""
    head = read(0, min(size, SNIFF_BYTES))
    if head.startswith(GLB_MAGIC):
        glb_check(size, read)
        return AssetKind(GLB)
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return AssetKind(PNG)
    if head.startswith(b"\xff\xd8\xff"):
        return AssetKind(JPEG)
    if len(head) >= 12 and head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return AssetKind(WEBP)
    looks_json = head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"{")
    if looks_json and size <= GLTF_JSON_MAX_BYTES and gltf_json_is_model(read(0, size)):
        return AssetKind(GLTF)
    return AssetKind(DOWNLOAD)


def glb_check(size: int, read: ReadRange) -> None:
    """Raise MalformedAsset unless the bytes are a well-formed GLB (glTF 2.0 binary)."""
    if size < GLB_HEADER.size + GLB_CHUNK_HEADER.size:
        raise MalformedAsset(
            f"This GLB model is cut short: {size} bytes, less than its 20-byte headers."
        )
    _, version, length = GLB_HEADER.unpack(read(0, GLB_HEADER.size))
    if version != 2:
        raise MalformedAsset(f"This GLB model is glTF version {version}; only version 2 is shown.")
    if length != size:
        raise MalformedAsset(
            f"This GLB model says it is {length} bytes long but the file has {size}: "
            "it is cut short or has bytes appended."
        )
    position = GLB_HEADER.size
    index = 0
    while position < size:
        header = read(position, GLB_CHUNK_HEADER.size)
        if len(header) < GLB_CHUNK_HEADER.size:
            raise MalformedAsset(f"This GLB model's part {index} has a cut-off header.")
        chunk_length, chunk_type = GLB_CHUNK_HEADER.unpack(header)
        start = position + GLB_CHUNK_HEADER.size
        if start + chunk_length > size:
            raise MalformedAsset(
                f"This GLB model's part {index} claims {chunk_length} bytes, past the file's end."
            )
        if index == 0:
            if chunk_type != GLB_JSON:
                raise MalformedAsset("This GLB model does not start with its JSON part.")
            if chunk_length > GLTF_JSON_MAX_BYTES:
                raise MalformedAsset(
                    f"This GLB model's JSON part is {chunk_length} bytes; "
                    f"at most {GLTF_JSON_MAX_BYTES} are accepted."
                )
            if not gltf_json_is_model(read(start, chunk_length)):
                raise MalformedAsset(
                    "This GLB model's JSON part is not glTF JSON (an object with asset.version)."
                )
        elif index == 1 and chunk_type != GLB_BIN:
            raise MalformedAsset("This GLB model's second part is not its binary buffer.")
        position = start + chunk_length
        index += 1


def gltf_json_is_model(data: bytes) -> bool:
    """Whether `data` is glTF JSON: an object whose `asset` names a `version`."""
    try:
        document = json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError):
        return False
    asset = document.get("asset") if isinstance(document, dict) else None
    return isinstance(asset, dict) and isinstance(asset.get("version"), str)
