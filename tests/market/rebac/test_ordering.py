"""Listings sorted from the index's runs of object ids equal listings sorted by name.

Random writes and deletions of the market's tuples, with the objects ranked again at random
moments (and with the rank bound set low, so stale ranks are redone during listings): after
each, every run the index keeps and every listing of the engine is compared with a listing
worked out by brute force from the tuples that remain.
"""

from array import array

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from market.rebac import ordering
from market.rebac.engine import Graph, TupleIndex
from market.rebac.errors import RebacDepthError
from market.rebac.market_model import market_model
from market.rebac.ordering import ObjectTable

USERS = [f"user:{u}" for u in range(3)]
GROUPS = [f"group:{g}" for g in range(2)]
BOOTHS = [f"booth:{b}" for b in range(2)]
NAMESPACES = [f"namespace:{n}" for n in range(4)]
CHUNKS = [f"chunk:{c:x}" for c in range(12)]
# Tuples the market's model allows, over a few objects so that writes collide and repeat.
TUPLE = st.one_of(
    st.tuples(st.sampled_from(CHUNKS), st.just("namespace"), st.sampled_from(NAMESPACES)),
    st.tuples(
        st.sampled_from(NAMESPACES),
        st.just("reader"),
        st.sampled_from(
            [*USERS, "user:*", *(f"{g}#member" for g in GROUPS), *(f"{b}#visitor" for b in BOOTHS)]
        ),
    ),
    st.tuples(st.sampled_from(NAMESPACES), st.just("writer"), st.sampled_from(USERS)),
    st.tuples(st.sampled_from(NAMESPACES), st.just("booth"), st.sampled_from(BOOTHS)),
    st.tuples(st.sampled_from(BOOTHS), st.just("visitor"), st.sampled_from([*USERS, "user:*"])),
    st.tuples(st.sampled_from(BOOTHS), st.just("creator"), st.sampled_from(USERS)),
    st.tuples(st.sampled_from(GROUPS), st.just("member"), st.sampled_from(USERS)),
    st.tuples(st.sampled_from(GROUPS), st.just("member"), st.just("group:0#member")),
)
OPERATIONS = st.lists(
    st.one_of(
        st.tuples(st.sampled_from(["add", "add", "remove"]), TUPLE),
        st.tuples(st.sampled_from(["rank", "list"]), st.none()),
    ),
    max_size=60,
)


def apply(index, operations):
    """Run `operations` on `index`; after each listing point, what disagrees (and why)."""
    held: set[tuple[str, str, str]] = set()
    found = []
    for op, relation_tuple in operations:
        if op == "add":
            index.add(*relation_tuple)
            held.add(relation_tuple)
        elif op == "remove":
            index.remove(*relation_tuple)
            held.discard(relation_tuple)
        elif op == "rank":
            index.rank_objects()
        else:
            found += disagreements(index, held)
    return found + disagreements(index, held)


def disagreements(index, held):
    found = []
    keys = {(o.partition(":")[0], r, u) for o, r, u in held}
    by_type: dict[str, list] = {}
    for type, relation, user in sorted(keys):
        expected = sorted(
            {o for o, r, u in held if (o.partition(":")[0], r, u) == (type, relation, user)}
        )
        run = index.object_run(type, relation, user)
        listed = index.sorted_objects(type, [run] if run is not None else [])
        if listed != expected:
            found.append(("run", type, relation, user, listed, expected))
        by_type.setdefault(type, []).append((run, expected))
    for type, runs in by_type.items():
        # Runs together (overlapping), with names given loose, some known and some not.
        loose = [f"{type}:loose", *runs[0][1][:1]]
        expected = sorted({o for _, objects in runs for o in objects} | set(loose))
        listed = index.sorted_objects(type, [r for r, _ in runs if r is not None] * 2, loose)
        if listed != expected:
            found.append(("runs", type, listed, expected))
    graph = Graph(market_model(), index)
    for user in [*USERS, "user:*", "group:0#member"]:
        for type, relation in (("chunk", "can_read"), ("namespace", "can_read")):
            every = CHUNKS if type == "chunk" else NAMESPACES
            brute_force = [o for o in every if graph.check(o, relation, user)]
            listed = graph.list_objects(user, type, relation)
            if listed != brute_force:
                found.append(("list", user, type, relation, listed, brute_force))
    return found


@pytest.fixture
def low_rank_bound(monkeypatch):
    monkeypatch.setattr(ordering, "RERANK_FROM", 2)


