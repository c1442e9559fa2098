"""Tuples stored through the services; checks and listings over the database."""

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from market.rebac import engine
from market.rebac.market_model import market_model
from market.rebac.models import RelationTuple
from market.rebac.selectors import rebac_principal
from market.rebac.services import (
    rebac_check,
    rebac_list_objects,
    rebac_tuple_delete,
    rebac_tuple_write,
    rebac_tuples_write,
)
from market.rebac.tuples import RebacTupleError
from tests.market.rebac.modeling import t
from tests.market.rebac.test_market_model import MARKET

pytestmark = pytest.mark.django_db


def stored():
    return sorted(str(row) for row in RelationTuple.objects.all())


def test_a_written_tuple_grants_until_it_is_deleted():
    rebac_tuple_write(object="namespace:1", relation="reader", user="user:7")

    assert rebac_check(object="namespace:1", relation="can_read", user="user:7")
    assert rebac_tuple_delete(object="namespace:1", relation="reader", user="user:7") is True
    assert not rebac_check(object="namespace:1", relation="can_read", user="user:7")
    assert rebac_tuple_delete(object="namespace:1", relation="reader", user="user:7") is False


def test_writing_a_tuple_again_stores_it_once():
    for _ in range(3):
        rebac_tuple_write(object="booth:2", relation="visitor", user="group:guests#member")

    assert stored() == ["booth:2#visitor@group:guests#member"]


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (t("shelf:1", "reader", "user:7"), "unknown object type 'shelf'"),
        (t("namespace:1", "owner", "user:7"), "type 'namespace' has no relation 'owner'"),
        (t("namespace:1", "writer", "user:*"), "does not allow the wildcard"),
        (t("namespace:1", "can_read", "user:7"), "computed from other relations"),
        (t("namespace:1", "reader", "user 7"), "is not a subject"),
    ],
)
def test_a_batch_with_one_refused_tuple_stores_nothing(bad, message):
    batch = [t("namespace:1", "reader", "user:7"), bad, t("namespace:1", "writer", "user:8")]

    with pytest.raises(RebacTupleError, match=message):
        rebac_tuples_write(tuples=batch)

    assert stored() == []


def test_deleting_a_malformed_tuple_is_refused():
    with pytest.raises(RebacTupleError):
        rebac_tuple_delete(object="namespace", relation="reader", user="user:7")


def test_the_database_answers_as_the_engine_does_on_the_same_tuples():
    rebac_tuples_write(tuples=MARKET)
    index = engine.TupleIndex(MARKET, model=market_model())
    users = ["user:olga", "user:cleo", "user:wes", "user:vera", "user:stranger", "user:*"]
    objects = ["chunk:aa", "chunk:bb", "chunk:cc", "chunk:dd", "namespace:70", "booth:7"]

    for user in users:
        for object in objects:
            for relation in ("can_read", "can_write"):
                expected = engine.check(market_model(), index, object, relation, user)
                assert rebac_check(object=object, relation=relation, user=user) is expected
        for type in ("chunk", "namespace", "booth"):
            expected = engine.list_objects(market_model(), index, user, type, "can_read")
            assert rebac_list_objects(user=user, type=type, relation="can_read") == expected


def test_contextual_tuples_reach_the_database_check_without_being_stored():
    rebac_tuple_write(object="chunk:aa", relation="namespace", user="namespace:70")
    context = [t("namespace:70", "reader", "user:5")]

    assert rebac_check(
        object="chunk:aa", relation="can_read", user="user:5", contextual_tuples=context
    )
    assert not rebac_check(object="chunk:aa", relation="can_read", user="user:5")
    assert stored() == ["chunk:aa#namespace@namespace:70"]


def test_an_anonymous_visitor_gets_only_what_everyone_was_granted():
    rebac_tuples_write(
        tuples=[t("namespace:1", "reader", "user:*"), t("namespace:2", "reader", "user:7")]
    )

    assert rebac_principal(AnonymousUser()) is None
    assert rebac_check(object="namespace:1", relation="can_read", user=None)
    assert not rebac_check(object="namespace:2", relation="can_read", user=None)
    assert rebac_list_objects(user=None, type="namespace", relation="can_read") == ["namespace:1"]


def test_a_signed_in_user_is_named_by_primary_key():
    user = get_user_model().objects.create_user(username="cleo")

    assert rebac_principal(user) == f"user:{user.pk}"


SMALL_MARKET = [
    t(object, relation, user)
    for object, relation, users in [
        ("market:1", "operator", ["user:1"]),
        ("booth:1", "market", ["market:1"]),
        ("booth:2", "market", ["market:1"]),
        ("booth:1", "creator", ["user:2"]),
        ("booth:1", "visitor", ["user:3", "user:*", "group:a#member"]),
        ("booth:2", "reader", ["user:3", "booth:1#visitor", "group:b#member"]),
        ("group:a", "member", ["user:3", "group:b#member"]),
        ("group:b", "member", ["user:2", "group:a#member"]),
        ("namespace:1", "booth", ["booth:1"]),
        ("namespace:2", "market", ["market:1"]),
        ("namespace:1", "reader", ["user:3", "booth:2#visitor", "group:a#member", "user:*"]),
        ("namespace:2", "writer", ["user:3", "group:b#member"]),
        ("chunk:x", "namespace", ["namespace:1", "namespace:2"]),
        ("chunk:y", "namespace", ["namespace:2"]),
    ]
    for user in users
]


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(st.sampled_from(SMALL_MARKET), max_size=20, unique_by=str))
def test_random_stored_tuples_give_the_engines_answers(tuples):
    RelationTuple.objects.all().delete()
    rebac_tuples_write(tuples=tuples)
    index = engine.TupleIndex(tuples, model=market_model())

    for user in ("user:1", "user:2", "user:3", "user:4", "user:*"):
        for object in ("chunk:x", "chunk:y", "booth:2", "namespace:1"):
            for relation in ("can_read", "can_write"):
                expected = engine.check(market_model(), index, object, relation, user)
                assert rebac_check(object=object, relation=relation, user=user) is expected
        expected = engine.list_objects(market_model(), index, user, "chunk", "can_read")
        assert rebac_list_objects(user=user, type="chunk", relation="can_read") == expected
