"""Who is asking, and what the relation engine lets them do with a namespace.

Every permission question in the chunk store goes through this module, so it
asks market.rebac in one way: `namespace:<pk>` objects, `user:<pk>` principals,
and `user:*` for anonymous requests (what the whole world has been granted).
"""

import threading
import time
from collections.abc import Sequence
from typing import NamedTuple

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import transaction

from market.asset_tokens import VISITOR_TYPE
from market.rebac.engine import Graph
from market.rebac.market_model import market_model
from market.rebac.selectors import rebac_tuple_source
from market.rebac.services import rebac_check

WORLD = "user:*"
CAN_READ = "can_read"
CAN_WRITE = "can_write"
MAX_REMEMBERED = 100_000
GENERATION_BUCKETS = 256


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


def read_access(namespace_ids: Sequence[int], principal: str) -> tuple[bool, bool]:
    """(whether `principal` may read one of the namespaces, whether the world may too),
    asked of one up-to-date view of the tuples.

    The second answer is only worked out when the first is yes: it decides whether a
    chunk's answers may be cached publicly.
    """
    if not namespace_ids:
        return False, False
    with rebac_tuple_source() as source:
        graph = Graph(market_model(), source)

        def may_read(namespace_id: int, who: str) -> bool:
            return graph.check(f"namespace:{namespace_id}", CAN_READ, who)

        allowed_by = next((n for n in namespace_ids if may_read(n, principal)), None)
        if allowed_by is None:
            return False, False
        if principal == WORLD:
            return True, True
        return True, any(may_read(n, WORLD) for n in namespace_ids)


class Asking(NamedTuple):
    """Taken before a decision is asked: when, and which forgetting had happened by then."""

    started: float
    generation: int
    principal_generation: int


class ReadableChunks:
    """Chunks recently found readable by a principal (the world, or a visitor), each for a
    limited time: what chunks.fastpath may serve without asking the relation engine again.

    An entry lives CHUNK_READ_CACHE_SECONDS, in this process only; that is the bound within
    which a revoke committed anywhere stops this process serving the chunk (plus
    REBAC_INDEX_POLL_SECONDS, how stale the check that made the entry may have been).
    Written from the event loop and, after a commit, from whichever thread committed: every
    change holds `_lock`; a lookup that finds a live entry does not need it.

    A decision is asked in a worker thread and remembered afterwards, so a revoke can
    commit (and forget) in between. `asking()`, taken before the decision, notes the time
    and the forgetting done so far: `clear()` counts in one generation, `forget_principal()`
    in one of GENERATION_BUCKETS counters (a principal's bucket by its hash). `remember()`
    given it stores nothing if either moved since, and counts the entry's lifetime from the
    asking, so no yes outlives its check by more than CHUNK_READ_CACHE_SECONDS.
    """

    def __init__(self) -> None:
        # (principal, hash) -> (until, size, public), oldest first
        self._until: dict[tuple[str, str], tuple[float, int, bool]] = {}
        self._of_principal: dict[str, set[str]] = {}
        self._lock = threading.Lock()
        self._generation = 0
        self._principal_generations = [0] * GENERATION_BUCKETS
        self.clock = time.monotonic

    def asking(self, principal: str) -> Asking:
        """Take before asking whether `principal` may read a chunk; give to `remember()`."""
        bucket = hash(principal) % GENERATION_BUCKETS
        with self._lock:
            return Asking(self.clock(), self._generation, self._principal_generations[bucket])

    def remember(
        self,
        principal: str,
        chunk_hash: str,
        size: int,
        public: bool,
        asked: Asking | None = None,
    ) -> None:
        """Note that `principal` may read `chunk_hash`, for CHUNK_READ_CACHE_SECONDS from
        `asked` (the decision's start; now without it). Nothing is noted when a forgetting
        that may concern `principal` happened since `asked`."""
        seconds = settings.CHUNK_READ_CACHE_SECONDS
        if seconds <= 0:
            return
        key = (principal, chunk_hash)
        bucket = hash(principal) % GENERATION_BUCKETS
        with self._lock:
            if asked is not None and (
                asked.generation != self._generation
                or asked.principal_generation != self._principal_generations[bucket]
            ):
                return  # a revoke committed while the decision was asked: it may be stale
            start = self.clock() if asked is None else asked.started
            self._until.pop(key, None)  # re-inserted last: the oldest go first
            self._until[key] = (start + seconds, size, public)
            self._of_principal.setdefault(principal, set()).add(chunk_hash)
            while len(self._until) > MAX_REMEMBERED:
                self._forget(*next(iter(self._until)))

    def lookup(self, principal: str, chunk_hash: str) -> tuple[int, bool] | None:
        """(size, whether the world may read it) while `principal` is known to be allowed to
        read the chunk, else None."""
        entry = self._until.get((principal, chunk_hash))
        if entry is None:
            return None
        until, size, public = entry
        if self.clock() >= until:
            self.forget(principal, chunk_hash)
            return None
        return size, public

    def size_of(self, chunk_hash: str) -> int | None:
        """The chunk's size while the world is known to be allowed to read it, else None."""
        found = self.lookup(WORLD, chunk_hash)
        return None if found is None else found[0]

    def forget(self, principal: str, chunk_hash: str) -> None:
        with self._lock:
            self._forget(principal, chunk_hash)

    def _forget(self, principal: str, chunk_hash: str) -> None:
        self._until.pop((principal, chunk_hash), None)
        hashes = self._of_principal.get(principal)
        if hashes is not None:
            hashes.discard(chunk_hash)
            if not hashes:
                del self._of_principal[principal]

    def forget_principal(self, principal: str) -> None:
        """Forget every chunk remembered for `principal`."""
        with self._lock:
            self._principal_generations[hash(principal) % GENERATION_BUCKETS] += 1
            for chunk_hash in list(self._of_principal.get(principal, ())):
                self._forget(principal, chunk_hash)

    def clear(self) -> None:
        with self._lock:
            self._generation += 1
            self._until.clear()
            self._of_principal.clear()

    def __len__(self) -> int:
        return len(self._until)


# Filled by the chunk view and by chunks.fastpath, read by chunks.fastpath; one per process.
readable_chunks = ReadableChunks()


def readable_chunks_forget_after_commit(instance: object, **_: object) -> None:
    """A relation tuple was deleted: forget what it may have granted once the deletion commits.

    Not before: a GET running meanwhile still sees the tuple, finds the chunk readable and
    remembers it again, and that memory would outlive the revoke. A booth visitor tuple
    (`booth:<id>#visitor@visitor:…`) grants only that visitor, so its deletion (at every
    booth a visitor walks out of) forgets that visitor's chunks only; any other deletion
    forgets everything. Other processes forget within CHUNK_READ_CACHE_SECONDS.
    """
    if getattr(instance, "subject_type", None) == VISITOR_TYPE:
        subject = f"{VISITOR_TYPE}:{instance.subject_id}"  # type: ignore[attr-defined]
        transaction.on_commit(lambda: readable_chunks.forget_principal(subject))
        return
    transaction.on_commit(readable_chunks.clear)
