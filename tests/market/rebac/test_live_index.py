"""Each process's tuple index follows the change log and answers exactly as the table does."""

import pytest
from django.db import connection, transaction
from django.test import override_settings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from market.rebac import live
from market.rebac.engine import Graph, RebacError, validate_model
from market.rebac.live import LiveTupleIndex
from market.rebac.models import RelationTuple, RelationTupleChange, RelationTupleRevision
from market.rebac.selectors import rebac_check, rebac_list_objects, rebac_tuple_source
from market.rebac.services import rebac_tuple_delete, rebac_tuple_write, rebac_tuples_write
from market.rebac.store import DatabaseTupleSource, as_rows, tuple_fields
from tests.market.rebac import reference
from tests.market.rebac.test_engine_properties import (
    BASE_RELATIONS,
    SUBJECTS,
    TUPLES,
    derived_relations,
    every_valid_tuple,
    random_model,
)

pytestmark = pytest.mark.django_db(transaction=True)

GRANT = {"object": "namespace:7", "relation": "reader", "user": "user:1"}


def empty_tables():
    """No tuples, no counter, no log: a database before its first tuple."""
    RelationTuple.objects.all().delete()
    RelationTupleChange.objects.all().delete()
    RelationTupleRevision.objects.all().delete()


@pytest.fixture(autouse=True)
def no_tuples_yet():
    # Emptying tables between tests deletes tuples after or before the counter.
    empty_tables()


def head():
    """(epoch, revision) of the counter; the tables emptied between tests may leave one."""
    counter = RelationTupleRevision.objects.first()
    return (counter.epoch, counter.revision) if counter else (None, 0)


def changes(since):
    """The logged changes after `since` (a head), revisions counted from it."""
    epoch, revision = head()
    first = since[1] if since[0] == epoch else 0
    return [
        (c.revision - first, c.op, f"{c.object_type}:{c.object_id}#{c.relation}", c.subject_id)
        for c in RelationTupleChange.objects.filter(epoch=epoch, revision__gt=first)
    ]


def test_every_kind_of_write_is_logged_with_dense_revisions():
    before = head()
    rebac_tuple_write(**GRANT)
    rebac_tuples_write(tuples=[GRANT, {**GRANT, "user": "user:2"}])  # the first is kept
    RelationTuple.objects.bulk_create(as_rows([{**GRANT, "user": "user:3"}]))
    RelationTuple.objects.filter(subject_id="3").update(subject_id="4")
    rebac_tuple_delete(**GRANT)
    RelationTuple.objects.filter(subject_id="2").delete()

    assert changes(before) == [
        (1, "w", "namespace:7#reader", "1"),
        (2, "w", "namespace:7#reader", "2"),
        (3, "w", "namespace:7#reader", "3"),
        (4, "d", "namespace:7#reader", "3"),
        (5, "w", "namespace:7#reader", "4"),
        (6, "d", "namespace:7#reader", "1"),
        (7, "d", "namespace:7#reader", "2"),
    ]
    assert len(changes(before)) == 7


def test_a_rolled_back_write_leaves_no_change_and_no_revision():
    rebac_tuple_write(**GRANT)
    after_write = head()
    with pytest.raises(RuntimeError, match="changed my mind"), transaction.atomic():
        rebac_tuple_write(**{**GRANT, "user": "user:2"})
        raise RuntimeError("changed my mind")

    assert head() == after_write
    assert changes(after_write) == []


def test_the_index_follows_writes_and_revokes_without_reloading():
    rebac_tuple_write(object="namespace:8", relation="reader", user="user:1")
    index = LiveTupleIndex()
    index.refresh()
    graph = Graph(validate_model_market(), index)
    assert not graph.check("namespace:7", "can_read", "user:1")

    rebac_tuple_write(**GRANT)
    index.refresh()
    assert graph.check("namespace:7", "can_read", "user:1")

    RelationTuple.objects.filter(**tuple_fields(**GRANT)).delete()
    index.refresh()
    assert not graph.check("namespace:7", "can_read", "user:1")
    assert index.reloads == 1


