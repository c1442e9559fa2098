"""The booth editor page: its creator gets the editor with the floor plan, others a 403."""

import json
import re

import pytest

from market.models import Booth, Market
from market.roles import booth_creator_set

pytestmark = pytest.mark.django_db


@pytest.fixture
def booths():
    market = Market.objects.create(name="Weavers' Row", slug="weavers-row")
    return [
        Booth.objects.create(market=market, name=name, zone_index=zone, colour=colour)
        for zone, (name, colour) in enumerate((("Looms", "#1f77b4"), ("Dyes", "#ff7f0e")))
    ]


@pytest.fixture
def creator(django_user_model, booths):
    user = django_user_model.objects.create_user("cleo")
    booth_creator_set(booth=booths[1], user=user)
    return user


def editor_data(answer) -> dict:
    found = re.search(
        r'<script id="editor-data" type="application/json">(.*?)</script>', answer.content.decode()
    )
    assert found, answer.content.decode()[:400]
    return json.loads(found.group(1))


def test_creator_gets_the_editor_with_the_markets_floor_plan(client, booths, creator):
    client.force_login(creator)

    answer = client.get(f"/booths/{booths[1].pk}/arrange/")

    assert answer.status_code == 200
    data = editor_data(answer)
    assert (data["booth"], data["zone"], data["name"]) == (booths[1].pk, 1, "Dyes")
    plan = data["plan"]
    assert [b["name"] for b in plan["layout"]["booths"]] == ["Looms", "Dyes"]
    grid = plan["columns"]["booth"]
    assert len(grid) == plan["columns"]["count"]
    assert {zone for column in grid for zone in column} == {0, 1}
    assert answer.cookies.get("csrftoken")


def test_anyone_else_is_refused_and_told_why(client, django_user_model, booths, creator):
    client.force_login(django_user_model.objects.create_user("sam"))

    theirs = client.get(f"/booths/{booths[1].pk}/arrange/")
    unowned = client.get(f"/booths/{booths[0].pk}/arrange/")
    missing = client.get("/booths/999/arrange/")

    assert theirs.status_code == unowned.status_code == missing.status_code == 403
    assert "Only a booth's creator arranges it" in theirs.content.decode()


def test_signed_out_visitors_are_sent_to_sign_in(client, booths):
    answer = client.get(f"/booths/{booths[0].pk}/arrange/")

    assert answer.status_code == 302
    assert "/accounts/login/" in answer["Location"]


def test_the_upload_page_links_the_creators_booths_to_their_editor(client, booths, creator):
    client.force_login(creator)

    page = client.get("/upload/").content.decode()

    assert f'href="/booths/{booths[1].pk}/arrange/"' in page
    assert f'href="/booths/{booths[0].pk}/arrange/"' not in page
