"""Creators: `creator_add`, the booth's creator field in the admin and the admin action all
give the creator what a creator needs on the booth, and take it from the one before."""

import pytest
from django.core.management import CommandError, call_command
from django.test import Client

from chunks.models import Namespace
from chunks.selectors import booths_writable
from chunks.services import namespace_create
from market.models import Booth, Market
from market.rebac.selectors import rebac_check

pytestmark = pytest.mark.django_db


@pytest.fixture
def booth():
    market = Market.objects.create(name="Weavers' Row", slug="weavers-row")
    Booth.objects.create(market=market, name="Dyes", zone_index=1)
    return Booth.objects.create(market=market, name="Looms", zone_index=0)


@pytest.fixture
def root(django_user_model):
    client = Client()
    client.force_login(django_user_model.objects.create_superuser("root", password="pw"))
    return client


def creates(user, booth):
    """Whether `user` may write the booth and is offered it on the upload page."""
    writes = rebac_check(object=f"booth:{booth.pk}", relation="can_write", user=f"user:{user.pk}")
    offered = [entry.booth.pk for entry in booths_writable(user=user)]
    return writes and booth.pk in offered


def test_creator_add_makes_a_new_user_who_may_upload_to_the_booth(booth, django_user_model, capsys):
    call_command("creator_add", "cleo", "--booth", str(booth.pk), "--password", "weft and warp")

    cleo = django_user_model.objects.get(username="cleo")
    booth.refresh_from_db()
    assert cleo.check_password("weft and warp")
    assert booth.creator == cleo
    assert creates(cleo, booth)
    namespace = Namespace.objects.get(booth=booth)
    assert namespace.slug == "weavers-row-booth-0"
    assert not creates(cleo, Booth.objects.get(name="Dyes"))
    assert "cleo creates Looms" in capsys.readouterr().out


def test_creator_add_twice_changes_nothing_more(booth, django_user_model):
    call_command("creator_add", "cleo", "--booth", str(booth.pk), "--password", "pw")
    call_command("creator_add", "cleo", "--booth", str(booth.pk))

    assert Namespace.objects.filter(booth=booth).count() == 1
    assert creates(django_user_model.objects.get(username="cleo"), booth)


def test_creator_add_uses_a_namespace_the_booth_already_has(booth, django_user_model):
    existing = namespace_create(slug="looms", name="Looms", booth=booth, market=booth.market)
    cleo = django_user_model.objects.create_user("cleo", password="pw")

    call_command("creator_add", "cleo", "--booth", str(booth.pk))

    assert list(Namespace.objects.filter(booth=booth)) == [existing]
    assert creates(cleo, booth)


def test_a_booth_with_another_creator_is_handed_over_only_with_replace(booth, django_user_model):
    call_command("creator_add", "cleo", "--booth", str(booth.pk), "--password", "pw")
    cleo = django_user_model.objects.get(username="cleo")

    with pytest.raises(
        CommandError, match=r"Looms \(booth \d+\) is created by cleo; give --replace"
    ):
        call_command("creator_add", "dora", "--booth", str(booth.pk), "--password", "pw")
    assert not django_user_model.objects.filter(username="dora").exists()  # nothing kept
    assert creates(cleo, booth)

    call_command("creator_add", "dora", "--booth", str(booth.pk), "--password", "pw", "--replace")
    dora = django_user_model.objects.get(username="dora")
    assert creates(dora, booth) and not creates(cleo, booth)


def test_creator_add_refuses_an_unknown_booth_naming_the_booths(booth, django_user_model):
    with pytest.raises(CommandError, match=r"There is no booth 999\. Booths: .*Looms"):
        call_command("creator_add", "cleo", "--booth", "999", "--password", "pw")
    assert not django_user_model.objects.filter(username="cleo").exists()


def test_on_a_fresh_database_the_demo_market_s_booths_are_there_to_take(django_user_model):
    with pytest.raises(
        CommandError, match=r"There is no booth 999\. Booths: \d+ \(Loom & Thread\)"
    ):
        call_command("creator_add", "cleo", "--booth", "999", "--password", "pw")

    demo = Booth.objects.get(name="Loom & Thread")
    call_command("creator_add", "cleo", "--booth", str(demo.pk), "--password", "pw")
    assert creates(django_user_model.objects.get(username="cleo"), demo)


def test_creator_add_refuses_a_missing_user_without_a_password(booth, django_user_model):
    with pytest.raises(CommandError, match="No user named nobody; give --password"):
        call_command("creator_add", "nobody", "--booth", str(booth.pk))
    booth.refresh_from_db()
    assert booth.creator is None and not Namespace.objects.exists()


def booth_form(booth, creator):
    return {
        "market": booth.market_id,
        "name": booth.name,
        "colour": booth.colour,
        "zone_index": booth.zone_index,
        "creator": "" if creator is None else creator.pk,
    }


def test_setting_the_creator_in_the_admin_grants_and_changing_it_revokes(
    booth, root, django_user_model
):
    cleo = django_user_model.objects.create_user("cleo", password="pw")
    dora = django_user_model.objects.create_user("dora", password="pw")
    url = f"/admin/market/booth/{booth.pk}/change/"

    assert root.post(url, booth_form(booth, cleo)).status_code == 302
    assert creates(cleo, booth)

    assert root.post(url, booth_form(booth, dora)).status_code == 302
    assert creates(dora, booth) and not creates(cleo, booth)

    assert root.post(url, booth_form(booth, None)).status_code == 302
    assert not creates(dora, booth)


def test_setting_the_creator_in_the_market_s_list_of_booths_grants(booth, root, django_user_model):
    cleo = django_user_model.objects.create_user("cleo", password="pw")
    market = booth.market
    booths = list(market.booths.order_by("pk"))
    data = {
        "name": market.name,
        "slug": market.slug,
        "width_x_m": market.width_x_m,
        "depth_z_m": market.depth_z_m,
        "height_y_m": market.height_y_m,
        "booths-TOTAL_FORMS": len(booths),
        "booths-INITIAL_FORMS": len(booths),
    }
    for i, each in enumerate(booths):
        data |= {f"booths-{i}-{k}": v for k, v in booth_form(each, None).items()}
        data[f"booths-{i}-id"] = each.pk
        data[f"booths-{i}-market"] = market.pk
    index = booths.index(booth)
    data[f"booths-{index}-creator"] = cleo.pk

    saved = root.post(f"/admin/market/market/{market.pk}/change/", data)

    assert saved.status_code == 302, saved.content.decode()[:2000]
    assert creates(cleo, booth)


def test_the_admin_action_makes_a_user_creator_of_the_booths_chosen(booth, root, django_user_model):
    cleo = django_user_model.objects.create_user("cleo", password="pw")
    chosen = {"action": "make_creator", "_selected_action": [booth.pk]}

    form = root.post("/admin/market/booth/", chosen)
    assert form.status_code == 200 and 'name="creator"' in form.content.decode()
    assert not creates(cleo, booth)

    done = root.post("/admin/market/booth/", {**chosen, "apply": "1", "creator": cleo.pk})

    assert done.status_code == 302
    assert creates(cleo, booth)
    booth.refresh_from_db()
    assert booth.creator == cleo
