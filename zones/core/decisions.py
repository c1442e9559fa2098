"""What a zone has answered to each transfer proposal, kept for good.

For every entity id a zone remembers the highest transfer epoch it has decided
on and the highest it has accepted. That is all it needs to answer a delayed or
duplicated intent exactly as it answered the first time.

The table is shared between a state and the copy `step` makes of it, and split
into buckets by id: a tick that records decisions copies only the buckets it
writes to, so copying a state costs the same however many entities the zone
has ever seen.
"""

BUCKETS = 256


class Decisions:
    """Copy-on-write map: entity id → (decided epoch, accepted epoch)."""

    __slots__ = ("_buckets", "_owned")

    def __init__(self) -> None:
        self._buckets: list[dict[int, tuple[int, int]]] = [{} for _ in range(BUCKETS)]
        self._owned = set(range(BUCKETS))

    def get(self, ident: int) -> tuple[int, int]:
        """(decided, accepted) epochs for `ident`; (0, 0) if never asked."""
        return self._buckets[ident % BUCKETS].get(ident, (0, 0))

    def record(self, ident: int, decided: int, accepted: int) -> None:
        """Remember a decision, copying the bucket first if a copy shares it."""
        b = ident % BUCKETS
        if b not in self._owned:
            self._buckets[b] = dict(self._buckets[b])
            self._owned.add(b)
        self._buckets[b][ident] = (decided, accepted)

    def copy(self) -> "Decisions":
        """A copy sharing every bucket with this one until either writes."""
        twin = Decisions.__new__(Decisions)
        twin._buckets = list(self._buckets)
        twin._owned = set()
        self._owned = set()  # the buckets are shared now, for both sides
        return twin

    def __len__(self) -> int:
        return sum(len(b) for b in self._buckets)
