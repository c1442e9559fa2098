"""`manage.py namespace_create`: a booth's namespace, with writers, from the command line."""

import pytest
from django.core.management import CommandError, call_command

from chunks.models import Namespace
from chunks.permissions import CAN_READ, CAN_WRITE, namespace_allows
from market.rebac.services import rebac_tuple_write

pytestmark = pytest.mark.django_db


def test_the_namespace_belongs_to_the_booth_and_its_writers_may_write_it(
    booth, writer, stranger, capsys
):
    call_command("namespace_create", booth=booth.pk, slug="looms", writer=["weaver"])

    namespace = Namespace.objects.get(slug="looms")
    assert (namespace.booth, namespace.market, namespace.name) == (booth, booth.market, "looms")
    assert namespace_allows(namespace.pk, CAN_WRITE, f"user:{writer.pk}")
    assert not namespace_allows(namespace.pk, CAN_READ, f"user:{stranger.pk}")
    assert capsys.readouterr().out.startswith(f"namespace {namespace.pk} 'looms' in booth")


def test_the_market_s_operators_may_write_it_without_being_named(booth, stranger):
    rebac_tuple_write(
        object=f"market:{booth.market.pk}", relation="operator", user=f"user:{stranger.pk}"
    )
    call_command("namespace_create", booth=booth.pk, slug="looms", name="Looms")

    assert namespace_allows(Namespace.objects.get().pk, CAN_WRITE, f"user:{stranger.pk}")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"booth": 999, "slug": "x"}, "There is no booth 999"),
        ({"slug": "x", "writer": ["nobody"]}, "No user named nobody"),
        ({"slug": "12"}, "at least one letter"),
    ],
)
def test_refusals_name_the_problem_and_create_nothing(booth, options, message):
    with pytest.raises(CommandError, match=message):
        call_command("namespace_create", **{"booth": booth.pk, **options})

    assert not Namespace.objects.exists()
