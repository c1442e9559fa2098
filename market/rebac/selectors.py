"""Reads: who may do what, answered by the engine over the stored tuples.

Checks and listings read this process's index of the tuples (live.py), brought up to date
from the change log first, unless `REBAC_TUPLE_INDEX` is off or the caller is inside
`transaction.atomic()`: there they read the table, which also shows the transaction's own
uncommitted writes.
"""

from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import connections

from market.rebac.engine import Graph
from market.rebac.live import live_index
from market.rebac.market_model import market_model
from market.rebac.store import DatabaseTupleSource
from market.rebac.tuples import TupleSource

# What an anonymous request is asked as: only grants to every user (`user:*`) reach it.
ANONYMOUS = "user:*"


def rebac_principal(user: AbstractBaseUser | AnonymousUser | None) -> str | None:
    """The subject string of a Django user, `user:<pk>`; None for an anonymous visitor."""
    if user is None or not user.is_authenticated:
        return None
    return f"user:{user.pk}"


def rebac_index_settings() -> tuple[bool, float]:
    """(whether checks read the process's tuple index, its REBAC_INDEX_POLL_SECONDS)."""
    enabled = getattr(settings, "REBAC_TUPLE_INDEX", True)
    poll_seconds = getattr(settings, "REBAC_INDEX_POLL_SECONDS", 0.0)
    if not isinstance(poll_seconds, int | float) or poll_seconds < 0:
        raise ValueError(
            f"REBAC_INDEX_POLL_SECONDS must be a number of seconds, 0 or more, not {poll_seconds!r}"
        )
    return bool(enabled), float(poll_seconds)


@contextmanager
def rebac_tuple_source(using: str = "default") -> Iterator[TupleSource]:
    """The tuples to read for the next answers: the up-to-date index, or the table."""
    enabled, poll_seconds = rebac_index_settings()
    if not enabled or connections[using].in_atomic_block:
        yield DatabaseTupleSource(using)
        return
    index = live_index(using, poll_seconds)
    with index.lock:
        index.refresh()
        yield index


def rebac_graph() -> Graph:
    """The market's model over the database's tuples, read from the table each time."""
    return Graph(market_model(), DatabaseTupleSource())


def rebac_check(
    *,
    object: str,
    relation: str,
    user: str | None,
    contextual_tuples: Iterable[Mapping[str, str]] = (),
) -> bool:
    """Whether `user` (None: anonymous) holds `relation` on `object`."""
    with rebac_tuple_source() as source:
        return Graph(market_model(), source).check(
            object, relation, user or ANONYMOUS, contextual_tuples
        )


def rebac_list_objects(*, user: str | None, type: str, relation: str) -> list[str]:
    """Sorted objects of `type` on which `user` (None: anonymous) holds `relation`."""
    with rebac_tuple_source() as source:
        return Graph(market_model(), source).list_objects(user or ANONYMOUS, type, relation)


def rebac_users_of(*, object: str, relation: str) -> list[str]:
    """The subjects stored directly on `object#relation` (no rewriting, no inheritance)."""
    return list(DatabaseTupleSource().users_of(object, relation))
