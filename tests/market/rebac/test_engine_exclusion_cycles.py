"""Models where an exclusion can lead back to its own relation: accepted, answered at check time.

`viewer: [user] but not blocked` with `blocked: [user, document#viewer]` is the kind of model
OpenFGA accepts: a document may block another document's viewers, and only tuples that make a
document's viewers block themselves (directly or around a loop of documents) have no answer.
Such a check raises RebacCycleError naming the loop; every other check is answered.
"""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from market.rebac.engine import (
    RebacCycleError,
    RebacError,
    RebacUnresolvedError,
    TupleIndex,
    check,
    list_objects,
    validate_model,
)
from tests.market.rebac.modeling import (
    THIS,
    computed,
    difference,
    intersection,
    model,
    t,
    type_definition,
    union,
)

USERSET_LOOP = validate_model(
    model(
        type_definition("user"),
        type_definition(
            "document",
            {
                "viewer": difference(THIS, computed("blocked")),
                "blocked": THIS,
                "owner": THIS,
                "approved": THIS,
                "can_view": union(computed("owner"), computed("viewer")),
                "can_share": intersection(computed("approved"), computed("viewer")),
            },
            {
                "viewer": ["user"],
                "blocked": ["user", "document#viewer"],
                "owner": ["user"],
                "approved": ["user"],
            },
        ),
    )
)

COMPUTED_LOOP = validate_model(
    model(
        type_definition("user"),
        type_definition(
            "document",
            {
                "viewer": difference(THIS, computed("blocked")),
                "blocked": union(THIS, computed("viewer")),
            },
            {"viewer": ["user"], "blocked": ["user"]},
        ),
    )
)


def test_a_viewer_nobody_blocks_views():
    assert check(
        USERSET_LOOP, [t("document:1", "viewer", "user:anne")], "document:1", "viewer", "user:anne"
    )


def test_a_viewer_blocked_directly_does_not_view():
    tuples = [t("document:1", "viewer", "user:anne"), t("document:1", "blocked", "user:anne")]

    assert not check(USERSET_LOOP, tuples, "document:1", "viewer", "user:anne")


def test_the_viewers_of_another_document_are_blocked():
    tuples = [
        t("document:1", "viewer", "user:anne"),
        t("document:1", "blocked", "document:2#viewer"),
        t("document:2", "viewer", "user:anne"),
    ]

    assert not check(USERSET_LOOP, tuples, "document:1", "viewer", "user:anne")
    assert check(USERSET_LOOP, tuples, "document:2", "viewer", "user:anne")


def test_blocking_alternates_along_a_chain_of_documents():
    tuples = [
        t("document:1", "viewer", "user:anne"),
        t("document:1", "blocked", "document:2#viewer"),
        t("document:2", "viewer", "user:anne"),
        t("document:2", "blocked", "document:3#viewer"),
        t("document:3", "viewer", "user:anne"),
    ]

    answers = [
        check(USERSET_LOOP, tuples, f"document:{d}", "viewer", "user:anne") for d in (1, 2, 3)
    ]

    assert answers == [True, False, True]
    assert list_objects(USERSET_LOOP, tuples, "user:anne", "document", "viewer") == [
        "document:1",
        "document:3",
    ]


def test_viewers_who_block_themselves_raise_a_cycle_error_naming_the_loop():
    tuples = [
        t("document:1", "viewer", "user:anne"),
        t("document:1", "blocked", "document:1#viewer"),
    ]

    with pytest.raises(
        RebacCycleError,
        match="document:1#viewer → document:1#blocked → document:1#viewer",
    ) as raised:
        check(USERSET_LOOP, tuples, "document:1", "viewer", "user:anne")

    assert isinstance(raised.value, RebacUnresolvedError)
    assert isinstance(raised.value, RebacError)
    assert isinstance(raised.value, ValueError)


def test_a_loop_of_documents_blocking_each_other_raises():
    tuples = [
        t("document:1", "viewer", "user:anne"),
        t("document:2", "viewer", "user:anne"),
        t("document:1", "blocked", "document:2#viewer"),
        t("document:2", "blocked", "document:1#viewer"),
    ]

    for document in ("document:1", "document:2"):
        with pytest.raises(RebacCycleError, match="loops through an exclusion"):
            check(USERSET_LOOP, tuples, document, "viewer", "user:anne")


def test_a_loop_the_user_never_enters_is_not_an_error():
    tuples = [
        t("document:1", "viewer", "user:anne"),
        t("document:1", "blocked", "document:1#viewer"),
    ]

    # Bob is not in the base, so the exclusion is never evaluated for him.
    assert not check(USERSET_LOOP, tuples, "document:1", "viewer", "user:bob")
    assert not check(USERSET_LOOP, tuples, "document:1", "blocked", "user:bob")


