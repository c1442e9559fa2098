"""nginx in front of a running market (chunks/front.py): readable chunks sent by nginx, the
rest by the market, and revokes made by another process honoured within the stated bound."""

import json
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from chunks.front import chunk_front_config, nginx_standalone_config
from tests.conftest import service_missing
from tests.live import free_port, live_market

DECISION_SECONDS = 1
# nginx dates what it keeps in whole seconds: a yes kept for 1 s may be used for up to 2 s.
BOUND_S = DECISION_SECONDS + 1
# Time for this test to ask again once the bound has passed, on a busy machine; a memory
# stacked on nginx's (the market's own 2 s) would still overshoot it.
SLACK_S = 0.75

SETUP = """
import json
from django.contrib.auth import get_user_model
from chunks.access import namespace_reader_grant
from chunks.models import Chunk, ChunkNamespace
from chunks.services import namespace_create
from chunks.storage import chunk_store
from market.asset_tokens import asset_token_issue
from market.booth_visitors import booth_visitor_set
from market.models import Booth, Market
from market.rebac.services import rebac_tuple_write
import blake3

market = Market.objects.create(name="Front", slug="front-test")
booth = Booth.objects.create(market=market, name="Looms", zone_index=0)
public = namespace_create(slug="front-public", name="Public", booth=booth)
rebac_tuple_write(object=public.rebac_object, relation="reader", user="user:*")
visitors = namespace_create(slug="front-visitors", name="Visitors", booth=booth)
namespace_reader_grant(namespace=visitors, spec={"kind": "visitors"})
hashes = {}
for name, namespace, data in (("public", public, b"p" * 65536), ("visitors", visitors, b"v" * 4096)):
    digest = blake3.blake3(data).hexdigest()
    path = chunk_store().path_for(digest)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    Chunk.objects.create(hash=digest, size=len(data))
    ChunkNamespace.objects.create(chunk_id=digest, namespace=namespace)
    hashes[name] = digest
booth_visitor_set(market_id=market.pk, entity=7, zone=0)
print(json.dumps({**hashes, "market": market.pk, "public_namespace": public.pk,
                  "token": asset_token_issue(market.pk, 7)}))
"""


@pytest.fixture(scope="module")
def nginx() -> str:
    path = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    if path is None:
        service_missing("nginx is not installed; on Debian: apt-get install -y nginx")
    return path


