"""What a zone has answered to each transfer proposal, kept for good.

For every entity id a zone remembers the highest transfer epoch it has decided
on and the highest it has accepted. That is all it needs to answer a delayed or
duplicated intent exactly as it answered the first time.

The table is shared between a state and the copy `step` makes of it, and split
into buckets by id: a tick that records decisions copies only the buckets it
writes to, so copying a state costs the same however many entities the zone
has ever seen.
"""

import numpy as np

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

    def to_arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(ids, decided, accepted) of every decision, for a snapshot."""
        items = [(i, d, a) for bucket in self._buckets for i, (d, a) in bucket.items()]
        table = np.array(items, dtype=np.uint64).reshape(-1, 3)
        return table[:, 0].copy(), table[:, 1].copy(), table[:, 2].copy()

    @classmethod
    def from_arrays(cls, ids: np.ndarray, decided: np.ndarray, accepted: np.ndarray) -> "Decisions":
        """The table `to_arrays` described."""
        table = cls()
        for i, d, a in zip(ids.tolist(), decided.tolist(), accepted.tolist(), strict=True):
            table._buckets[i % BUCKETS][i] = (d, a)
        return table

    def __len__(self) -> int:
        return sum(len(b) for b in self._buckets)
