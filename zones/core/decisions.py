"""What a zone has answered to each transfer proposal, for as long as it can matter.

For every entity id a zone remembers the highest transfer epoch it has decided
on, the highest it has accepted, and its clock when it last decided. That is all
it needs to answer a delayed or duplicated intent exactly as it answered the
first time.

A decision matters only while an intent it answers can still arrive, and the
zones say when that is over. Every zone reports to every other, each second, the
transfers it has in flight to it (`InFlight`, stamped with its clock). Take a
decision about entity x recorded at this zone's clock r. Once every other zone
has reported after r without naming x:

* no zone is waiting on an answer about x from here: a zone sends intents only
  for the transfers it has in flight, and each report was made after every
  intent about x that this zone had received by r (the clock, moved past each
  sender's stamp on receipt, orders them), so whatever transfers of x it then
  had in flight were over by the report;
* a copy of an old intent still on its way is stale, and is dropped on arrival:
  it is stamped before its sender's latest report, which does not name its
  (entity, epoch) (`stale`). Dropping a message is what the network may do to any;
* any intent about x from then on proposes a new transfer, at an epoch above
  every epoch decided before (proposals of one entity follow one another through
  the zones that owned it, each above the last), and is decided afresh.

So the decision can be forgotten (`forget`), and the table holds the entities
this zone decided on in the last second or two, plus those a zone still has in
flight to it, not every entity that ever passed. A zone that does not report (it
is down, or gone) keeps every decision from being forgotten until it does.

The table is shared between a state and the copy `step` makes of it, and split
into buckets by id: a tick that records decisions copies only the buckets it
writes to, so copying a state costs the same however many entities the zone
remembers.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

BUCKETS = 256

DECISION_ARRAYS = (
    "decision_ids",
    "decided",
    "accepted",
    "decided_at",
    "heard_peers",
    "heard_hlc",
    "heard_counts",
    "heard_ids",
    "heard_epochs",
)
"""The arrays `Decisions.to_arrays` gives and `Decisions.from_arrays` takes."""


@dataclass(frozen=True)
class Report:
    """The latest transfers one zone said it had in flight to this one, and when."""

    hlc: int
    ids: np.ndarray  # uint64
    epochs: np.ndarray  # uint32, each the proposed epoch of the transfer of ids[i]
    pairs: frozenset[tuple[int, int]]  # (id, epoch) of each, looked up per intent row

    @classmethod
    def of(cls, hlc: int, ids: np.ndarray, epochs: np.ndarray) -> "Report":
        ids, epochs = np.array(ids, np.uint64), np.array(epochs, np.uint32)
        return cls(hlc, ids, epochs, frozenset(zip(ids.tolist(), epochs.tolist(), strict=True)))

    def names(self) -> frozenset[int]:
        return frozenset(ident for ident, _ in self.pairs)


class Decisions:
    """Copy-on-write map: entity id → (decided epoch, accepted epoch, clock when decided),
    with the latest in-flight report of each other zone."""

    __slots__ = ("_buckets", "_owned", "_reports")

    def __init__(self) -> None:
        self._buckets: list[dict[int, tuple[int, int, int]]] = [{} for _ in range(BUCKETS)]
        self._owned = set(range(BUCKETS))
        self._reports: dict[int, Report] = {}

    def get(self, ident: int) -> tuple[int, int]:
        """(decided, accepted) epochs for `ident`; (0, 0) if never asked, or forgotten."""
        decided, accepted, _ = self._buckets[ident % BUCKETS].get(ident, (0, 0, 0))
        return decided, accepted

    def record(self, ident: int, decided: int, accepted: int, at: int) -> None:
        """Remember a decision made at clock `at`, copying the bucket first if a copy
        shares it."""
        self._writable(ident % BUCKETS)[ident] = (decided, accepted, at)

    def _writable(self, b: int) -> dict[int, tuple[int, int, int]]:
        if b not in self._owned:
            self._buckets[b] = dict(self._buckets[b])
            self._owned.add(b)
        return self._buckets[b]

    # --- what the other zones have in flight ------------------------------------------------

    def heard(self, peer: int, hlc: int, ids: np.ndarray, epochs: np.ndarray) -> None:
        """`peer` has, as of its clock `hlc`, exactly these transfers in flight to this zone.

        Reports overtaken on the way by a newer one are ignored.
        """
        known = self._reports.get(peer)
        if known is None or hlc > known.hlc:
            self._reports[peer] = Report.of(hlc, ids, epochs)

    def reporters(self) -> list[int]:
        """Every zone this one holds a report from, ascending."""
        return sorted(self._reports)

    def stale(self, peer: int, hlc: int, ids: np.ndarray, epochs: np.ndarray) -> np.ndarray:
        """Which rows of an intent `peer` sent at its clock `hlc` no longer ask anything.

        A row is stale when the peer reported after sending it and its report does not
        name the row's transfer: that transfer was over by then, and nobody waits on an
        answer to it.
        """
        report = self._reports.get(peer)
        if report is None or hlc >= report.hlc:
            return np.zeros(len(ids), dtype=bool)
        pairs = zip(np.asarray(ids).tolist(), np.asarray(epochs).tolist(), strict=True)
        return np.array([pair not in report.pairs for pair in pairs], dtype=bool)

    def forget(self, peers: Iterable[int]) -> int:
        """Forget every decision no intent can need any more; how many went.

        A decision goes once each of `peers` (every other zone of the market) has
        reported after it was made, without naming its entity (module docstring).
        """
        reports = [self._reports.get(peer) for peer in peers]
        if not reports or any(report is None for report in reports):
            return 0
        since = min(report.hlc for report in reports if report is not None)
        named = frozenset().union(*(report.names() for report in reports if report is not None))
        gone = 0
        for b, bucket in enumerate(self._buckets):
            if not bucket:  # most are, once the zone forgets: a test is cheaper than a scan
                continue
            old = [i for i, (_, _, at) in bucket.items() if at < since and i not in named]
            if old:
                writable = self._writable(b)
                for ident in old:
                    del writable[ident]
                gone += len(old)
        return gone

    # --- copies and snapshots ---------------------------------------------------------------

    def copy(self) -> "Decisions":
        """A copy sharing every bucket with this one until either writes."""
        twin = Decisions.__new__(Decisions)
        twin._buckets = list(self._buckets)
        twin._owned = set()
        self._owned = set()  # the buckets are shared now, for both sides
        twin._reports = dict(self._reports)  # reports are replaced whole, never changed
        return twin

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Every decision and report as arrays named DECISION_ARRAYS, ordered by id and by
        peer (the same table gives the same arrays, whatever its history)."""
        items = sorted((i, d, a, t) for bucket in self._buckets for i, (d, a, t) in bucket.items())
        table = np.array(items, dtype=np.uint64).reshape(-1, 4)
        peers = sorted(self._reports)
        reports = [self._reports[p] for p in peers]
        return {
            "decision_ids": table[:, 0].copy(),
            "decided": table[:, 1].copy(),
            "accepted": table[:, 2].copy(),
            "decided_at": table[:, 3].copy(),
            "heard_peers": np.array(peers, np.uint16),
            "heard_hlc": np.array([r.hlc for r in reports], np.uint64),
            "heard_counts": np.array([r.ids.size for r in reports], np.uint32),
            "heard_ids": np.concatenate([np.zeros(0, np.uint64), *(r.ids for r in reports)]),
            "heard_epochs": np.concatenate([np.zeros(0, np.uint32), *(r.epochs for r in reports)]),
        }

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray]) -> "Decisions":
        """The table `to_arrays` described."""
        table = cls()
        columns = (arrays[name].tolist() for name in DECISION_ARRAYS[:4])
        for i, d, a, t in zip(*columns, strict=True):
            table._buckets[i % BUCKETS][i] = (d, a, t)
        counts = arrays["heard_counts"].astype(np.int64)
        if counts.sum() != arrays["heard_ids"].size:
            raise ValueError("the reports' counts disagree with their transfers")
        ends = np.cumsum(counts)
        for peer, hlc, end, count in zip(
            arrays["heard_peers"].tolist(), arrays["heard_hlc"].tolist(), ends, counts, strict=True
        ):
            span = slice(int(end - count), int(end))
            table._reports[peer] = Report.of(
                hlc, arrays["heard_ids"][span], arrays["heard_epochs"][span]
            )
        return table

    def __len__(self) -> int:
        return sum(len(b) for b in self._buckets)