def test_a_loaded_index_has_its_objects_ranked_and_later_ones_listed_by_name():
    rebac_tuple_write(object="namespace:8", relation="reader", user="user:1")
    rebac_tuple_write(object="chunk:b", relation="namespace", user="namespace:8")
    index = LiveTupleIndex()
    index.refresh()
    tables = index.index._tables
    assert {type: (t.ranked, len(t.names)) for type, t in tables.items()} == {
        "namespace": (1, 1),
        "chunk": (1, 1),
    }
    rebac_tuple_write(object="chunk:a", relation="namespace", user="namespace:8")
    index.refresh()
    assert (tables["chunk"].ranked, len(tables["chunk"].names)) == (1, 2)
    graph = Graph(validate_model_market(), index)
    assert graph.list_objects("user:1", "chunk", "can_read") == ["chunk:a", "chunk:b"]


def validate_model_market():
    from market.rebac.market_model import market_model

    return market_model()


def test_checks_read_the_index_outside_a_transaction_and_the_table_inside_one():
    with rebac_tuple_source() as source:
        assert isinstance(source, LiveTupleIndex)
    with transaction.atomic():
        rebac_tuple_write(**GRANT)
        with rebac_tuple_source() as source:
            assert isinstance(source, DatabaseTupleSource)
        # The transaction's own uncommitted write counts for its own checks.
        assert rebac_check(object="namespace:7", relation="can_read", user="user:1")
    assert rebac_check(object="namespace:7", relation="can_read", user="user:1")
    assert rebac_list_objects(user="user:1", type="namespace", relation="can_read") == [
        "namespace:7"
    ]


def test_refreshing_inside_a_transaction_is_refused():
    index = LiveTupleIndex()
    with transaction.atomic(), pytest.raises(RuntimeError, match="outside transaction.atomic"):
        index.refresh()


@override_settings(REBAC_TUPLE_INDEX=False)
def test_with_the_index_off_checks_read_the_table():
    with rebac_tuple_source() as source:
        assert isinstance(source, DatabaseTupleSource)


@pytest.mark.parametrize("value", [-1, "soon", None])
def test_a_bad_poll_interval_is_refused(value):
    with (
        override_settings(REBAC_INDEX_POLL_SECONDS=value),
        pytest.raises(ValueError, match="REBAC_INDEX_POLL_SECONDS must be"),
    ):
        rebac_check(object="namespace:7", relation="can_read", user="user:1")


@pytest.mark.parametrize(
    "arguments, message",
    [
        ({"poll_seconds": -0.5}, "poll_seconds must be 0 or more"),
        ({"keep_changes": 0}, "keep_changes"),
    ],
)
def test_a_bad_index_configuration_is_refused(arguments, message):
    with pytest.raises(ValueError, match=message):
        LiveTupleIndex(**arguments)


