"""The market's model: who may read and write chunks, through namespaces, booths and markets."""

import pytest

from market.rebac.engine import TupleIndex, check, list_objects
from market.rebac.market_model import market_model
from tests.market.rebac.modeling import t

MODEL = market_model()

MARKET = [
    t("market:1", "operator", "user:olga"),
    t("booth:7", "market", "market:1"),
    t("booth:7", "creator", "user:cleo"),
    t("booth:7", "visitor", "group:guests#member"),
    t("group:guests", "member", "group:vip#member"),
    t("group:vip", "member", "user:vera"),
    t("namespace:70", "booth", "booth:7"),
    t("namespace:70", "reader", "booth:7#visitor"),
    t("namespace:70", "writer", "user:wes"),
    t("namespace:71", "booth", "booth:7"),
    t("namespace:90", "market", "market:1"),
    t("namespace:91", "reader", "user:*"),
    t("chunk:aa", "namespace", "namespace:70"),
    t("chunk:bb", "namespace", "namespace:71"),
    t("chunk:cc", "namespace", "namespace:90"),
    t("chunk:dd", "namespace", "namespace:91"),
    t("chunk:dd", "namespace", "namespace:71"),
]
INDEX = TupleIndex(MARKET, model=MODEL)


def can(user, relation, object):
    return check(MODEL, INDEX, object, relation, user)


def test_the_market_operator_writes_chunks_three_levels_down():
    for chunk in ("chunk:aa", "chunk:bb", "chunk:cc", "chunk:dd"):
        assert can("user:olga", "can_write", chunk)
        assert can("user:olga", "can_read", chunk)


def test_the_booth_creator_writes_the_booths_namespaces_only():
    assert can("user:cleo", "can_write", "chunk:aa")
    assert can("user:cleo", "can_write", "chunk:bb")
    assert not can("user:cleo", "can_write", "chunk:cc")
    assert not can("user:cleo", "can_read", "chunk:cc")


def test_a_namespace_writer_reads_and_writes_that_namespace():
    assert can("user:wes", "can_write", "chunk:aa")
    assert can("user:wes", "can_read", "chunk:aa")
    assert not can("user:wes", "can_read", "chunk:bb")


def test_visitors_of_a_booth_read_the_namespaces_that_name_them_through_nested_groups():
    assert can("user:vera", "can_read", "chunk:aa")
    assert can("user:vera", "can_read", "booth:7")
    assert not can("user:vera", "can_write", "chunk:aa")
    assert not can("user:vera", "can_read", "chunk:bb")


def test_a_world_readable_namespace_is_read_by_anyone_even_anonymous():
    assert can("user:stranger", "can_read", "chunk:dd")
    assert can("user:*", "can_read", "chunk:dd")
    assert not can("user:*", "can_read", "chunk:aa")
    assert not can("user:stranger", "can_write", "chunk:dd")


def test_what_a_user_may_read_is_listed():
    assert list_objects(MODEL, INDEX, "user:vera", "chunk", "can_read") == ["chunk:aa", "chunk:dd"]
    assert list_objects(MODEL, INDEX, "user:cleo", "chunk", "can_write") == [
        "chunk:aa",
        "chunk:bb",
        "chunk:dd",
    ]
    assert list_objects(MODEL, INDEX, "user:*", "namespace", "can_read") == ["namespace:91"]


@pytest.mark.parametrize(
    "relation_tuple",
    [
        t("chunk:aa", "reader", "user:anne"),
        t("namespace:70", "writer", "user:*"),
        t("market:1", "operator", "group:vip#member"),
        t("chunk:aa", "namespace", "booth:7"),
    ],
)
def test_the_market_model_refuses_grants_it_does_not_define(relation_tuple):
    with pytest.raises(ValueError):
        TupleIndex([relation_tuple], model=MODEL)
