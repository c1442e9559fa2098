"""Fixtures shared by every test: the real services some tests talk to.

A test that needs Redis, NATS or PostgreSQL asks for `redis_url`, `nats_url` or
`postgres_url`.
When the service does not answer, the test is skipped with the command that
starts it, except in CI (CI=true), where a missing service is a failure.
"""

import os
import socket
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit

import psycopg
import pytest
import redis
from hypothesis import settings as hypothesis_settings


def service_missing(message: str) -> None:
    """Skip locally; fail in CI, where every service must be there."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def redis_url() -> str:
    """URL of a Redis that answers PING (TEST_REDIS_URL, default database 15)."""
    url = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
    host, port = urlsplit(url).hostname, urlsplit(url).port or 6379
    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except redis.RedisError as error:
        service_missing(
            f"Redis is not running on {host}:{port} ({error}); start it with: "
            f'redis-server --daemonize yes --bind {host} --port {port} --save "" --appendonly no'
        )
    return url


@pytest.fixture(scope="session")
def nats_url() -> str:
    """URL of a NATS server with JetStream enabled (TEST_NATS_URL, else NATS_URL)."""
    url = os.environ.get("TEST_NATS_URL") or os.environ.get("NATS_URL", "nats://127.0.0.1:4222")
    host, port = urlsplit(url).hostname or "127.0.0.1", urlsplit(url).port or 4222
    start = f"start it with: nats-server -js -a {host} -p {port} -sd <a data directory>"
    try:
        # A NATS server greets every connection with an INFO line naming its features.
        with socket.create_connection((host, port), timeout=2) as sock:
            greeting = sock.recv(4096)
    except OSError as error:
        service_missing(f"NATS is not running on {host}:{port} ({error}); {start}")
    if b'"jetstream":true' not in greeting:
        service_missing(f"NATS on {host}:{port} runs without JetStream; {start}")
    return url


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """URL of a PostgreSQL database that accepts connections (TEST_DATABASE_URL)."""
    url = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
    where = f"{urlsplit(url).hostname}:{urlsplit(url).port or 5432}"
    try:
        psycopg.connect(url, connect_timeout=2).close()
    except psycopg.Error as error:
        service_missing(
            f"PostgreSQL is not running on {where} ({error}); start it with: "
            "pg_ctlcluster 15 main start (pg_lsclusters lists the clusters)"
        )
    return url


# Tests check behaviour, not timings: a slow first call (a table being built, a
# noisy shared machine) must not fail a property.
hypothesis_settings.register_profile("fabric", deadline=None)
hypothesis_settings.load_profile("fabric")


@pytest.fixture(autouse=True)
def fresh_event_streams():
    """Every test starts with empty in-process event streams, as a new process would."""
    from market.events.streams import memory_backend_reset

    memory_backend_reset()
    yield
    memory_backend_reset()


@pytest.fixture
def channel_prefix(redis_url: str) -> Iterator[str]:
    """A FABRIC_CHANNEL_PREFIX no other market uses; its keys are deleted afterwards."""
    prefix = f"test{uuid.uuid4().hex[:12]}"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()
