"""Who is asking, and what the relation engine lets them do with a namespace.

Every permission question in the chunk store goes through this module, so it
asks market.rebac in one way: `namespace:<pk>` objects, `user:<pk>` principals,
and `user:*` for anonymous requests (what the whole world has been granted).
"""

import time
from collections.abc import Iterable

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import transaction

from market.asset_tokens import VISITOR_TYPE
from market.rebac.services import rebac_check

WORLD = "user:*"
CAN_READ = "can_read"
CAN_WRITE = "can_write"
MAX_REMEMBERED = 100_000


def principal_of(user: AbstractBaseUser | AnonymousUser) -> str:
    """The ReBAC subject for a Django user: `user:<pk>`, or `user:*` when anonymous.

    A visitor proven by an asset token (chunks/visitor_auth.py) names its own subject.
    """
    subject = getattr(user, "rebac_subject", None)
    if subject is not None:
        return str(subject)
    return f"user:{user.pk}" if user.is_authenticated else WORLD


def namespace_allows(namespace_id: int, relation: str, principal: str) -> bool:
    """Whether `principal` holds `relation` on `namespace:<namespace_id>`."""
    return rebac_check(object=f"namespace:{namespace_id}", relation=relation, user=principal)


def readable_namespace(namespace_ids: Iterable[int], principal: str) -> int | None:
    """The first of `namespace_ids` that `principal` can read, or None."""
    for namespace_id in namespace_ids:
        if namespace_allows(namespace_id, CAN_READ, principal):
            return namespace_id
    return None


def world_readable(namespace_ids: Iterable[int], principal: str, allowed_by: int) -> bool:
    """Whether anyone at all may read a chunk held by `namespace_ids`.

    `allowed_by` is the namespace that already let `principal` in; when the
    principal is the world itself, that grant settles the question.
    """
    if principal == WORLD:
        return True
    if namespace_allows(allowed_by, CAN_READ, WORLD):
        return True
    return readable_namespace((n for n in namespace_ids if n != allowed_by), WORLD) is not None


class PublicChunks:
    """Chunks recently found world-readable, with their sizes, each for a limited time."""

    def __init__(self) -> None:
        self._until: dict[str, tuple[float, int]] = {}

    def remember(self, chunk_hash: str, size: int) -> None:
        """Note that the world may read `chunk_hash`, for CHUNK_PUBLIC_CACHE_SECONDS."""
        seconds = settings.CHUNK_PUBLIC_CACHE_SECONDS
        if seconds <= 0:
            return
        self._until.pop(chunk_hash, None)  # re-inserted last: the oldest go first
        self._until[chunk_hash] = (time.monotonic() + seconds, size)
        while len(self._until) > MAX_REMEMBERED:
            del self._until[next(iter(self._until))]

    def size_of(self, chunk_hash: str) -> int | None:
        """The chunk's size while it is known to be world-readable, else None."""
        entry = self._until.get(chunk_hash)
        if entry is None:
            return None
        until, size = entry
        if time.monotonic() >= until:
            self.forget(chunk_hash)
            return None
        return size

    def forget(self, chunk_hash: str) -> None:
        self._until.pop(chunk_hash, None)

    def clear(self) -> None:
        self._until.clear()


# Filled by the chunk view, read by chunks.fastpath; one per process.
public_chunks = PublicChunks()


def public_chunks_forget_after_commit(instance: object, **_: object) -> None:
    """A relation tuple was deleted: forget every public chunk once the deletion commits.

    Not before: a GET running meanwhile still sees the tuple, finds the chunk public and
    remembers it again, and that memory would outlive the revoke. A booth visitor tuple
    (`booth:<id>#visitor@visitor:…`) grants only that visitor, never the world, so its
    deletion (at every booth a visitor walks out of) leaves the memory alone.
    """
    if getattr(instance, "subject_type", None) == VISITOR_TYPE:
        return
    transaction.on_commit(public_chunks.clear)
