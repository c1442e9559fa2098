"""The asset client against a small HTTP server speaking the chunk API."""

import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from chunks.client import AssetClient, ChunkCache, ClientError, PermissionDenied
from chunks.client.__main__ import main as cli_main
from chunks.client.cache import CorruptChunk, chunk_hash
from tests.subprocesses import REPO_ROOT


def make_asset(name, data, size=1000):
    pieces = [data[i : i + size] for i in range(0, len(data), size)]
    chunks, offset = [], 0
    for piece in pieces:
        chunks.append(
            {
                "hash": chunk_hash(piece),
                "offset": offset,
                "size": len(piece),
                "url": f"/chunks/{chunk_hash(piece)}",
            }
        )
        offset += len(piece)
    return {"id": name, "name": name, "size": len(data), "chunks": chunks}, {
        c["hash"]: p for c, p in zip(chunks, pieces, strict=True)
    }


class Market:
    """What the fake server serves, and what it was asked."""

    def __init__(self):
        self.manifests, self.chunks, self.requests, self.forbidden = {}, {}, [], False


@pytest.fixture
def market():
    state = Market()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            state.requests.append(self.path)
            if state.forbidden:
                return self._send(403, b'{"detail": "forbidden"}')
            if self.path.startswith("/shards/"):
                booth = self.path.split("/")[2]
                body = state.manifests.get(booth)
                return (
                    self._send(200, json.dumps(body).encode()) if body else self._send(403, b"{}")
                )
            digest = self.path.rsplit("/", 1)[-1]
            return (
                self._send(200, state.chunks[digest])
                if digest in state.chunks
                else self._send(403, b"{}")
            )

        def _send(self, status, body):
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield state
    server.shutdown()


def publish(market, booth, *assets):
    built = [make_asset(name, data) for name, data in assets]
    market.manifests[str(booth)] = {"booth": booth, "assets": [a for a, _ in built]}
    for _, chunks in built:
        market.chunks.update(chunks)


def test_a_cold_fetch_rebuilds_every_asset_byte_for_byte_and_a_warm_one_downloads_nothing(
    market, tmp_path
):
    statue, banner = bytes(range(256)) * 40, b"banner" * 333
    publish(market, 7, ("statue.glb", statue), ("banner.png", banner))
    client, cache = AssetClient(market.url), ChunkCache(tmp_path / "cache")
    seen = []
    report = client.fetch_booth(7, cache, tmp_path / "out", progress=lambda *p: seen.append(p))
    assert (tmp_path / "out" / "statue.glb").read_bytes() == statue
    assert (tmp_path / "out" / "banner.png").read_bytes() == banner
    assert report.chunks_downloaded == report.chunks_total == 13 and report.chunks_cached == 0
    assert seen[-1][:2] == (13, 13)
    market.requests.clear()
    again = client.fetch_booth(7, cache, tmp_path / "again")
    assert again.chunks_downloaded == 0 and again.chunks_cached == 13
    assert market.requests == ["/shards/7/assets"]
    assert (tmp_path / "again" / "statue.glb").read_bytes() == statue


def test_a_chunk_whose_bytes_do_not_match_its_hash_never_enters_the_cache(market, tmp_path):
    publish(market, 1, ("a.bin", b"x" * 2500))
    victim = next(iter(market.chunks))
    market.chunks[victim] = b"y" * len(market.chunks[victim])
    cache = ChunkCache(tmp_path / "cache")
    with pytest.raises(CorruptChunk, match=victim):
        AssetClient(market.url).fetch_booth(1, cache, tmp_path / "out")
    assert not cache.has(victim)
    assert not list((tmp_path / "cache").rglob(".incoming-*"))


def test_forbidden_manifest_raises_permission_denied(market, tmp_path):
    publish(market, 1, ("a.bin", b"x" * 10))
    market.forbidden = True
    with pytest.raises(PermissionDenied) as caught:
        AssetClient(market.url).fetch_booth(1, ChunkCache(tmp_path / "c"), tmp_path / "o")
    assert caught.value.status == 403


def test_an_unreachable_market_is_a_clear_client_error(tmp_path):
    with pytest.raises(ClientError, match="no answer"):
        AssetClient("http://127.0.0.1:9", timeout=2).manifest(1)


def test_asset_names_cannot_escape_the_output_folder(market, tmp_path):
    publish(market, 2, ("../../etc/evil", b"z" * 10))
    report = AssetClient(market.url).fetch_booth(2, ChunkCache(tmp_path / "c"), tmp_path / "out")
    assert report.assets == [tmp_path / "out" / "evil"]


def test_a_manifest_with_a_gap_between_chunks_is_refused(market, tmp_path):
    publish(market, 3, ("a.bin", b"q" * 2500))
    market.manifests["3"]["assets"][0]["chunks"][1]["offset"] += 1
    with pytest.raises(CorruptChunk, match="offset"):
        AssetClient(market.url).fetch_booth(3, ChunkCache(tmp_path / "c"), tmp_path / "out")


def test_the_cache_refuses_names_that_are_not_hashes(tmp_path):
    cache = ChunkCache(tmp_path)
    for bad in ["../" + "a" * 61, "A" * 64, "a" * 63]:
        with pytest.raises(ValueError, match="not a lower-case BLAKE3"):
            cache.path(bad)


def test_command_line_fetch_reports_progress_and_totals(market, tmp_path, capsys):
    publish(market, 4, ("a.bin", bytes(i % 251 for i in range(3000))))
    code = cli_main(
        [
            "fetch",
            "--url",
            market.url,
            "--booth",
            "4",
            "--cache",
            str(tmp_path / "c"),
            "--out",
            str(tmp_path / "o"),
        ]
    )
    out, err = capsys.readouterr()
    assert code == 0 and "3 chunks downloaded" in out and "3/3 chunks" in err
    # identical pieces are one chunk: downloaded and cached once
    publish(market, 5, ("same.bin", b"k" * 3000))
    assert (
        cli_main(
            [
                "fetch",
                "--url",
                market.url,
                "--booth",
                "5",
                "--cache",
                str(tmp_path / "c"),
                "--out",
                str(tmp_path / "o"),
            ]
        )
        == 0
    )
    assert "1 chunks downloaded" in capsys.readouterr().out
    assert (tmp_path / "o" / "same.bin").read_bytes() == b"k" * 3000
    assert (
        cli_main(
            [
                "fetch",
                "--url",
                market.url,
                "--booth",
                "99",
                "--cache",
                str(tmp_path / "c"),
                "--out",
                str(tmp_path / "o"),
            ]
        )
        == 1
    )


def test_the_client_package_imports_no_django():
    probe = "import sys, chunks.client; print(any(m == 'django' or m.startswith('django.') for m in sys.modules))"
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO_ROOT, capture_output=True, text=True
    )
    assert result.stdout.strip() == "False", result.stderr
