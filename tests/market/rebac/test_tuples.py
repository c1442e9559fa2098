"""A tuple the model does not allow, or a string that is not a tuple's, is refused."""

import pytest

from market.rebac.engine import (
    RebacTupleError,
    TupleIndex,
    check,
    list_objects,
    validate_model,
    validate_tuple,
)
from tests.market.rebac.modeling import documents_model, t

MODEL = validate_model(documents_model())


@pytest.mark.parametrize(
    "accepted",
    [
        t("document:1", "viewer", "user:anne"),
        t("document:1", "viewer", "user:*"),
        t("document:1", "viewer", "group:weavers#member"),
        t("document:1", "viewer", "document:2#viewer"),
        t("document:q3-budget", "parent", "folder:finance"),
        t("group:weavers", "member", "user:anne@example.com"),
    ],
)
def test_a_tuple_the_model_allows_is_accepted(accepted):
    assert validate_tuple(MODEL, accepted) == (
        accepted["object"],
        accepted["relation"],
        accepted["user"],
    )


def test_a_model_as_json_validates_as_the_compiled_one_does():
    accepted = t("document:1", "viewer", "group:weavers#member")

    assert validate_tuple(documents_model(), accepted) == validate_tuple(MODEL, accepted)


def test_an_unknown_object_type_is_refused():
    with pytest.raises(RebacTupleError, match="unknown object type 'spreadsheet'"):
        validate_tuple(MODEL, t("spreadsheet:1", "viewer", "user:anne"))


def test_an_unknown_subject_type_is_refused():
    with pytest.raises(RebacTupleError, match="unknown subject type 'robot'"):
        validate_tuple(MODEL, t("document:1", "viewer", "robot:r2"))


def test_an_unknown_relation_is_refused():
    with pytest.raises(RebacTupleError, match="type 'document' has no relation 'reader'"):
        validate_tuple(MODEL, t("document:1", "reader", "user:anne"))


def test_a_userset_naming_an_unknown_relation_is_refused():
    with pytest.raises(RebacTupleError, match="type 'group' has no relation 'admin'"):
        validate_tuple(MODEL, t("document:1", "viewer", "group:weavers#admin"))


def test_a_tuple_on_a_computed_relation_is_refused():
    with pytest.raises(RebacTupleError, match="computed from other relations"):
        validate_tuple(MODEL, t("document:1", "can_view", "user:anne"))


@pytest.mark.parametrize(
    ("refused", "kind"),
    [
        (t("document:1", "owner", "group:weavers#member"), "userset"),
        (t("document:1", "owner", "user:*"), "wildcard"),
        (t("document:1", "parent", "user:anne"), "subject"),
        (t("document:1", "parent", "folder:a#viewer"), "userset"),
        (t("group:weavers", "member", "document:1#viewer"), "userset"),
    ],
)
def test_a_subject_the_type_restrictions_do_not_allow_is_refused(refused, kind):
    with pytest.raises(RebacTupleError, match=f"does not allow the {kind}"):
        validate_tuple(MODEL, refused)


@pytest.mark.parametrize(
    "refused",
    [
        t("document", "viewer", "user:anne"),
        t("document:", "viewer", "user:anne"),
        t(":1", "viewer", "user:anne"),
        t("document:1#viewer", "viewer", "user:anne"),
        t("document:*", "viewer", "user:anne"),
        t("document:1 2", "viewer", "user:anne"),
        t("document:1", "viewer", "anne"),
        t("document:1", "viewer", "user:*#member"),
        t("document:1", "viewer", "group:weavers#"),
        t("document:1", "viewer", "user:a:b"),
        t("document:1", "viewer", 7),
        t("document:1", "", "user:anne"),
    ],
)
def test_a_malformed_string_is_refused(refused):
    with pytest.raises(RebacTupleError):
        validate_tuple(MODEL, refused)


@pytest.mark.parametrize(
    "refused",
    [
        ("document:1", "viewer", "user:anne"),
        {"object": "document:1", "relation": "viewer"},
        {"object": "document:1", "relation": "viewer", "user": "user:anne", "extra": 1},
    ],
)
def test_something_other_than_a_tuple_is_refused(refused):
    with pytest.raises(RebacTupleError, match="a tuple is"):
        validate_tuple(MODEL, refused)


def test_raw_tuples_given_to_check_are_validated():
    with pytest.raises(RebacTupleError, match="does not allow"):
        check(MODEL, [t("document:1", "owner", "user:*")], "document:1", "owner", "user:anne")


def test_contextual_tuples_are_validated():
    with pytest.raises(RebacTupleError, match="unknown object type"):
        check(
            MODEL,
            TupleIndex(),
            "document:1",
            "viewer",
            "user:anne",
            [t("sheet:1", "viewer", "user:anne")],
        )


@pytest.mark.parametrize(
    ("object", "relation", "user", "message"),
    [
        ("sheet:1", "viewer", "user:anne", "unknown object type"),
        ("document:1", "reader", "user:anne", "has no relation"),
        ("document:1", "viewer", "robot:r2", "unknown subject type"),
        ("document:1", "viewer", "anne", "not a subject"),
    ],
)
def test_a_check_about_unknown_things_is_refused(object, relation, user, message):
    with pytest.raises(RebacTupleError, match=message):
        check(MODEL, TupleIndex(), object, relation, user)


@pytest.mark.parametrize(
    ("user", "type", "relation", "message"),
    [
        ("user:anne", "sheet", "viewer", "unknown object type"),
        ("user:anne", "document", "reader", "has no relation"),
        ("anne", "document", "viewer", "not a subject"),
    ],
)
def test_a_listing_about_unknown_things_is_refused(user, type, relation, message):
    with pytest.raises(RebacTupleError, match=message):
        list_objects(MODEL, TupleIndex(), user, type, relation)


def test_indexing_a_tuple_twice_keeps_one():
    index = TupleIndex([t("document:1", "viewer", "user:anne")] * 2)

    assert len(index) == 1
    assert list(index.objects_of("document", "viewer", "user:anne")) == ["document:1"]
