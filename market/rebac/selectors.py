"""Reads: who may do what, answered by the engine over the stored tuples."""

from collections.abc import Iterable, Mapping

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

from market.rebac.engine import Graph
from market.rebac.market_model import market_model
from market.rebac.store import DatabaseTupleSource

# What an anonymous request is asked as: only grants to every user (`user:*`) reach it.
ANONYMOUS = "user:*"


def rebac_principal(user: AbstractBaseUser | AnonymousUser | None) -> str | None:
    """The subject string of a Django user, `user:<pk>`; None for an anonymous visitor."""
    if user is None or not user.is_authenticated:
        return None
    return f"user:{user.pk}"


def rebac_graph() -> Graph:
    """The market's model over the database's tuples."""
    return Graph(market_model(), DatabaseTupleSource())


def rebac_check(
    *,
    object: str,
    relation: str,
    user: str | None,
    contextual_tuples: Iterable[Mapping[str, str]] = (),
) -> bool:
    """Whether `user` (None: anonymous) holds `relation` on `object`."""
    return rebac_graph().check(object, relation, user or ANONYMOUS, contextual_tuples)


def rebac_list_objects(*, user: str | None, type: str, relation: str) -> list[str]:
    """Sorted objects of `type` on which `user` (None: anonymous) holds `relation`."""
    return rebac_graph().list_objects(user or ANONYMOUS, type, relation)


def rebac_users_of(*, object: str, relation: str) -> list[str]:
    """The subjects stored directly on `object#relation` (no rewriting, no inheritance)."""
    return list(DatabaseTupleSource().users_of(object, relation))
