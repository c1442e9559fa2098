"""Writes of relation tuples; each tuple is checked against the market's model first."""

from collections.abc import Iterable, Mapping

from django.db import transaction

from market.rebac.market_model import market_model
from market.rebac.models import RelationTuple
from market.rebac.selectors import rebac_check, rebac_list_objects
from market.rebac.store import as_rows, tuple_fields
from market.rebac.tuples import validate_tuple

# Checks live in selectors; they are importable from here too, so a caller finds every
# entry point of the relation engine in one module.
__all__ = [
    "rebac_check",
    "rebac_list_objects",
    "rebac_tuple_delete",
    "rebac_tuple_write",
    "rebac_tuples_write",
]


def rebac_tuples_write(*, tuples: Iterable[Mapping[str, str]]) -> None:
    """Store `tuples` (those already stored are kept); if any is refused, none is stored."""
    model = market_model()
    checked = [validate_tuple(model, t) for t in tuples]
    rows = as_rows({"object": o, "relation": r, "user": u} for o, r, u in checked)
    with transaction.atomic():
        RelationTuple.objects.bulk_create(rows, ignore_conflicts=True)


def rebac_tuple_write(*, object: str, relation: str, user: str) -> None:
    """Store `object#relation@user` once; writing it again changes nothing."""
    rebac_tuples_write(tuples=[{"object": object, "relation": relation, "user": user}])


def rebac_tuple_delete(*, object: str, relation: str, user: str) -> bool:
    """Delete `object#relation@user`; whether it was stored.

    Only the strings' form is checked, not the model, so tuples the model no longer
    allows can still be removed.
    """
    deleted, _ = RelationTuple.objects.filter(**tuple_fields(object, relation, user)).delete()
    return deleted > 0
