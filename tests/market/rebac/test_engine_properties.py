"""On random models and tuples, check and list_objects agree with the least fixed point.

The models are random in how derived document relations combine the others (union,
intersection, difference, computed, inherited from folders); the tuples are random too, and
often cyclic (groups in groups, folders in folders, documents' viewers in each other).
"""

import dataclasses

from hypothesis import given, settings
from hypothesis import strategies as st

from market.rebac import engine
from market.rebac.engine import TupleIndex, check, list_objects, validate_model
from market.rebac.resolution import Resolution
from tests.market.rebac import reference
from tests.market.rebac.modeling import (
    THIS,
    computed,
    difference,
    inherited,
    intersection,
    model,
    t,
    type_definition,
    union,
)

BASE_RELATIONS = ("viewer", "owner", "blocked")
SUBJECTS = [f"user:{u}" for u in reference.USERS] + ["user:*"]


def random_model(derived):
    relations = {"parent": THIS, "viewer": THIS, "owner": THIS, "blocked": THIS}
    relations |= dict(derived)
    return model(
        type_definition("user"),
        type_definition("group", {"member": THIS}, {"member": ["user", "group#member"]}),
        type_definition(
            "folder",
            {"parent": THIS, "viewer": union(THIS, inherited("parent", "viewer"))},
            {"parent": ["folder"], "viewer": ["user", "user:*", "group#member"]},
        ),
        type_definition(
            "document",
            relations,
            {
                "parent": ["folder"],
                "viewer": ["user", "user:*", "group#member", "document#viewer"],
                "owner": ["user"],
                "blocked": ["user", "group#member"],
            },
        ),
    )


def rewrites(earlier):
    """Definitions built from the base relations, `earlier` derived ones and the folders."""
    leaves = st.sampled_from(
        [computed(r) for r in (*BASE_RELATIONS, *earlier)] + [inherited("parent", "viewer")]
    )
    return st.recursive(
        leaves,
        lambda inner: st.one_of(
            st.lists(inner, min_size=1, max_size=3).map(lambda c: union(*c)),
            st.lists(inner, min_size=1, max_size=3).map(lambda c: intersection(*c)),
            st.tuples(inner, inner).map(lambda pair: difference(*pair)),
        ),
        max_leaves=6,
    )


@st.composite
def derived_relations(draw):
    derived = []
    for i in range(draw(st.integers(1, 3))):
        derived.append((f"derived{i}", draw(rewrites([name for name, _ in derived]))))
    return derived


def every_valid_tuple():
    users = [f"user:{u}" for u in reference.USERS]
    groups = [f"group:{g}#member" for g in reference.GROUPS]
    found = [t(f"group:{g}", "member", s) for g in reference.GROUPS for s in users + groups]
    for f in reference.FOLDERS:
        found += [t(f"folder:{f}", "viewer", s) for s in [*users, "user:*", *groups]]
        found += [t(f"folder:{f}", "parent", f"folder:{p}") for p in reference.FOLDERS]
    for d in reference.DOCUMENTS:
        object = f"document:{d}"
        found += [t(object, "parent", f"folder:{f}") for f in reference.FOLDERS]
        viewers = [*users, "user:*", *groups] + [
            f"document:{e}#viewer" for e in reference.DOCUMENTS
        ]
        found += [t(object, "viewer", s) for s in viewers]
        found += [t(object, "owner", s) for s in users]
        found += [t(object, "blocked", s) for s in users + groups]
    return found


TUPLES = st.lists(st.sampled_from(every_valid_tuple()), min_size=4, max_size=40)
# Only viewers and members, mostly usersets: cycles in most examples.
CYCLIC_TUPLES = st.lists(
    st.sampled_from(
        [
            x
            for x in every_valid_tuple()
            if x["relation"] in ("viewer", "member") and x["user"] != "user:*"
        ]
    ),
    min_size=3,
    max_size=16,
)


