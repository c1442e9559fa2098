"""Checks through each kind of rewrite, on raw tuples and on a prebuilt index alike."""

import pytest

from market.rebac.engine import Graph, TupleIndex, check, validate_model
from tests.market.rebac.modeling import documents_model, t

MODEL = documents_model()


def test_a_direct_tuple_grants_that_user_only():
    tuples = [t("document:1", "viewer", "user:anne")]

    assert check(MODEL, tuples, "document:1", "viewer", "user:anne")
    assert not check(MODEL, tuples, "document:1", "viewer", "user:bob")
    assert not check(MODEL, tuples, "document:2", "viewer", "user:anne")


def test_a_wildcard_grants_every_user_of_its_type():
    tuples = [t("document:1", "viewer", "user:*")]

    assert check(MODEL, tuples, "document:1", "viewer", "user:anne")
    assert check(MODEL, tuples, "document:1", "viewer", "user:*")
    assert not check(MODEL, tuples, "document:1", "editor", "user:anne")


def test_a_wildcard_where_the_model_does_not_allow_one_grants_nothing():
    index = TupleIndex([t("document:1", "editor", "user:*")])

    assert not check(MODEL, index, "document:1", "editor", "user:anne")


def test_a_userset_grants_the_members_of_nested_groups():
    tuples = [
        t("document:1", "viewer", "group:weavers#member"),
        t("group:weavers", "member", "group:dyers#member"),
        t("group:dyers", "member", "user:anne"),
    ]

    assert check(MODEL, tuples, "document:1", "viewer", "user:anne")
    assert check(MODEL, tuples, "document:1", "viewer", "group:dyers#member")
    assert not check(MODEL, tuples, "document:1", "viewer", "user:bob")


def test_a_userset_is_a_member_of_itself():
    assert check(MODEL, [], "group:weavers", "member", "group:weavers#member")


def test_a_computed_relation_follows_the_one_it_is_computed_from():
    tuples = [t("document:1", "owner", "user:anne")]

    assert check(MODEL, tuples, "document:1", "editor", "user:anne")
    assert check(MODEL, tuples, "document:1", "viewer", "user:anne")
    assert not check(MODEL, tuples, "document:1", "owner", "user:bob")


def test_tuple_to_userset_inherits_through_three_levels_of_folders():
    tuples = [
        t("document:1", "parent", "folder:inner"),
        t("folder:inner", "parent", "folder:middle"),
        t("folder:middle", "parent", "folder:outer"),
        t("folder:outer", "viewer", "group:weavers#member"),
        t("group:weavers", "member", "user:anne"),
    ]

    assert check(MODEL, tuples, "document:1", "viewer", "user:anne")
    assert check(MODEL, tuples, "folder:middle", "viewer", "user:anne")
    assert not check(MODEL, tuples, "document:1", "viewer", "user:bob")
    assert not check(MODEL, tuples, "document:1", "editor", "user:anne")


@pytest.mark.parametrize(
    ("editor", "approved", "granted"),
    [(True, True, True), (True, False, False), (False, True, False)],
)
def test_intersection_needs_every_child(editor, approved, granted):
    tuples = [t("document:1", "editor", "user:anne")] if editor else []
    tuples += [t("document:1", "approved", "user:anne")] if approved else []

    assert check(MODEL, tuples, "document:1", "can_share", "user:anne") is granted


@pytest.mark.parametrize(
    ("viewer", "blocked", "granted"),
    [(True, False, True), (True, True, False), (False, False, False)],
)
def test_difference_grants_the_base_minus_the_subtracted(viewer, blocked, granted):
    tuples = [t("document:1", "viewer", "user:anne")] if viewer else []
    tuples += [t("document:1", "blocked", "group:banned#member")] if blocked else []
    tuples += [t("group:banned", "member", "user:anne")]

    assert check(MODEL, tuples, "document:1", "can_view", "user:anne") is granted


def test_union_grants_through_any_child():
    by_parent = [t("document:1", "parent", "folder:a"), t("folder:a", "viewer", "user:anne")]
    by_owner = [t("document:1", "owner", "user:anne")]

    assert check(MODEL, by_parent, "document:1", "viewer", "user:anne")
    assert check(MODEL, by_owner, "document:1", "viewer", "user:anne")


def test_contextual_tuples_count_for_that_check_only():
    index = TupleIndex([t("document:1", "parent", "folder:a")])
    context = [t("folder:a", "viewer", "user:anne")]

    assert check(MODEL, index, "document:1", "viewer", "user:anne", contextual_tuples=context)
    assert not check(MODEL, index, "document:1", "viewer", "user:anne")


def test_contextual_tuples_can_exclude():
    tuples = [t("document:1", "viewer", "user:anne")]
    context = [t("document:1", "blocked", "user:anne")]

    assert not check(
        MODEL, tuples, "document:1", "can_view", "user:anne", contextual_tuples=context
    )


def test_a_prebuilt_graph_answers_as_raw_tuples_do():
    tuples = [
        t("document:1", "parent", "folder:a"),
        t("folder:a", "viewer", "group:g#member"),
        t("group:g", "member", "user:anne"),
        t("document:1", "blocked", "user:bob"),
        t("document:1", "viewer", "user:bob"),
    ]
    graph = Graph(validate_model(MODEL), TupleIndex(tuples))

    for user in ("user:anne", "user:bob", "user:carol"):
        for relation in ("viewer", "can_view", "editor"):
            expected = check(MODEL, tuples, "document:1", relation, user)
            assert graph.check("document:1", relation, user) is expected
