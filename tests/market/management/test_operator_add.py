"""`manage.py operator_add`: who may watch the dashboard."""

import pytest
from django.core.management import CommandError, call_command

from market.models import Market
from operator_ui.access import may_operate

pytestmark = pytest.mark.django_db


def test_a_new_user_is_created_and_operates_the_demo_market(django_user_model, capsys):
    call_command("operator_add", "olga", "--password", "loom and shuttle")
    olga = django_user_model.objects.get(username="olga")
    market = Market.objects.get()
    assert olga.check_password("loom and shuttle")
    assert may_operate(olga, market.pk)
    assert "olga operates Demo Market" in capsys.readouterr().out


def test_an_existing_user_becomes_an_operator_of_the_market_named(django_user_model):
    sam = django_user_model.objects.create_user("sam", password="pw")
    other = Market.objects.create(name="Night Market", slug="night")
    call_command("operator_add", "sam", "--market", str(other.pk))
    assert may_operate(sam, other.pk)
    assert not may_operate(sam, other.pk + 1)


def test_a_missing_user_without_a_password_is_an_error_that_creates_nothing(django_user_model):
    with pytest.raises(CommandError, match="No user named nobody; give --password"):
        call_command("operator_add", "nobody")
    assert not django_user_model.objects.filter(username="nobody").exists()


def test_an_unknown_market_is_an_error(django_user_model):
    with pytest.raises(CommandError, match="There is no market 999"):
        call_command("operator_add", "olga", "--password", "pw", "--market", "999")
    assert not django_user_model.objects.filter(username="olga").exists()