def disagreements(derived, tuples):
    """(object, relation, subject) where check or list_objects differs from the reference."""
    compiled = validate_model(random_model(derived))
    index = TupleIndex(tuples, model=compiled)
    expected = reference.evaluate(tuples, derived)
    relations = [*BASE_RELATIONS, *(name for name, _ in derived)]
    wrong = []
    for subject in SUBJECTS:
        held = subject.removeprefix("user:")
        questions = [(f"document:{d}", r) for d in reference.DOCUMENTS for r in relations]
        questions += [(f"group:{g}", "member") for g in reference.GROUPS]
        # What one resolution settles is reused by its later checks: ask in both orders.
        for order in (questions, questions[::-1]):
            shared = engine.Resolution(compiled, index, subject)
            for object, relation in order:
                if shared.holds(object, relation) != (held in expected[(object, relation)]):
                    wrong.append((object, relation, subject))
        for relation in relations:
            listed = list_objects(compiled, index, subject, "document", relation)
            for d in reference.DOCUMENTS:
                object = f"document:{d}"
                want = held in expected[(object, relation)]
                if (
                    check(compiled, index, object, relation, subject) != want
                    or (object in listed) != want
                ):
                    wrong.append((object, relation, subject))
        for group in reference.GROUPS:
            want = held in expected[(f"group:{group}", "member")]
            if check(compiled, index, f"group:{group}", "member", subject) != want:
                wrong.append((f"group:{group}", "member", subject))
    return wrong


@settings(max_examples=300, deadline=None)
@given(derived_relations(), TUPLES)
def test_check_and_list_objects_agree_with_the_least_fixed_point(derived, tuples):
    assert disagreements(derived, tuples) == []


@settings(max_examples=500, deadline=None)
@given(derived_relations(), CYCLIC_TUPLES)
def test_cyclic_usersets_agree_with_the_least_fixed_point(derived, tuples):
    assert disagreements(derived, tuples) == []


@settings(max_examples=200, deadline=None)
@given(derived_relations(), TUPLES)
def test_list_objects_is_check_over_every_object(derived, tuples):
    compiled = validate_model(random_model(derived))
    index = TupleIndex(tuples, model=compiled)
    for subject in SUBJECTS:
        for relation in [*BASE_RELATIONS, *(name for name, _ in derived)]:
            brute_force = [
                f"document:{d}"
                for d in reference.DOCUMENTS
                if check(compiled, index, f"document:{d}", relation, subject)
            ]
            assert list_objects(compiled, index, subject, "document", relation) == brute_force


INHERITED_ONLY = [("derived0", inherited("parent", "viewer"))]
FOLDER_CHAIN = [
    t("document:d0", "parent", "folder:f0"),
    t("folder:f0", "parent", "folder:f1"),
    t("folder:f1", "viewer", "user:u0"),
]


def test_control_a_listing_that_forgets_inheritance_is_caught(monkeypatch):
    class WithoutInheritance(engine.Walk):
        def __init__(self, model, *args, **kwargs):
            super().__init__(dataclasses.replace(model, inherited_by={}), *args, **kwargs)

    monkeypatch.setattr(engine, "Walk", WithoutInheritance)

    assert ("document:d0", "derived0", "user:u0") in disagreements(INHERITED_ONLY, FOLDER_CHAIN)


def test_control_treating_a_cycle_as_a_grant_is_caught(monkeypatch):
    class CycleGrants(Resolution):
        def relation(self, object, relation, depth):
            if (object, relation) in self.path:
                return True
            return super().relation(object, relation, depth)

    monkeypatch.setattr(engine, "Resolution", CycleGrants)
    cycle = [t("group:g0", "member", "group:g1#member"), t("group:g1", "member", "group:g0#member")]

    assert ("group:g0", "member", "user:u0") in disagreements(INHERITED_ONLY, cycle)


def test_the_controls_examples_agree_without_the_planted_bugs():
    cycle = [t("group:g0", "member", "group:g1#member"), t("group:g1", "member", "group:g0#member")]

    assert disagreements(INHERITED_ONLY, FOLDER_CHAIN) == []
    assert disagreements(INHERITED_ONLY, cycle) == []
