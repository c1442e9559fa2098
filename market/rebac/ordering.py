"""Object names of one type as small integers, and sorted listings made from them.

A listing of tens of thousands of objects spends most of its time sorting their names: the
strings lie all over the heap and every comparison reads two of them. An `ObjectTable`
numbers each object of a type once (ids never change) and keeps the rank of every id in the
names' sorted order, in numpy arrays; a listing gathers ids, sorts and dedupes them as
integers by rank, and reads the names back in that order.

Objects added after the ranks were computed have no rank yet: a listing sorts their names
apart and merges the two sorted lists. Once those unranked objects are more than
`RERANK_FROM` and an eighth of the ranked ones, the next listing ranks every object again,
so each rank computed costs a bounded share of the objects added since.
"""

from array import array
from collections.abc import Iterable, Sequence

import numpy as np

RERANK_FROM = 1_024
ID_CODE = "q"  # array code of the id runs: 64-bit signed, numpy's int64


def id_run() -> array:
    """An empty run of object ids."""
    return array(ID_CODE)


class ObjectTable:
    """The objects of one type: id ↔ name, and each ranked id's place in the names' order."""

    __slots__ = ("ids", "names", "ranked", "ranks", "by_rank")

    def __init__(self) -> None:
        self.ids: dict[str, int] = {}
        self.names: list[str] = []
        self.ranked = 0  # ids below this have a rank
        self.ranks = np.empty(0, dtype=np.int64)  # id → rank, for ranked ids
        self.by_rank = np.empty(0, dtype=object)  # rank → name

    def id(self, name: str) -> int:
        """The id of `name`, numbering it if it is new."""
        number = self.ids.get(name)
        if number is None:
            number = self.ids[name] = len(self.names)
            self.names.append(name)
        return number

    def rank(self) -> None:
        """Rank every object numbered so far by its name."""
        names = self.names
        order = sorted(range(len(names)), key=names.__getitem__)
        ranks = np.empty(len(names), dtype=np.int64)
        ranks[np.asarray(order, dtype=np.int64)] = np.arange(len(names), dtype=np.int64)
        by_rank = np.empty(len(names), dtype=object)
        by_rank[:] = [names[i] for i in order]
        self.ranks, self.by_rank, self.ranked = ranks, by_rank, len(names)

    def stale(self) -> bool:
        """Whether enough objects came after the ranks that the next listing ranks anew."""
        unranked = len(self.names) - self.ranked
        return unranked > RERANK_FROM and unranked * 8 > self.ranked

    def sorted_names(self, runs: Sequence[array], loose: Iterable[str] = ()) -> list[str]:
        """The names of the ids in `runs` and the names `loose`, sorted, each once."""
        if self.stale():
            self.rank()
        ids = array(ID_CODE)
        for run in runs:
            ids += run
        numbers = np.frombuffer(ids, dtype=np.int64) if ids else np.empty(0, dtype=np.int64)
        ranked = numbers < self.ranked
        if ranked.all():
            apart = []
        else:
            names = self.names
            apart = [names[i] for i in np.unique(numbers[~ranked]).tolist()]
            numbers = numbers[ranked]
        known = []
        for name in loose:
            number = self.ids.get(name)
            if number is None or number >= self.ranked:
                apart.append(name)
            else:
                known.append(number)
        if known:
            numbers = np.concatenate([numbers, np.asarray(known, dtype=np.int64)])
        listed = self.by_rank[np.unique(self.ranks[numbers])].tolist()
        if not apart:
            return listed
        listed += sorted(set(apart))
        listed.sort()  # two sorted runs: one merge
        return listed
