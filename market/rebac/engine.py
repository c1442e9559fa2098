"""The relation engine: does a user hold a relation on an object, and on which objects?

Pure Python, no Django: the same code answers from an in-memory `TupleIndex` and, through the
`TupleSource` protocol, from the database. A check walks the definition of the relation depth
first. Its answer is the least fixed point of the definitions over the tuples: a grant needs a
finite chain of tuples, so a cycle (group a in group b in group a) grants nothing by itself.
The walk treats a step back onto its own path as "no" for that path, remembers every answer
that did not rest on such a step, and raises RebacDepthError rather than follow more than
MAX_DEPTH nested steps; it never grants because it gave up.
"""

from collections.abc import Iterable, Mapping
from typing import Any

from market.rebac.errors import RebacDepthError, RebacError, RebacModelError, RebacTupleError
from market.rebac.resolution import MAX_DEPTH, Resolution
from market.rebac.schema import AuthorizationModel, compile_model, load_model, validate_model
from market.rebac.tuples import (
    LayeredSource,
    TupleIndex,
    TupleSource,
    check_object,
    check_subject,
    validate_tuple,
)

__all__ = [
    "MAX_DEPTH",
    "AuthorizationModel",
    "Graph",
    "LayeredSource",
    "RebacDepthError",
    "RebacError",
    "RebacModelError",
    "RebacTupleError",
    "TupleIndex",
    "TupleSource",
    "check",
    "list_objects",
    "load_model",
    "validate_model",
    "validate_tuple",
]

ModelInput = Mapping[str, Any] | AuthorizationModel
TuplesInput = Iterable[Mapping[str, str]] | TupleSource


class Graph:
    """A checked model over a source of tuples: answers checks and object listings."""

    def __init__(self, model: ModelInput, source: TupleSource) -> None:
        self.model = compile_model(model)
        self.source = source

    def check(
        self,
        object: str,
        relation: str,
        user: str,
        contextual_tuples: Iterable[Mapping[str, str]] = (),
    ) -> bool:
        """Whether `user` (a subject string) holds `relation` on `object`."""
        check_object(self.model, object, relation)
        check_subject(self.model, user)
        resolution = Resolution(self.model, self.with_context(contextual_tuples), user)
        return resolution.holds(object, relation)

    def list_objects(
        self,
        user: str,
        type: str,
        relation: str,
        contextual_tuples: Iterable[Mapping[str, str]] = (),
    ) -> list[str]:
        """Sorted objects of `type` on which `user` holds `relation`."""
        if type not in self.model.relations:
            raise RebacTupleError(f"unknown object type {type!r}")
        if not self.model.has_relation(type, relation):
            raise RebacTupleError(f"type {type!r} has no relation {relation!r}")
        check_subject(self.model, user)
        source = self.with_context(contextual_tuples)
        candidates = {
            object
            for object, held in reachable_usersets(self.model, source, user)
            if held == relation and object.partition(":")[0] == type
        }
        if self.model.unions_only:
            return sorted(candidates)
        # With intersections or exclusions, being reached back from the user is necessary,
        # not sufficient; one resolution confirms every candidate and shares what it settles.
        resolution = Resolution(self.model, source, user)
        return sorted(object for object in candidates if resolution.holds(object, relation))

    def with_context(self, contextual_tuples: Iterable[Mapping[str, str]]) -> TupleSource:
        """The graph's source, with `contextual_tuples` (validated) laid over it."""
        contextual_tuples = list(contextual_tuples)
        if not contextual_tuples:
            return self.source
        return LayeredSource(self.source, TupleIndex(contextual_tuples, model=self.model))


def reachable_usersets(
    model: AuthorizationModel, source: TupleSource, user: str
) -> set[tuple[str, str]]:
    """Every (object, relation) that may hold `user`: the model's edges walked back from it.

    The walk goes breadth first, so a pair first reached at step n has a chain of n nested
    lookups down to the user; like a check, it raises RebacDepthError past MAX_DEPTH.
    """
    seen: set[tuple[str, str]] = set()

    def named(subject: str, kind: str) -> list[tuple[str, str]]:
        return [
            (object, relation)
            for object_type, relation in model.assignable.get(kind, ())
            for object in source.objects_of(object_type, relation, subject)
        ]

    subject_object, _, subject_relation = user.partition("#")
    subject_type, _, subject_id = subject_object.partition(":")
    if subject_relation:
        frontier, step = [(subject_object, subject_relation)], 0
    elif subject_id == "*":
        frontier, step = named(user, user), 1
    else:
        frontier, step = (
            named(user, subject_type) + named(f"{subject_type}:*", f"{subject_type}:*"),
            1,
        )
    while frontier:
        if step > MAX_DEPTH:
            raise RebacDepthError(
                f"listing for {user} needed more than {MAX_DEPTH} nested steps "
                f"(reached {frontier[0][0]}#{frontier[0][1]}); the tuples nest too deeply"
            )
        following = []
        for node in frontier:
            if node in seen:
                continue
            seen.add(node)
            object, relation = node
            object_type = object.partition(":")[0]
            following += [(object, r) for r in model.rewritten_by.get((object_type, relation), ())]
            for parent_type, tupleset, inherited in model.inherited_by.get(
                (object_type, relation), ()
            ):
                following += [
                    (p, inherited) for p in source.objects_of(parent_type, tupleset, object)
                ]
            following += named(f"{object}#{relation}", f"{object_type}#{relation}")
        frontier, step = [node for node in following if node not in seen], step + 1
    return seen


def as_graph(model: ModelInput, tuples: TuplesInput) -> Graph:
    """A graph over `tuples`: a prebuilt source as it is, an iterable indexed (and validated)."""
    compiled = compile_model(model)
    if isinstance(tuples, TupleSource):
        return Graph(compiled, tuples)
    return Graph(compiled, TupleIndex(tuples, model=compiled))


def check(
    model: ModelInput,
    tuples: TuplesInput,
    object: str,
    relation: str,
    user: str,
    contextual_tuples: Iterable[Mapping[str, str]] = (),
) -> bool:
    """Whether `user` holds `relation` on `object` under `model` and `tuples`.

    `model` is OpenFGA JSON or a compiled AuthorizationModel; `tuples` an iterable of tuple
    dicts (validated and indexed on each call) or a prebuilt TupleSource such as TupleIndex.
    """
    return as_graph(model, tuples).check(object, relation, user, contextual_tuples)


def list_objects(
    model: ModelInput, tuples: TuplesInput, user: str, type: str, relation: str
) -> list[str]:
    """Sorted objects of `type` on which `user` holds `relation`."""
    return as_graph(model, tuples).list_objects(user, type, relation)