@pytest.fixture
def front(tmp_path, nginx):
    """A market, its setup, and nginx in front of it: (front URL, market, setup)."""
    with live_market(tmp_path / "data") as market:
        made = market.manage("shell", "-c", SETUP)
        assert made.returncode == 0, made.stderr
        setup = json.loads(made.stdout.strip().splitlines()[-1])
        prefix = tmp_path / "nginx"
        prefix.mkdir()
        port = free_port()
        http = chunk_front_config(
            listen=f"127.0.0.1:{port}",
            upstream=market.address,
            cache_dir=prefix / "decisions",
            decision_seconds=DECISION_SECONDS,
            store_dir=tmp_path / "data" / "chunks",
        )
        conf = prefix / "nginx.conf"
        conf.write_text(nginx_standalone_config(prefix=prefix, http=http))
        process = subprocess.Popen(
            [nginx, "-p", str(prefix), "-c", str(conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 10
            while True:
                try:
                    fetch(url + "/healthz")
                    break
                except OSError:
                    assert process.poll() is None, (prefix / "error.log").read_text()
                    assert time.monotonic() < deadline, "nginx did not answer within 10 s"
                    time.sleep(0.1)
            yield url, market, setup
        finally:
            process.terminate()
            process.wait(timeout=10)


def fetch(url: str, headers: dict[str, str] | None = None, method: str = "GET"):
    """(status, headers, body) of one request; refusals too."""
    request = urllib.request.Request(url, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def from_disk(headers) -> bool:
    """nginx sent the file itself (it dates files; the market never does)."""
    return headers.get("Last-Modified") is not None


def seconds_until_refused(url: str, headers: dict[str, str]) -> float:
    start = time.monotonic()
    while fetch(url, headers)[0] == 200:
        assert time.monotonic() - start < 10, "still served 10 s after the revoke"
        time.sleep(0.02)
    return time.monotonic() - start


def test_readable_chunks_come_from_disk_and_the_rest_from_the_market(front):
    url, _, setup = front
    bearer = {"Authorization": f"Bearer {setup['token']}"}
    public, visitors = f"{url}/chunks/{setup['public']}", f"{url}/chunks/{setup['visitors']}"

    anonymous = fetch(public)
    head = fetch(public, method="HEAD")
    visitor = fetch(visitors, bearer)
    refused = fetch(visitors)
    token = setup["token"]
    altered = token[:-1] + ("0" if token[-1] != "0" else "1")  # one hex digit of the signature
    forged = fetch(visitors, {"Authorization": f"Bearer {altered}"})
    ranged = fetch(visitors, {**bearer, "Range": "bytes=0-9"})
    missing = fetch(f"{url}/chunks/{'0' * 64}")

    assert anonymous[0] == 200 and anonymous[2] == b"p" * 65536 and from_disk(anonymous[1])
    assert anonymous[1]["ETag"] == f'"{setup["public"]}"'
    assert anonymous[1]["Cache-Control"] == "public, max-age=31536000, immutable"
    assert anonymous[1]["X-Content-Type-Options"] == "nosniff"
    assert anonymous[1]["Content-Type"] == "application/octet-stream"
    assert head[0] == 200 and head[1]["Content-Length"] == "65536" and head[2] == b""
    assert visitor[0] == 200 and visitor[2] == b"v" * 4096 and from_disk(visitor[1])
    assert visitor[1]["Cache-Control"] == "private, max-age=31536000, immutable"
    assert (refused[0], json.loads(refused[2])["error"]) == (403, "forbidden")
    assert forged[0] == 403 and "altered" in json.loads(forged[2])["detail"]
    assert ranged[0] == 206 and ranged[2] == b"v" * 10 and not from_disk(ranged[1])
    assert missing[0] == 403 and json.loads(missing[2])["error"] == "forbidden"
    assert fetch(f"{url}/healthz")[2] == b'{"ok": true}'


def test_a_revoke_in_another_process_stops_the_front_within_the_bound(front):
    url, market, setup = front
    public = f"{url}/chunks/{setup['public']}"
    assert fetch(public)[0] == 200

    revoked = market.manage(
        "shell",
        "-c",
        "from market.rebac.services import rebac_tuple_delete; "
        f"rebac_tuple_delete(object='namespace:{setup['public_namespace']}', "
        "relation='reader', user='user:*')",
    )
    assert revoked.returncode == 0, revoked.stderr

    assert seconds_until_refused(public, {}) <= BOUND_S + SLACK_S


def test_a_visitor_leaving_the_booth_is_refused_within_the_bound(front):
    url, market, setup = front
    visitors = f"{url}/chunks/{setup['visitors']}"
    bearer = {"Authorization": f"Bearer {setup['token']}"}
    assert fetch(visitors, bearer)[0] == 200

    left = market.manage(
        "shell",
        "-c",
        "from market.booth_visitors import booth_visitor_set; "
        f"booth_visitor_set(market_id={setup['market']}, entity=7, zone=None)",
    )
    assert left.returncode == 0, left.stderr

    assert seconds_until_refused(visitors, bearer) <= BOUND_S + SLACK_S


@pytest.mark.parametrize(
    ("field", "value", "named"),
    [
        ("listen", "80; include /etc/passwd", "listen"),
        ("upstream", "market", "upstream"),
        ("cache_dir", "/tmp/a b", "cache_dir"),
        ("decision_seconds", 0, "decision_seconds"),
        ("decision_seconds", 0.5, "decision_seconds"),
    ],
)
def test_a_malformed_setting_is_refused_by_name(tmp_path, field, value, named):
    given = {"listen": "127.0.0.1:80", "upstream": "127.0.0.1:8000", "cache_dir": tmp_path}
    given[field] = value

    with pytest.raises(ValueError, match=named):
        chunk_front_config(**given)


def test_the_command_prints_the_front_for_this_store(tmp_path):
    from tests.subprocesses import embedded_environment, run_manage

    env = embedded_environment(tmp_path, CHUNK_STORE_DIR=str(tmp_path / "store"))
    args = ("--listen", "0.0.0.0:80", "--upstream", "127.0.0.1:8000")
    printed = run_manage("chunk_front_config", *args, "--cache-dir", "/var/cache/f", env=env)
    refused = run_manage("chunk_front_config", *args, "--cache-dir", "/a;b", env=env)

    assert printed.returncode == 0, printed.stderr
    assert f"alias {tmp_path / 'store'}/$fabric_ab/$fabric_cd/$fabric_chunk;" in printed.stdout
    assert "proxy_cache_valid 200 1s;" in printed.stdout
    assert refused.returncode == 1 and "cache_dir" in refused.stderr