def test_with_a_poll_interval_a_revoke_is_seen_once_the_interval_has_passed(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(live.time, "monotonic", lambda: now[0])
    rebac_tuple_write(**GRANT)
    index = LiveTupleIndex(poll_seconds=2.0)
    index.refresh()
    graph = Graph(validate_model_market(), index)
    assert graph.check("namespace:7", "can_read", "user:1")

    rebac_tuple_delete(**GRANT)
    now[0] += 1.9
    index.refresh()
    assert graph.check("namespace:7", "can_read", "user:1")  # within the bound: may be stale
    now[0] += 0.1
    index.refresh()
    assert not graph.check("namespace:7", "can_read", "user:1")


def test_a_new_epoch_reloads_the_index():
    rebac_tuple_write(**GRANT)
    index = LiveTupleIndex()
    index.refresh()
    # The table and its counter emptied, then as many changes as before: another history.
    empty_tables()
    rebac_tuple_write(**{**GRANT, "user": "user:2"})
    assert RelationTupleRevision.objects.get().revision == index.revision

    index.refresh()

    assert index.reloads == 2
    assert sorted(index.index.tuples()) == [("namespace:7", "reader", "user:2")]


def test_an_index_behind_the_pruned_log_reloads():
    rebac_tuple_write(**{**GRANT, "user": "user:0"})
    index = LiveTupleIndex(keep_changes=2)
    index.refresh()
    for user in range(1, 6):
        rebac_tuple_write(**{**GRANT, "user": f"user:{user}"})
    with connection.cursor() as cursor:
        live.prune_changes(cursor, index.changes_table, index.epoch, index.revision + 3)

    index.refresh()

    assert index.reloads == 2
    assert len(index) == 6


def test_an_index_replaying_past_a_thousand_changes_prunes_the_log():
    rebac_tuple_write(**GRANT)
    index = LiveTupleIndex(keep_changes=10)
    index.refresh()
    before = index.revision
    rebac_tuples_write(tuples=[{**GRANT, "user": f"user:{u}"} for u in range(2, 1_002)])

    index.refresh()

    assert index.revision == before + 1_000
    assert RelationTupleChange.objects.count() == 10  # and none of other epochs
    assert index.reloads == 1


# Property: whatever the model, the tuples and the changes, the index answers as the table.

EVERY_TUPLE = every_valid_tuple()


def answers(graph: Graph, relations: list[str]) -> list:
    found = []
    for subject in SUBJECTS:
        questions = [(f"document:{d}", r) for d in reference.DOCUMENTS for r in relations]
        questions += [(f"group:{g}", "member") for g in reference.GROUPS]
        for object, relation in questions:
            try:
                found.append(graph.check(object, relation, subject))
            except RebacError as error:
                found.append(type(error).__name__)
        for relation in relations:
            found.append(graph.list_objects(subject, "document", relation))
    return found


def disagreements(derived, initial, later, *, lose_changes=False):
    """Questions the index answers otherwise than the table, after `later` changes."""
    RelationTuple.objects.all().delete()
    RelationTuple.objects.bulk_create(as_rows(initial), ignore_conflicts=True)
    index = LiveTupleIndex()
    index.refresh()
    for add, relation_tuple in later:
        if add:
            RelationTuple.objects.bulk_create(as_rows([relation_tuple]), ignore_conflicts=True)
        else:
            RelationTuple.objects.filter(**tuple_fields(**relation_tuple)).delete()
    if lose_changes:
        # The planted bug: the index believes it is current without replaying anything.
        index.revision = RelationTupleRevision.objects.get().revision
    index.refresh()
    compiled = validate_model(random_model(derived))
    relations = [*BASE_RELATIONS, *(name for name, _ in derived)]
    from_index = answers(Graph(compiled, index), relations)
    from_table = answers(Graph(compiled, DatabaseTupleSource()), relations)
    stored = {(row.object, row.relation, row.subject) for row in RelationTuple.objects.all()}
    wrong = [i for i, (a, b) in enumerate(zip(from_index, from_table, strict=True)) if a != b]
    if set(index.index.tuples()) != stored:
        wrong.append("tuples")
    return wrong


CHANGES = st.lists(st.tuples(st.booleans(), st.sampled_from(EVERY_TUPLE)), max_size=20)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(derived_relations(), TUPLES, CHANGES)
def test_the_index_answers_every_check_and_listing_as_the_table(derived, initial, later):
    assert disagreements(derived, initial, later) == []


REVOKE = [(False, {"object": "document:d0", "relation": "viewer", "user": "user:u0"})]
GRANTED = [{"object": "document:d0", "relation": "viewer", "user": "user:u0"}]


def test_control_an_index_that_loses_a_revoke_is_caught():
    assert disagreements([], GRANTED, REVOKE) == []
    assert disagreements([], GRANTED, REVOKE, lose_changes=True) != []
