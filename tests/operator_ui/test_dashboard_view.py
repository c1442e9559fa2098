"""The dashboard page: signed-in operators of the live market only."""

import pytest

from market.live import live_market_set

pytestmark = pytest.mark.django_db


def test_anonymous_visitors_are_sent_to_sign_in(client, market):
    response = client.get("/dashboard/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=/dashboard/")


def test_a_signed_in_stranger_is_told_who_may_watch_and_how_to_become_one(
    client, django_user_model, market
):
    client.force_login(django_user_model.objects.create_user("sam", password="pw"))
    response = client.get("/dashboard/")
    assert response.status_code == 403
    assert b"Operators only" in response.content
    assert b"manage.py operator_add sam" in response.content


def test_an_operator_gets_the_page_with_its_feed_and_the_orbit_view_s_library(client, olga, market):
    client.force_login(olga)
    response = client.get("/dashboard/")
    assert response.status_code == 200
    page = response.content.decode()
    assert f'data-socket-path="/ws/markets/{market.pk}/operate/"' in page
    assert "vendor/three/three.module.js" in page and "operator_ui/dashboard.js" in page
    assert 'id="hud"' in page and "Tick time p99" in page


def test_a_superuser_may_watch_every_market(client, django_user_model, market):
    client.force_login(django_user_model.objects.create_superuser("root", password="pw"))
    assert client.get("/dashboard/").status_code == 200


def test_with_no_market_live_in_the_process_the_page_says_how_to_start_one(client, olga):
    live_market_set(None)
    client.force_login(olga)
    response = client.get("/dashboard/")
    assert response.status_code == 503
    assert b"python manage.py runmarket" in response.content
