"""Creators grant and revoke read access; revoking acts on the next request."""

import pytest
from django.contrib.auth.models import Group
from django.http import HttpRequest
from rest_framework.test import APIClient

from market.rebac.services import rebac_tuple_write

from .conftest import PASSWORD, chunk_stored

pytestmark = pytest.mark.django_db


def signed_in(user):
    client = APIClient()
    assert client.login(request=HttpRequest(), username=user.username, password=PASSWORD)
    return client


def readers_url(namespace):
    return f"/namespaces/{namespace.pk}/readers"


def chunk_status(client, digest):
    return client.get(f"/chunks/{digest}").status_code


def test_a_user_grant_lets_that_user_read_and_revoking_stops_it_at_once(
    namespace, writer, stranger
):
    digest = chunk_stored(b"woven" * 100, namespace)
    creator, reader = signed_in(writer), signed_in(stranger)
    assert chunk_status(reader, digest) == 403
    granted = creator.post(
        readers_url(namespace), {"kind": "user", "username": "stranger"}, format="json"
    )
    assert granted.status_code == 201 and granted.json()["subject"] == f"user:{stranger.pk}"
    assert chunk_status(reader, digest) == 200
    listed = creator.get(readers_url(namespace)).json()["readers"]
    assert [r["label"] for r in listed] == ["stranger"]
    assert (
        creator.delete(
            readers_url(namespace), {"kind": "user", "username": "stranger"}, format="json"
        ).status_code
        == 204
    )
    assert chunk_status(reader, digest) == 403
    assert (
        creator.delete(
            readers_url(namespace), {"kind": "user", "username": "stranger"}, format="json"
        ).status_code
        == 404
    )


def test_everyone_grant_serves_anonymous_readers_until_revoked_even_on_the_fast_path(
    namespace, writer
):
    digest = chunk_stored(b"public cloth" * 50, namespace)
    creator, anonymous = signed_in(writer), APIClient()
    assert chunk_status(anonymous, digest) == 403
    assert (
        creator.post(readers_url(namespace), {"kind": "everyone"}, format="json").status_code == 201
    )
    assert chunk_status(anonymous, digest) == 200  # now remembered as public by this process
    assert (
        creator.delete(readers_url(namespace), {"kind": "everyone"}, format="json").status_code
        == 204
    )
    assert chunk_status(anonymous, digest) == 403


def test_group_and_booth_visitor_grants_reach_their_members(namespace, writer, stranger, booth):
    digest = chunk_stored(b"group cloth" * 40, namespace)
    creator, reader = signed_in(writer), signed_in(stranger)
    press = Group.objects.create(name="press")
    rebac_tuple_write(object=f"group:{press.pk}", relation="member", user=f"user:{stranger.pk}")
    assert (
        creator.post(
            readers_url(namespace), {"kind": "group", "group": "press"}, format="json"
        ).status_code
        == 201
    )
    assert chunk_status(reader, digest) == 200
    creator.delete(readers_url(namespace), {"kind": "group", "group": "press"}, format="json")
    assert chunk_status(reader, digest) == 403
    rebac_tuple_write(object=f"booth:{booth.pk}", relation="visitor", user=f"user:{stranger.pk}")
    assert (
        creator.post(readers_url(namespace), {"kind": "visitors"}, format="json").status_code == 201
    )
    assert chunk_status(reader, digest) == 200


@pytest.mark.parametrize(
    "body, message",
    [
        ({"kind": "friends"}, "kind"),
        ({"kind": "user", "username": "nobody"}, "No user named"),
        ({"kind": "group", "group": "nobody"}, "No group named"),
        ("everyone", "kind"),
    ],
)
def test_malformed_grants_are_refused_with_a_reason_and_store_nothing(
    namespace, writer, body, message
):
    creator = signed_in(writer)
    answer = creator.post(readers_url(namespace), body, format="json")
    assert answer.status_code == 400 and message in answer.json()["detail"]
    assert creator.get(readers_url(namespace)).json()["readers"] == []


def test_only_writers_may_see_or_change_readers(namespace, stranger):
    intruder = signed_in(stranger)
    assert intruder.get(readers_url(namespace)).status_code == 403
    assert (
        intruder.post(readers_url(namespace), {"kind": "everyone"}, format="json").status_code
        == 403
    )
    assert APIClient().post(
        readers_url(namespace), {"kind": "everyone"}, format="json"
    ).status_code in (401, 403)
    assert signed_in(stranger).get("/namespaces/99999/readers").status_code == 403