def test_a_direct_block_settles_the_exclusion_before_the_loop_is_reached():
    tuples = [
        t("document:1", "viewer", "user:anne"),
        t("document:1", "blocked", "user:anne"),
        t("document:1", "blocked", "document:1#viewer"),
    ]

    assert not check(USERSET_LOOP, tuples, "document:1", "viewer", "user:anne")


def test_a_union_grants_through_another_branch_despite_the_loop():
    tuples = [
        t("document:1", "viewer", "user:anne"),
        t("document:1", "blocked", "document:1#viewer"),
        t("document:1", "owner", "user:anne"),
    ]

    assert check(USERSET_LOOP, tuples, "document:1", "can_view", "user:anne")


def test_an_intersection_with_a_clear_no_denies_despite_the_loop():
    tuples = [
        t("document:1", "viewer", "user:anne"),
        t("document:1", "blocked", "document:1#viewer"),
    ]

    assert not check(USERSET_LOOP, tuples, "document:1", "can_share", "user:anne")
    with pytest.raises(RebacCycleError):
        check(
            USERSET_LOOP,
            [*tuples, t("document:1", "approved", "user:anne")],
            "document:1",
            "can_share",
            "user:anne",
        )


def test_a_listing_that_meets_the_loop_raises_the_cycle_error():
    tuples = [
        t("document:1", "viewer", "user:anne"),
        t("document:1", "blocked", "document:1#viewer"),
    ]

    with pytest.raises(RebacCycleError):
        list_objects(USERSET_LOOP, tuples, "user:anne", "document", "viewer")
    assert list_objects(USERSET_LOOP, tuples, "user:bob", "document", "viewer") == []


def test_a_relation_excluding_itself_through_a_computed_relation():
    viewer = [t("document:1", "viewer", "user:anne")]

    assert not check(
        COMPUTED_LOOP,
        [*viewer, t("document:1", "blocked", "user:anne")],
        "document:1",
        "viewer",
        "user:anne",
    )
    assert not check(COMPUTED_LOOP, viewer, "document:1", "viewer", "user:bob")
    with pytest.raises(
        RebacCycleError, match="document:1#viewer → document:1#blocked → document:1#viewer"
    ):
        check(COMPUTED_LOOP, viewer, "document:1", "viewer", "user:anne")


DOCUMENTS = range(5)
USERS = ("anne", "bob")


def acyclic_tuples():
    """Viewers and blocks of five documents; a document blocks only later documents' viewers."""
    every = [
        t(f"document:{d}", r, f"user:{u}")
        for d in DOCUMENTS
        for r in ("viewer", "blocked")
        for u in USERS
    ]
    every += [
        t(f"document:{d}", "blocked", f"document:{e}#viewer")
        for d in DOCUMENTS
        for e in DOCUMENTS
        if e > d
    ]
    return st.lists(st.sampled_from(every), max_size=25)


def stratified_viewers(tuples):
    """Who views each document, evaluated from the last document to the first."""
    viewers: dict[int, set[str]] = {}
    for d in reversed(DOCUMENTS):
        on = [x for x in tuples if x["object"] == f"document:{d}"]
        base = {x["user"] for x in on if x["relation"] == "viewer"}
        blocked = {x["user"] for x in on if x["relation"] == "blocked" and "#" not in x["user"]}
        for x in on:
            if x["relation"] == "blocked" and "#" in x["user"]:
                blocked |= viewers[int(x["user"].split(":")[1].split("#")[0])]
        viewers[d] = base - blocked
    return viewers


@settings(max_examples=200, deadline=None)
@given(acyclic_tuples())
def test_without_a_loop_in_the_tuples_every_check_is_answered_as_the_stratified_reading(tuples):
    index = TupleIndex(tuples, model=USERSET_LOOP)
    viewers = stratified_viewers(tuples)
    for user in USERS:
        subject = f"user:{user}"
        for d in DOCUMENTS:
            assert check(USERSET_LOOP, index, f"document:{d}", "viewer", subject) == (
                subject in viewers[d]
            )
        assert list_objects(USERSET_LOOP, index, subject, "document", "viewer") == [
            f"document:{d}" for d in DOCUMENTS if subject in viewers[d]
        ]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [t(f"document:{d}", "viewer", "user:anne") for d in range(3)]
            + [
                t(f"document:{d}", "blocked", f"document:{e}#viewer")
                for d in range(3)
                for e in range(3)
            ]
        ),
        max_size=12,
    )
)
def test_any_tuples_give_an_answer_or_a_cycle_error_never_a_recursion_error(tuples):
    index = TupleIndex(tuples, model=USERSET_LOOP)
    for d in range(3):
        try:
            answer = check(USERSET_LOOP, index, f"document:{d}", "viewer", "user:anne")
        except RebacCycleError:
            continue
        assert isinstance(answer, bool)
