"""A model the engine cannot answer consistently is refused, with a message naming the fault."""

import copy
import json

import pytest

from market.rebac.engine import RebacModelError, load_model, validate_model
from market.rebac.market_model import MARKET_MODEL_PATH
from tests.market.rebac.modeling import (
    THIS,
    computed,
    difference,
    documents_model,
    inherited,
    intersection,
    model,
    type_definition,
    union,
)

USER = type_definition("user")


def document(relations, allowed=None):
    return model(USER, type_definition("document", relations, allowed))


def test_the_documents_model_and_the_market_model_are_accepted():
    validate_model(documents_model())
    load_model(MARKET_MODEL_PATH)


@pytest.mark.parametrize(
    ("broken", "message"),
    [
        ([], "is a JSON object"),
        ({"schema_version": "1.1"}, "type_definitions must be a non-empty list"),
        ({"schema_version": "1.0", "type_definitions": [{"type": "user"}]}, "schema_version"),
        (model({"name": "user"}), r"type_definitions\[0\] must be an object with a 'type'"),
        (model(USER, USER), "type 'user' is defined twice"),
        (model({"type": "user:x"}), "not a valid name"),
        (
            document({"viewer": {"this": {}, "computedUserset": {"relation": "x"}}}),
            "exactly one of",
        ),
        (document({"viewer": {"everyone": {}}}), "exactly one of"),
        (document({"viewer": {"union": {"child": []}}}), "non-empty 'child' list"),
        (document({"viewer": {"computedUserset": {"name": "owner"}}}), r"expected \{'relation'"),
        (
            document({"viewer": {"difference": {"base": THIS}}}),
            "needs exactly 'base' and 'subtract'",
        ),
        (document({"viewer": "this"}), "defined by an object"),
    ],
)
def test_a_malformed_model_is_refused(broken, message):
    with pytest.raises(RebacModelError, match=message):
        validate_model(broken)


def test_a_restriction_naming_an_unknown_type_is_refused():
    broken = document({"viewer": THIS}, {"viewer": ["user", "team#member"]})

    with pytest.raises(
        RebacModelError, match="document#viewer: restriction names unknown type 'team'"
    ):
        validate_model(broken)


def test_a_userset_restriction_naming_an_undefined_relation_is_refused():
    broken = document({"viewer": THIS}, {"viewer": ["document#owner"]})

    with pytest.raises(RebacModelError, match="document#owner names an undefined relation"):
        validate_model(broken)


def test_computing_from_an_undefined_relation_is_refused():
    broken = document({"viewer": union(THIS, computed("owner"))}, {"viewer": ["user"]})

    with pytest.raises(RebacModelError, match="computes from undefined relation 'owner'"):
        validate_model(broken)


def test_a_tupleset_naming_an_undefined_relation_is_refused():
    broken = document({"viewer": inherited("parent", "viewer")})

    with pytest.raises(RebacModelError, match="tupleset names undefined relation 'parent'"):
        validate_model(broken)


def test_inheriting_a_relation_no_parent_type_defines_is_refused():
    broken = model(
        USER,
        type_definition("folder", {"owner": THIS}, {"owner": ["user"]}),
        type_definition(
            "document",
            {"parent": THIS, "viewer": inherited("parent", "viewer")},
            {"parent": ["folder"]},
        ),
    )

    with pytest.raises(RebacModelError, match="defines relation 'viewer'"):
        validate_model(broken)


def test_a_tupleset_that_accepts_usersets_is_refused():
    broken = document(
        {"parent": THIS, "owner": THIS, "viewer": inherited("parent", "owner")},
        {"parent": ["document#owner"], "owner": ["user"]},
    )

    with pytest.raises(RebacModelError, match="plain types only"):
        validate_model(broken)


def test_a_direct_relation_without_type_restrictions_is_refused():
    with pytest.raises(RebacModelError, match="must list directly_related_user_types"):
        validate_model(document({"viewer": THIS}))


def test_type_restrictions_on_a_computed_relation_are_refused():
    broken = document(
        {"owner": THIS, "viewer": computed("owner")}, {"owner": ["user"], "viewer": ["user"]}
    )

    with pytest.raises(RebacModelError, match="only such a relation may list them"):
        validate_model(broken)


def test_metadata_for_an_undefined_relation_is_refused():
    broken = document({"viewer": THIS}, {"viewer": ["user"], "editor": ["user"]})

    with pytest.raises(RebacModelError, match="metadata names relation 'editor'"):
        validate_model(broken)


def test_a_cycle_of_computed_relations_with_no_base_case_is_refused():
    broken = document({"a": computed("b"), "b": computed("a")})

    with pytest.raises(
        RebacModelError, match=r"can never be granted.*document#a → document#b → document#a"
    ):
        validate_model(broken)


def test_a_cycle_that_an_intersection_cannot_leave_is_refused():
    broken = document(
        {"owner": THIS, "a": intersection(computed("owner"), computed("b")), "b": computed("a")},
        {"owner": ["user"]},
    )

    with pytest.raises(RebacModelError, match="can never be granted"):
        validate_model(broken)


def test_a_cycle_with_a_base_case_is_accepted():
    validate_model(
        document(
            {"owner": THIS, "a": union(computed("owner"), computed("b")), "b": computed("a")},
            {"owner": ["user"]},
        )
    )


def test_a_relation_that_may_exclude_itself_through_a_computed_relation_is_accepted():
    # Whether it loops depends on the tuples: checks find out (test_engine_exclusion_cycles).
    validate_model(
        document(
            {
                "viewer": difference(THIS, computed("blocked")),
                "blocked": union(THIS, computed("viewer")),
            },
            {"viewer": ["user"], "blocked": ["user"]},
        )
    )


def test_a_relation_that_may_exclude_itself_through_a_userset_is_accepted():
    validate_model(
        document(
            {"viewer": difference(THIS, computed("blocked")), "blocked": THIS},
            {"viewer": ["user"], "blocked": ["user", "document#viewer"]},
        )
    )


def test_a_model_file_that_is_not_json_is_refused(tmp_path):
    path = tmp_path / "model.json"
    path.write_text("{not json", encoding="utf-8")

    with pytest.raises(RebacModelError, match="is not JSON"):
        load_model(path)


def test_a_model_file_with_a_cycle_is_refused(tmp_path):
    market = json.loads(MARKET_MODEL_PATH.read_text(encoding="utf-8"))
    broken = copy.deepcopy(market)
    for definition in broken["type_definitions"]:
        if definition["type"] == "market":
            definition["relations"]["can_write"] = computed("can_read")
    path = tmp_path / "model.json"
    path.write_text(json.dumps(broken), encoding="utf-8")

    with pytest.raises(
        RebacModelError, match="market#can_write → market#can_read → market#can_write"
    ):
        load_model(path)
