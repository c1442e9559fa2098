"""The upload page: for signed-in users only, offering the booths the relation engine lets
them write."""

import pytest
from django.http import HttpRequest

from chunks.services import namespace_create
from market.models import Booth
from market.rebac.services import rebac_tuple_write

from .conftest import PASSWORD

pytestmark = pytest.mark.django_db


def signed_in(client, user):
    assert client.login(request=HttpRequest(), username=user.username, password=PASSWORD)
    return client


def offered(response):
    """{booth name: [namespace slugs]} as the page's context lists them."""
    return {
        entry.booth.name: [namespace.slug for namespace in entry.namespaces]
        for entry in response.context["booths"]
    }


def test_an_anonymous_visitor_is_sent_to_sign_in_and_back(client):
    response = client.get("/upload/")

    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/upload/"


def test_signing_in_through_the_login_page_leads_to_the_upload_page(client, writer):
    form = client.get("/accounts/login/?next=/upload/")
    assert form.status_code == 200 and 'name="next" value="/upload/"' in form.content.decode()

    response = client.post(
        "/accounts/login/", {"username": "weaver", "password": PASSWORD, "next": "/upload/"}
    )

    assert response.status_code == 302 and response["Location"] == "/upload/"
    assert client.get("/upload/").status_code == 200


def test_a_wrong_password_is_told_on_the_login_page(client, writer):
    response = client.post("/accounts/login/", {"username": "weaver", "password": "wrong"})

    assert response.status_code == 200
    assert "enter a correct username and password" in response.content.decode()


def test_the_page_lists_only_the_namespaces_the_user_may_write(client, booth, namespace, writer):
    other_booth = Booth.objects.create(market=booth.market, name="Dye Works", zone_index=1)
    namespace_create(slug="dyes", name="Dyes", booth=other_booth)
    namespace_create(slug="looms-private", name="Private", booth=booth)

    response = signed_in(client, writer).get("/upload/")

    assert offered(response) == {"Looms": ["looms"]}
    page = response.content.decode()
    assert f'value="{namespace.pk}" data-booth="{booth.pk}"' in page
    assert "Dye Works" not in page and "dyes" not in page
    assert "chunks/upload.js" in page and "vendor/hash-wasm/blake3.umd.min.js" in page


def test_a_booth_creator_may_write_every_namespace_of_the_booth(client, booth, namespace, stranger):
    namespace_create(slug="looms-extra", name="Extra", booth=booth)
    rebac_tuple_write(object=f"booth:{booth.pk}", relation="creator", user=f"user:{stranger.pk}")

    response = signed_in(client, stranger).get("/upload/")

    assert offered(response) == {"Looms": ["looms", "looms-extra"]}


def test_a_market_operator_may_write_the_market_s_booth_namespaces(client, booth, stranger):
    namespace_create(slug="looms", name="Looms", booth=booth, market=booth.market)
    rebac_tuple_write(
        object=f"market:{booth.market.pk}", relation="operator", user=f"user:{stranger.pk}"
    )

    assert offered(signed_in(client, stranger).get("/upload/")) == {"Looms": ["looms"]}


def test_a_reader_is_not_offered_the_namespace_and_sees_why(client, namespace, stranger):
    rebac_tuple_write(object=namespace.rebac_object, relation="reader", user=f"user:{stranger.pk}")

    response = signed_in(client, stranger).get("/upload/")

    assert offered(response) == {}
    page = response.content.decode()
    assert "No booth to upload to yet" in page
    assert "chunks/upload.js" not in page


def test_the_page_sets_the_csrf_cookie_its_script_sends_back(client, namespace, writer):
    response = signed_in(client, writer).get("/upload/")

    assert "csrftoken" in response.cookies
    assert 'action="/accounts/logout/"' in response.content.decode()