@settings(max_examples=300, deadline=None)
@given(OPERATIONS)
def test_listings_from_runs_equal_brute_force(operations):
    assert apply(TupleIndex(), operations) == []


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(OPERATIONS)
def test_listings_equal_brute_force_when_stale_ranks_are_redone(low_rank_bound, operations):
    assert apply(TupleIndex(), operations) == []


class ForgetfulIndex(TupleIndex):
    """A removal that forgets the object's id in the subject's run."""

    def remove(self, object, relation, user):
        run = self.object_run(object.partition(":")[0], relation, user)
        kept = array(run.typecode, run) if run is not None else None
        super().remove(object, relation, user)
        if kept is not None:
            self._objects[(object.partition(":")[0], relation)][user] = kept


FORGOTTEN = [
    ("add", ("chunk:1", "namespace", "namespace:0")),
    ("add", ("namespace:0", "reader", "user:0")),
    ("rank", None),
    ("add", ("chunk:2", "namespace", "namespace:0")),
    ("remove", ("chunk:1", "namespace", "namespace:0")),
]


def test_control_a_removal_that_forgets_the_run_is_caught():
    assert apply(TupleIndex(), FORGOTTEN) == []
    found = apply(ForgetfulIndex(), FORGOTTEN)
    assert (
        "run",
        "chunk",
        "namespace",
        "namespace:0",
        ["chunk:1", "chunk:2"],
        ["chunk:2"],
    ) in found
    assert any(f[0] == "list" and f[1] == "user:0" and f[2] == "chunk" for f in found)


def test_control_unranked_objects_left_out_are_caught(monkeypatch):
    def ranked_only(self, runs, loose=()):
        numbers = [n for run in runs for n in run if n < self.ranked]
        return sorted({self.names[n] for n in numbers})

    operations = FORGOTTEN[:3] + [("add", ("chunk:3", "namespace", "namespace:0"))]
    assert apply(TupleIndex(), operations) == []
    monkeypatch.setattr(ObjectTable, "sorted_names", ranked_only)
    found = apply(TupleIndex(), operations)
    assert (
        "run",
        "chunk",
        "namespace",
        "namespace:0",
        ["chunk:1"],
        ["chunk:1", "chunk:3"],
    ) in found


def test_stale_ranks_are_redone_by_a_listing(low_rank_bound):
    index = TupleIndex()
    index.add("chunk:b", "namespace", "namespace:0")
    index.rank_objects()
    for name in ("chunk:a", "chunk:d", "chunk:c"):
        index.add(name, "namespace", "namespace:0")
    table = index._tables["chunk"]
    assert (table.ranked, table.stale()) == (1, True)
    run = index.object_run("chunk", "namespace", "namespace:0")
    assert index.sorted_objects("chunk", [run]) == ["chunk:a", "chunk:b", "chunk:c", "chunk:d"]
    assert (table.ranked, table.stale()) == (4, False)


class NamesOnly:
    """The index seen through the protocol alone: the walk lists by name."""

    def __init__(self, index):
        self.index = index

    def users_of(self, object, relation, among=None):
        return self.index.users_of(object, relation, among)

    def objects_of(self, type, relation, user):
        return self.index.objects_of(type, relation, user)


def outcome(source):
    try:
        return Graph(market_model(), source).list_objects("user:0", "chunk", "can_read")
    except RebacDepthError as error:
        return str(error)


@pytest.mark.parametrize("second_chunk", [False, True])
def test_listings_near_the_depth_bound_answer_as_by_name(second_chunk):
    """A chain of nested groups reaches a namespace's chunks at steps around the bound."""
    outcomes = set()
    for chain in range(18, 28):
        index = TupleIndex()
        index.add("namespace:0", "reader", "user:0")
        index.add("chunk:0", "namespace", "namespace:0")
        index.add("group:0", "member", "user:0")
        for g in range(1, chain):
            index.add(f"group:{g}", "member", f"group:{g - 1}#member")
        index.add("namespace:1", "reader", f"group:{chain - 1}#member")
        index.add("chunk:0", "namespace", "namespace:1")
        if second_chunk:
            index.add("chunk:1", "namespace", "namespace:1")
        index.rank_objects()
        listed = outcome(index)
        assert listed == outcome(NamesOnly(index)), chain
        outcomes.add(type(listed))
    assert outcomes == {list, str}
