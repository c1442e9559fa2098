"""Operators and creators: who they are is written in one place, the relation tuples.

An operator of a market holds `market:<id>#operator`; the dashboard (operator_ui/access.py)
and the admin (market/admin.py) both ask the relation engine, so granting or removing
that one tuple is all it takes, and nothing else can say otherwise. Operators are made
staff so that the admin lets them sign in; which objects they see there follows from
the tuple alone.

A booth's creator is shown in the `Booth.creator` field and holds `booth:<id>#creator`,
which lets them write the booth and its namespaces (docs/permissions.md). Every change
of the field goes through `booth_creator_set`, which moves the tuple with it and gives
the booth a namespace to upload to if it has none, so a creator can start at once.
"""

from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.db import transaction

from chunks.models import Namespace
from chunks.services import namespace_create
from market.models import Booth, Market
from market.rebac.selectors import rebac_list_objects, rebac_principal, rebac_users_of
from market.rebac.services import rebac_tuple_delete, rebac_tuple_write


def _subject(user: AbstractBaseUser) -> str:
    return f"user:{user.pk}"


def markets_operated(user: AbstractBaseUser | AnonymousUser | None) -> set[int]:
    """Ids of the markets `user` holds `operator` on (none for an anonymous user)."""
    principal = rebac_principal(user)
    if principal is None:
        return set()
    objects = rebac_list_objects(user=principal, type="market", relation="operator")
    return {int(object.partition(":")[2]) for object in objects}


def market_operators(market: Market) -> list[str]:
    """The subjects (`user:<pk>`) that operate `market`."""
    return rebac_users_of(object=f"market:{market.pk}", relation="operator")


def market_operator_add(*, market: Market, user: AbstractBaseUser) -> None:
    """Make `user` an operator of `market` (and staff, so that the admin lets them in)."""
    with transaction.atomic():
        rebac_tuple_write(object=f"market:{market.pk}", relation="operator", user=_subject(user))
        if not user.is_staff:  # type: ignore[attr-defined]
            user.is_staff = True  # type: ignore[attr-defined]
            user.save(update_fields=["is_staff"])


def market_operators_set(*, market: Market, users: list[AbstractBaseUser]) -> None:
    """Make exactly `users` the operators of `market`: others lose the tuple."""
    wanted = {_subject(user) for user in users}
    with transaction.atomic():
        for subject in set(market_operators(market)) - wanted:
            rebac_tuple_delete(object=f"market:{market.pk}", relation="operator", user=subject)
        for user in users:
            market_operator_add(market=market, user=user)


def booth_upload_namespace_ensure(booth: Booth) -> Namespace:
    """A namespace of the booth to upload to: its first, or a new `<market>-booth-<zone>`."""
    existing = Namespace.objects.filter(booth=booth).order_by("id").first()
    if existing is not None:
        return existing
    slug = f"{booth.market.slug}-booth-{booth.zone_index}"
    if Namespace.objects.filter(slug=slug).exists():
        slug = f"{slug}-{booth.pk}"
    return namespace_create(slug=slug, name=booth.name, booth=booth, market=booth.market)


def booth_creator_set(*, booth: Booth, user: AbstractBaseUser | None) -> None:
    """Make `user` the booth's creator (None: nobody), in the field and in the tuples."""
    booth_object = f"booth:{booth.pk}"
    wanted = None if user is None else _subject(user)
    with transaction.atomic():
        for subject in rebac_users_of(object=booth_object, relation="creator"):
            if subject != wanted:
                rebac_tuple_delete(object=booth_object, relation="creator", user=subject)
        if user is not None:
            rebac_tuple_write(object=booth_object, relation="creator", user=_subject(user))
            booth_upload_namespace_ensure(booth)
        if booth.creator_id != (None if user is None else user.pk):
            booth.creator = user  # type: ignore[assignment]
            booth.save(update_fields=["creator"])
