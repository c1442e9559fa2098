"""Cycles grant nothing and end; nesting deeper than MAX_DEPTH raises rather than answers."""

import pytest

from market.rebac.engine import (
    MAX_DEPTH,
    RebacDepthError,
    RebacError,
    TupleIndex,
    check,
    list_objects,
    validate_model,
)
from market.rebac.resolution import Resolution
from tests.market.rebac.modeling import (
    THIS,
    computed,
    difference,
    documents_model,
    intersection,
    model,
    t,
    type_definition,
    union,
)

MODEL = validate_model(documents_model())

GROUP_CYCLE = [
    t("group:a", "member", "group:b#member"),
    t("group:b", "member", "group:a#member"),
]


def test_a_cycle_of_groups_without_a_user_grants_nothing():
    assert not check(MODEL, GROUP_CYCLE, "group:a", "member", "user:anne")
    assert list_objects(MODEL, GROUP_CYCLE, "user:anne", "group", "member") == []


def test_a_user_anywhere_in_a_cycle_is_a_member_of_every_group_on_it():
    tuples = [
        *GROUP_CYCLE,
        t("group:c", "member", "group:a#member"),
        t("group:b", "member", "user:anne"),
    ]

    for group in ("a", "b", "c"):
        assert check(MODEL, tuples, f"group:{group}", "member", "user:anne")
    assert list_objects(MODEL, tuples, "user:anne", "group", "member") == [
        "group:a",
        "group:b",
        "group:c",
    ]


def test_a_cycle_of_folder_parents_grants_nothing():
    tuples = [
        t("document:1", "parent", "folder:a"),
        t("folder:a", "parent", "folder:b"),
        t("folder:b", "parent", "folder:a"),
    ]

    assert not check(MODEL, tuples, "document:1", "viewer", "user:anne")


def test_a_cycle_in_the_base_of_a_difference_grants_nothing():
    tuples = [
        t("document:1", "viewer", "document:2#viewer"),
        t("document:2", "viewer", "document:1#viewer"),
    ]

    assert not check(MODEL, tuples, "document:1", "can_view", "user:anne")


def test_a_cycle_in_the_subtracted_part_excludes_nobody():
    tuples = [t("document:1", "viewer", "user:anne"), t("document:1", "blocked", "group:a#member")]
    tuples += GROUP_CYCLE

    assert check(MODEL, tuples, "document:1", "can_view", "user:anne")


def test_a_cycle_in_one_child_of_an_intersection_grants_nothing():
    tuples = [
        t("document:1", "editor", "group:a#member"),
        t("document:1", "approved", "user:anne"),
        *GROUP_CYCLE,
    ]

    assert not check(MODEL, tuples, "document:1", "can_share", "user:anne")


def test_a_self_referencing_intersection_grants_nothing():
    looped = model(
        type_definition("user"),
        type_definition(
            "document",
            {
                "viewer": intersection(THIS, computed("pass")),
                "pass": union(THIS, computed("viewer")),
            },
            {"viewer": ["user", "document#viewer"], "pass": ["user"]},
        ),
    )
    tuples = [
        t("document:1", "viewer", "document:2#viewer"),
        t("document:2", "viewer", "document:1#viewer"),
        t("document:1", "pass", "user:anne"),
        t("document:2", "pass", "user:anne"),
    ]

    assert not check(looped, tuples, "document:1", "viewer", "user:anne")
    assert check(looped, tuples, "document:1", "pass", "user:anne")


def test_a_no_that_rested_on_the_path_is_not_remembered_for_later_checks():
    # document:2 is first reached from document:1, where its only way back is cut; it is
    # granted all the same (through document:1, granted by group g afterwards).
    index = TupleIndex(
        [
            t("document:1", "viewer", "document:2#viewer"),
            t("document:1", "viewer", "group:g#member"),
            t("document:2", "viewer", "document:1#viewer"),
            t("group:g", "member", "user:anne"),
        ]
    )
    resolution = Resolution(MODEL, index, "user:anne")

    assert resolution.holds("document:1", "viewer")
    assert resolution.holds("document:2", "viewer")


class RemembersEveryNo(Resolution):
    """The bug the test above guards against: a path-dependent "no" kept as if it were exact."""

    def relation(self, object, relation, depth):
        granted = super().relation(object, relation, depth)
        self.settled.setdefault((object, relation), granted)
        return granted


def test_control_remembering_every_no_denies_the_second_check():
    index = TupleIndex(
        [
            t("document:1", "viewer", "document:2#viewer"),
            t("document:1", "viewer", "group:g#member"),
            t("document:2", "viewer", "document:1#viewer"),
            t("group:g", "member", "user:anne"),
        ]
    )
    resolution = RemembersEveryNo(MODEL, index, "user:anne")

    assert resolution.holds("document:1", "viewer")
    assert not resolution.holds("document:2", "viewer")


def nested_groups(levels):
    """group:0 ∋ group:1#member ∋ … ∋ group:<levels-1>#member ∋ user:anne."""
    tuples = [t(f"group:{i}", "member", f"group:{i + 1}#member") for i in range(levels - 1)]
    return [*tuples, t(f"group:{levels - 1}", "member", "user:anne")]


def test_nesting_up_to_the_depth_bound_is_answered():
    assert check(MODEL, nested_groups(MAX_DEPTH), "group:0", "member", "user:anne")


def test_nesting_beyond_the_depth_bound_raises_instead_of_answering():
    with pytest.raises(RebacDepthError, match=f"more than {MAX_DEPTH} nested steps") as raised:
        check(MODEL, nested_groups(MAX_DEPTH + 1), "group:0", "member", "user:bob")

    assert isinstance(raised.value, RebacError)
    assert isinstance(raised.value, ValueError)


def test_a_listing_reaches_every_group_up_to_the_depth_bound():
    groups = list_objects(MODEL, nested_groups(MAX_DEPTH), "user:anne", "group", "member")

    assert len(groups) == MAX_DEPTH


def test_a_listing_that_must_go_beyond_the_depth_bound_raises():
    with pytest.raises(
        RebacDepthError, match=f"listing for user:anne needed more than {MAX_DEPTH}"
    ):
        list_objects(MODEL, nested_groups(MAX_DEPTH + 1), "user:anne", "document", "viewer")


def test_a_grant_found_elsewhere_stands_even_if_one_branch_is_too_deep():
    tuples = [t("document:1", "viewer", "group:0#member"), t("document:1", "owner", "user:anne")]
    tuples += nested_groups(MAX_DEPTH + 1)

    assert check(MODEL, tuples, "document:1", "viewer", "user:anne")


def test_a_subtracted_part_too_deep_to_answer_raises_rather_than_grants():
    tuples = [t("document:1", "viewer", "user:bob"), t("document:1", "blocked", "group:0#member")]
    tuples += nested_groups(MAX_DEPTH + 1)

    with pytest.raises(RebacDepthError):
        check(MODEL, tuples, "document:1", "can_view", "user:bob")


def test_an_intersection_with_a_clear_no_denies_even_if_another_child_is_too_deep():
    tuples = [t("document:1", "editor", "group:0#member"), *nested_groups(MAX_DEPTH + 1)]

    assert not check(MODEL, tuples, "document:1", "can_share", "user:bob")


def test_exclusion_without_a_cycle_through_it_is_accepted():
    validate_model(
        model(
            type_definition("user"),
            type_definition(
                "document",
                {"viewer": difference(THIS, computed("blocked")), "blocked": THIS},
                {"viewer": ["user", "document#viewer"], "blocked": ["user"]},
            ),
        )
    )
