"""static/visit/protocol.js decodes the interest frames zones/core/wire.py encodes, and refuses
the malformed ones with the reason, in Chromium. The page and its module are served from
static/ through Playwright's routing: no market is needed."""

import base64

import numpy as np
import pytest

from tests.subprocesses import REPO_ROOT
from zones.core.skeleton import BODY_DTYPE
from zones.core.wire import FRAME_ROW_DTYPE, frame_encode

ORIGIN = "http://fabric.test"


@pytest.fixture
def protocol(page):
    """A page that has imported protocol.js as `window.protocol`."""

    def serve(route):
        path = route.request.url.removeprefix(ORIGIN)
        if path == "/":
            route.fulfill(content_type="text/html", body="<!doctype html><title>protocol</title>")
        else:
            file = REPO_ROOT / path.lstrip("/")
            route.fulfill(content_type="text/javascript", body=file.read_text())

    page.route(ORIGIN + "/**", serve)
    page.goto(ORIGIN + "/")
    page.evaluate("async () => { window.protocol = await import('/static/visit/protocol.js'); }")
    return page


def decode(page, data: bytes):
    return page.evaluate(
        """b64 => {
            const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
            try {
                const f = window.protocol.decodeFrame(bytes.buffer);
                return {ok: true, ackSeq: f.ackSeq, tickMs: f.tickMs, far: f.far, bodies: f.bodies,
                        rows: f.rows.map(r => [String(r.id), r.x, r.y, r.z, r.vx, r.vy, r.vz, r.flags, r.zone])};
            } catch (error) {
                return {ok: false, error: error.message};
            }
        }""",
        base64.b64encode(data).decode(),
    )


def sample_rows() -> np.ndarray:
    rows = np.zeros(3, FRAME_ROW_DTYPE)
    rows["id"] = [(1 << 63) + 12345, 7, (1 << 40) + 1]  # above 2^53: must survive exactly
    rows["pos"] = [[6400, 100, 12799], [0, 0, 0], [65535, 200, 1]]
    rows["vel"] = [[-1000, 0, 1000], [1, -1, 0], [32767, 0, -32768]]
    rows["flags"] = [0x101, 0x400, 0x206]
    rows["zone"] = [0, 31, 2]
    return rows


def test_frames_decode_as_the_python_decoder_reads_them(protocol):
    rows = sample_rows()
    bodies = np.zeros(2, BODY_DTYPE)
    frame = frame_encode(rows, bodies, ack_seq=4_000_000_000, tick_ms=1_795_000_000_123, far=True)

    got = decode(protocol, frame)

    assert got["ok"], got
    assert (got["ackSeq"], got["tickMs"], got["far"], got["bodies"]) == (
        4_000_000_000,
        1_795_000_000_123,
        True,
        2,
    )
    for got_row, row in zip(got["rows"], rows, strict=True):
        assert got_row[0] == str(int(row["id"]))
        assert got_row[1:7] == pytest.approx([*(row["pos"] / 100), *(row["vel"] / 100)])
        assert got_row[7:] == [int(row["flags"]), int(row["zone"])]


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda f: f[:20], "shorter than its header"),
        (lambda f: b"XX" + f[2:], "magic"),
        (lambda f: f[:2] + b"\x01" + f[3:], "version 1, expected 2"),
        (lambda f: f[:3] + b"\x02" + f[4:], "kind 2"),
        (lambda f: f[:-1], "bytes, expected"),
        (lambda f: f + b"\0", "bytes, expected"),
    ],
)
def test_malformed_frames_are_refused_with_the_reason(protocol, mutate, reason):
    frame = frame_encode(sample_rows(), np.zeros(0, BODY_DTYPE), ack_seq=1, tick_ms=2, far=False)

    got = decode(protocol, mutate(frame))

    assert not got["ok"]
    assert reason in got["error"]
