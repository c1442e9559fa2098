"""Uploads against a real server (`manage.py runmarket`): concurrency and broken clients."""

import http.client
import json
import os
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import blake3
import pytest

from tests.live import LiveMarket, live_market

SETUP = """
import json
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.contrib.sessions.backends.db import SessionStore
from chunks.services import namespace_create
from market.rebac.services import rebac_tuple_write

user = get_user_model().objects.create_user("uploader")
namespace = namespace_create(slug="live", name="Live")
rebac_tuple_write(object=namespace.rebac_object, relation="writer", user=f"user:{user.pk}")
rebac_tuple_write(object=namespace.rebac_object, relation="reader", user="user:*")
session = SessionStore()
session[SESSION_KEY] = str(user.pk)
session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
session[HASH_SESSION_KEY] = user.get_session_auth_hash()
session.create()
print(json.dumps({"session": session.session_key}))
"""
CSRF_TOKEN = "x" * 32  # a well-formed unmasked token; cookie and header must agree


@dataclass
class ChunkMarket:
    """A running market with a writer signed in, and its chunk store folder."""

    server: LiveMarket
    session: str
    store: Path

    @property
    def address(self) -> str:
        return self.server.address


@pytest.fixture(scope="module")
def market(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("live-chunks")
    with live_market(data_dir) as running:
        setup = running.manage("shell", "-c", SETUP)
        assert setup.returncode == 0, setup.stderr
        session = json.loads(setup.stdout.strip().splitlines()[-1])["session"]
        yield ChunkMarket(server=running, session=session, store=data_dir / "chunks")


def writer_headers(market):
    return {
        "Cookie": f"sessionid={market.session}; csrftoken={CSRF_TOKEN}",
        "X-CSRFToken": CSRF_TOKEN,
    }


def request(market, method, path, body=None, headers=None):
    host, port = market.address.split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=60)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def upload_files(store):
    return list((store / "tmp").glob("*"))


def test_concurrent_uploads_of_one_chunk_store_it_once(market):
    data = os.urandom(3 * 1024 * 1024 + 7)
    digest = blake3.blake3(data).hexdigest()
    uploaders = 12
    start = threading.Barrier(uploaders)
    statuses = []

    def upload():
        start.wait()
        status, _ = request(
            market, "PUT", f"/chunks/{digest}?namespace=live", data, writer_headers(market)
        )
        statuses.append(status)

    threads = [threading.Thread(target=upload) for _ in range(uploaders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert sorted(statuses) == [200] * (uploaders - 1) + [201]
    assert request(market, "GET", f"/chunks/{digest}") == (200, data)
    stored = list(market.store.rglob(digest))
    assert len(stored) == 1
    assert upload_files(market.store) == []


def test_client_that_hangs_up_mid_upload_leaves_nothing_behind(market):
    data = os.urandom(2 * 1024 * 1024)
    digest = blake3.blake3(data).hexdigest()
    host, port = market.address.split(":")
    head = (
        f"PUT /chunks/{digest}?namespace=live HTTP/1.1\r\nHost: {market.address}\r\n"
        + "".join(f"{name}: {value}\r\n" for name, value in writer_headers(market).items())
        + f"Content-Length: {len(data)}\r\n\r\n"
    ).encode()

    with socket.create_connection((host, int(port))) as client:
        client.sendall(head + data[: len(data) // 2])
        time.sleep(0.3)  # the server is now writing the first half to a temporary file

    deadline = time.monotonic() + 10
    while upload_files(market.store) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert upload_files(market.store) == []
    assert list(market.store.rglob(digest)) == []
    assert request(market, "GET", f"/chunks/{digest}")[0] == 403


def test_oversized_upload_is_refused_before_the_client_sends_its_body(market):
    host, port = market.address.split(":")
    head = (
        f"PUT /chunks/{'0' * 64}?namespace=live HTTP/1.1\r\nHost: {market.address}\r\n"
        + "".join(f"{name}: {value}\r\n" for name, value in writer_headers(market).items())
        + f"Content-Length: {1 << 40}\r\nExpect: 100-continue\r\n\r\n"
    ).encode()

    with socket.create_connection((host, int(port)), timeout=10) as client:
        client.sendall(head)
        answer = client.recv(65536).decode()

    assert answer.startswith("HTTP/1.1 413 ")
    assert "100 Continue" not in answer


def test_uploaded_chunk_is_served_with_public_caching(market):
    data = b"live and public"
    digest = blake3.blake3(data).hexdigest()
    status, body = request(
        market, "PUT", f"/chunks/{digest}?namespace=live", data, writer_headers(market)
    )
    host, port = market.address.split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    connection.request("HEAD", f"/chunks/{digest}")
    head = connection.getresponse()
    head.read()
    connection.close()

    assert status == 201, body
    assert head.status == 200
    assert head.getheader("Content-Length") == str(len(data))
    assert head.getheader("Cache-Control") == "public, max-age=31536000, immutable"
