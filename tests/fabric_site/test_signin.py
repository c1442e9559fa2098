"""Sign-in is limited per username and per address (django-axes): a locked-out attempt
is refused with 429 and Retry-After, without its password being checked."""

from datetime import timedelta

import pytest
from axes.models import AccessAttempt, AccessLog
from django.conf import settings
from django.test import Client
from django.utils import timezone

from tests.fabric_site.conftest import PASSWORD

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_password_hashing")]

LIMIT = settings.AXES_FAILURE_LIMIT
COOL_OFF_S = int(settings.AXES_COOLOFF_TIME.total_seconds())


def sign_in(username, password, address="192.0.2.1"):
    return Client(REMOTE_ADDR=address).post(
        "/accounts/login/", {"username": username, "password": password}
    )


def signed_in(answer):
    return answer.status_code == 302 and "_auth_user_id" in answer.client.session


def test_below_the_limit_the_right_password_still_signs_in(olga):
    for _ in range(LIMIT - 1):
        assert sign_in("olga", "wrong").status_code == 200

    assert signed_in(sign_in("olga", PASSWORD))


def test_after_the_limit_of_wrong_passwords_even_the_right_one_is_refused_unchecked(
    olga, password_checks
):
    for _ in range(LIMIT):
        sign_in("olga", "wrong")
    password_checks.clear()

    refused = sign_in("olga", PASSWORD)

    assert refused.status_code == 429
    assert refused["Retry-After"] == str(COOL_OFF_S)
    assert "Too many failed sign-ins" in refused.content.decode()
    assert "_auth_user_id" not in refused.client.session
    assert password_checks == []


def test_a_username_is_locked_out_whatever_address_the_attempts_come_from(olga):
    for n in range(LIMIT):
        sign_in("olga", "wrong", address=f"198.51.100.{n + 1}")

    assert sign_in("olga", PASSWORD, address="203.0.113.9").status_code == 429


def test_an_address_is_locked_out_whatever_usernames_it_tries(olga, django_user_model):
    django_user_model.objects.create_user("ivan", password=PASSWORD)
    for n in range(LIMIT):
        sign_in(f"guess{n}", "wrong", address="192.0.2.7")

    assert sign_in("ivan", PASSWORD, address="192.0.2.7").status_code == 429
    assert signed_in(sign_in("ivan", PASSWORD, address="192.0.2.8"))


def test_the_admin_sign_in_is_limited_too(django_user_model):
    django_user_model.objects.create_superuser("root", password=PASSWORD)
    client = Client(REMOTE_ADDR="192.0.2.1")
    for _ in range(LIMIT):
        client.post("/admin/login/", {"username": "root", "password": "wrong"})

    refused = client.post("/admin/login/", {"username": "root", "password": PASSWORD})

    assert refused.status_code == 429


def test_the_lockout_ends_after_the_cool_off(olga):
    for _ in range(LIMIT):
        sign_in("olga", "wrong")
    assert sign_in("olga", PASSWORD).status_code == 429

    AccessAttempt.objects.update(
        attempt_time=timezone.now() - settings.AXES_COOLOFF_TIME - timedelta(seconds=1)
    )

    assert signed_in(sign_in("olga", PASSWORD))


def test_attempts_while_locked_out_neither_extend_the_lockout_nor_add_rows(olga):
    for _ in range(LIMIT):
        sign_in("olga", "wrong")
    rows = list(AccessAttempt.objects.values_list("pk", "failures_since_start", "attempt_time"))

    for n in range(5):
        assert sign_in("olga", "wrong").status_code == 429
        assert sign_in(f"other{n}", "wrong").status_code == 429  # a new username, same address

    assert list(
        AccessAttempt.objects.values_list("pk", "failures_since_start", "attempt_time")
    ) == (rows)


def test_a_successful_sign_in_leaves_no_row_behind(olga):
    assert signed_in(sign_in("olga", PASSWORD))

    assert AccessLog.objects.count() == 0 and AccessAttempt.objects.count() == 0
