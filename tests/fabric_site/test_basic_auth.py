"""HTTP Basic: a success is remembered briefly (no hash on every request), never the
password itself; failures are limited like every sign-in."""

import base64
import pickle

import pytest
from django.conf import settings
from django.core.cache import caches
from django.test import RequestFactory
from rest_framework import exceptions
from rest_framework.request import Request

from fabric_site.basic_auth import CREDENTIALS_CACHE, BoundedBasicAuthentication
from tests.chunks.asgi_calls import asgi_call, basic_auth
from tests.fabric_site.conftest import PASSWORD

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_password_hashing")]

HASH = "0" * 64


@pytest.fixture(autouse=True)
def nothing_remembered():
    caches[CREDENTIALS_CACHE].clear()
    yield
    caches[CREDENTIALS_CACHE].clear()


def basic(username, password, address="192.0.2.1"):
    """Authenticate one request carrying these Basic credentials; the user, or the error."""
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    request = RequestFactory().get("/", HTTP_AUTHORIZATION=f"Basic {token}", REMOTE_ADDR=address)
    try:
        return BoundedBasicAuthentication().authenticate(Request(request))[0]
    except exceptions.APIException as error:
        return error


def test_a_success_is_remembered_so_the_password_is_hashed_once(olga, password_checks):
    for _ in range(5):
        assert basic("olga", PASSWORD) == olga

    assert password_checks == ["olga"]


def test_a_wrong_password_is_never_answered_from_memory(olga, password_checks):
    assert basic("olga", PASSWORD) == olga

    assert isinstance(basic("olga", "wrong"), exceptions.AuthenticationFailed)
    assert isinstance(basic("olga", "wrong"), exceptions.AuthenticationFailed)
    assert password_checks == ["olga", "olga", "olga"]


def test_a_changed_password_ends_the_remembered_success_at_once(olga):
    assert basic("olga", PASSWORD) == olga

    olga.set_password("a new one")
    olga.save()

    assert isinstance(basic("olga", PASSWORD), exceptions.AuthenticationFailed)
    assert basic("olga", "a new one") == olga


def test_a_deactivated_user_is_refused_at_once(olga):
    assert basic("olga", PASSWORD) == olga

    olga.is_active = False
    olga.save()

    assert isinstance(basic("olga", PASSWORD), exceptions.AuthenticationFailed)


def test_successes_are_remembered_only_as_long_as_the_setting_says(olga, password_checks, settings):
    settings.BASIC_AUTH_CACHE_SECONDS = 0  # expired as soon as written

    basic("olga", PASSWORD)
    basic("olga", PASSWORD)

    assert password_checks == ["olga", "olga"]


def test_memory_holds_neither_the_password_nor_the_username_in_clear(olga):
    basic("olga", PASSWORD)

    remembered = caches[CREDENTIALS_CACHE]._cache  # the locmem backend's own dictionary
    assert len(remembered) == 1
    for key, value in remembered.items():
        stored = key.encode() + pickle.dumps(pickle.loads(value))
        assert PASSWORD.encode() not in stored and b"olga" not in stored
        assert olga.password.encode() not in stored


def test_after_the_limit_of_failures_basic_is_refused_with_429_without_hashing(
    olga, password_checks
):
    for _ in range(settings.AXES_FAILURE_LIMIT):
        basic("olga", "wrong")
    password_checks.clear()

    refused = basic("olga", PASSWORD)

    assert isinstance(refused, exceptions.Throttled)
    assert refused.wait == settings.AXES_COOLOFF_TIME.total_seconds()
    assert "Too many failed sign-ins" in str(refused.detail)
    assert password_checks == []


@pytest.mark.django_db(transaction=True)
async def test_a_locked_out_chunk_request_gets_429_with_retry_after(olga):
    for _ in range(settings.AXES_FAILURE_LIMIT):
        await asgi_call("GET", f"/chunks/{HASH}", headers=[basic_auth("olga", "wrong")])

    answer = await asgi_call("GET", f"/chunks/{HASH}", headers=[basic_auth("olga", PASSWORD)])

    assert answer.status == 429
    assert answer.headers["retry-after"] == str(int(settings.AXES_COOLOFF_TIME.total_seconds()))
    assert answer.json()["error"] == "too_many_requests"
    missing = await asgi_call(
        "POST",
        "/chunks/missing",
        headers=[basic_auth("olga", PASSWORD), (b"content-type", b"application/json")],
        pieces=[b'{"namespace": "x", "hashes": []}'],
    )
    assert missing.status == 429
    assert missing.json()["error"] == "too_many_requests"
