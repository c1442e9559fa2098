"""The relation engine: does a user hold a relation on an object, and on which objects?

Pure Python, no Django: the same code answers from an in-memory `TupleIndex` and, through the
`TupleSource` protocol, from the database. A check walks the definition of the relation depth
first. Its answer is the least fixed point of the definitions over the tuples: a grant needs a
finite chain of tuples, so a cycle (group a in group b in group a) grants nothing by itself.
The walk treats a step back onto its own path as "no" for that path, remembers every answer
that did not rest on such a step, and raises RebacDepthError rather than follow more than
MAX_DEPTH nested steps; it never grants because it gave up. A step back onto its path from
inside an exclusion on the loop raises RebacCycleError instead (the relation would exclude
itself).
"""

from collections.abc import Iterable, Mapping
from typing import Any

from market.rebac.errors import (
    RebacCycleError,
    RebacDepthError,
    RebacError,
    RebacModelError,
    RebacTupleError,
    RebacUnresolvedError,
)
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
    "RebacCycleError",
    "RebacDepthError",
    "RebacError",
    "RebacModelError",
    "RebacTupleError",
    "RebacUnresolvedError",
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
        if self.model.unions_only:
            return sorted_reachable(self.model, source, user, (type, relation))
        candidates = reachable_objects(self.model, source, user, (type, relation))
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


Node = tuple[str, str]
# Per model (by identity, the model kept alive beside it): per target, the walk's plan.
_PLANS: dict[int, tuple[AuthorizationModel, dict[Node, dict[Node, "Steps"]]]] = {}


class Steps:
    """Where the walk goes from one (type, relation), keeping only what leads to the target."""

    __slots__ = ("computed", "inherited", "usersets", "userset_kind")

    def __init__(self) -> None:
        self.computed: list[str] = []
        self.inherited: list[tuple[str, str, str]] = []
        self.usersets: list[Node] = []
        self.userset_kind = ""

    def __bool__(self) -> bool:
        return bool(self.computed or self.inherited or self.usersets)


def walk_plan(model: AuthorizationModel, target: Node) -> dict[Node, Steps]:
    """(type, relation) → its steps, for every node from which the walk can reach `target`.

    A node missing from the plan cannot lead to `target`, so the walk never visits it:
    listing a chunk relation does not wander through relations that only grant booths.
    """
    cached = _PLANS.get(id(model))
    if cached is None or cached[0] is not model:
        if len(_PLANS) >= 64:
            _PLANS.clear()
        cached = _PLANS[id(model)] = (model, {})
    plans = cached[1]
    plan = plans.get(target)
    if plan is not None:
        return plan
    successors: dict[Node, list[tuple[str, object]]] = {}
    for object_type, by_name in model.relations.items():
        for relation in by_name:
            node = (object_type, relation)
            out = successors.setdefault(node, [])
            out += [("computed", r) for r in model.rewritten_by.get(node, ())]
            out += [("inherited", entry) for entry in model.inherited_by.get(node, ())]
            out += [("userset", n) for n in model.assignable.get(f"{object_type}#{relation}", ())]
    predecessors: dict[Node, list[Node]] = {}
    for node, out in successors.items():
        for kind, step in out:
            following = (
                (node[0], step)
                if kind == "computed"
                else (step[0], step[2])
                if kind == "inherited"
                else step
            )
            predecessors.setdefault(following, []).append(node)
    relevant, queue = {target}, [target]
    while queue:
        for node in predecessors.get(queue.pop(), ()):
            if node not in relevant:
                relevant.add(node)
                queue.append(node)
    plan = {}
    for node in relevant:
        steps = plan[node] = Steps()
        steps.userset_kind = f"{node[0]}#{node[1]}"
        for kind, step in successors[node]:
            if kind == "computed" and (node[0], step) in relevant:
                steps.computed.append(step)
            elif kind == "inherited" and (step[0], step[2]) in relevant:
                steps.inherited.append(step)
            elif kind == "userset" and step in relevant:
                steps.usersets.append(step)
    plans[target] = plan
    return plan


def reachable_objects(
    model: AuthorizationModel, source: TupleSource, user: str, target: Node
) -> set[str]:
    """Every object that may hold the `target` relation for `user`, walking back from it.

    The walk follows the model's edges backwards from the user (the objects it names, then
    the usersets and parents those lead to), only along nodes that can lead to `target`. It
    goes breadth first, so an object first reached at step n has a chain of n nested lookups
    down to the user; like a check, it raises RebacDepthError past MAX_DEPTH.
    """
    return Walk(model, source, user, target, runs=False).run()


def sorted_reachable(
    model: AuthorizationModel, source: TupleSource, user: str, target: Node
) -> list[str]:
    """`sorted(reachable_objects(...))`, without sorting names where the source need not.

    When the source numbers its objects (`object_run` and `sorted_objects`, as TupleIndex
    does) and nothing leads on from `target`, the walk keeps the runs of ids it reaches
    `target` through, and the source sorts them as integers.
    """
    walk = Walk(model, source, user, target, runs=hasattr(source, "object_run"))
    reached = walk.run()
    if not walk.runs:
        return sorted(reached)
    return source.sorted_objects(target[0], walk.runs, reached)  # type: ignore[attr-defined]


class Walk:
    """One breadth-first walk back from a user; see `reachable_objects`.

    With `runs`, the objects reaching `target` through a source's runs of ids are kept as
    those runs (`self.runs`), not as names, when `target` leads nowhere further: then they
    matter only for the answer and for the depth bound, and past the bound the walk turns
    them into names (`self.runs` None) to tell whether any was new, exactly as with names.
    """

    def __init__(
        self,
        model: AuthorizationModel,
        source: TupleSource,
        user: str,
        target: Node,
        runs: bool,
    ) -> None:
        self.model, self.source, self.user, self.target = model, source, user, target
        self.plan = walk_plan(model, target)
        self.runs: list | None = [] if runs and not self.plan[target] else None
        self.pending: list = []  # runs reaching `target` in the step being gathered

    def objects_into(
        self, into: dict[Node, list[str]], node: Node, relation: str, subject: str
    ) -> None:
        """The objects of `node`'s type with `relation` to `subject`, gathered for `node`."""
        if node == self.target and self.runs is not None:
            run = self.source.object_run(node[0], relation, subject)  # type: ignore[attr-defined]
            if run:
                self.pending.append(run)
            return
        into[node].extend(self.source.objects_of(node[0], relation, subject))

    def named(self, subject: str, kind: str, into: dict[Node, list[str]]) -> None:
        for node in self.model.assignable.get(kind, ()):
            if node not in self.plan:
                continue
            if node == self.target and self.runs is not None:
                into.setdefault(node, [])
                self.objects_into(into, node, node[1], subject)
                if not self.pending and not into[node]:
                    del into[node]
                continue
            objects = self.source.objects_of(node[0], node[1], subject)
            if objects:
                into.setdefault(node, []).extend(objects)

    def names_of(self, runs: list) -> list[str]:
        return self.source.sorted_objects(self.target[0], runs)  # type: ignore[attr-defined]

    def run(self) -> set[str]:
        plan, user, target = self.plan, self.user, self.target
        subject_object, _, subject_relation = user.partition("#")
        subject_type, _, subject_id = subject_object.partition(":")
        frontier: dict[Node, list[str]] = {}
        if subject_relation:
            node = (subject_type, subject_relation)
            if node in plan:
                frontier[node] = [subject_object]
            step = 0
        elif subject_id == "*":
            self.named(user, user, frontier)
            step = 1
        else:
            self.named(user, subject_type, frontier)
            self.named(f"{subject_type}:*", f"{subject_type}:*", frontier)
            step = 1
        seen: dict[Node, set[str]] = {node: set() for node in plan}
        while frontier:
            if self.runs is not None and step > MAX_DEPTH:
                # Past the bound, whether anything new reached `target` decides: by name.
                seen[target].update(self.names_of(self.runs))
                if self.pending:
                    frontier.setdefault(target, []).extend(self.names_of(self.pending))
                self.runs = None
            fresh: dict[Node, set[str]] = {}
            for node, objects in frontier.items():
                new = set(objects)
                new -= seen[node]
                if new:
                    seen[node] |= new
                    fresh[node] = new
            if self.runs is not None and self.pending:
                self.runs += self.pending
                fresh.setdefault(target, set())
            self.pending = []
            if not fresh:
                break
            if step > MAX_DEPTH:
                node, objects = next(iter(fresh.items()))
                raise RebacDepthError(
                    f"listing for {user} needed more than {MAX_DEPTH} nested steps "
                    f"(reached {min(objects)}#{node[1]}); the tuples nest too deeply"
                )
            following: dict[Node, list[str]] = {}
            for node, new in fresh.items():
                steps = plan[node]
                if not steps:
                    continue
                for relation in steps.computed:
                    following.setdefault((node[0], relation), []).extend(new)
                for parent_type, tupleset, inherited in steps.inherited:
                    parent = (parent_type, inherited)
                    following.setdefault(parent, [])
                    for object in new:
                        self.objects_into(following, parent, tupleset, object)
                for object_type, relation in steps.usersets:
                    node_to = (object_type, relation)
                    following.setdefault(node_to, [])
                    for object in new:
                        self.objects_into(following, node_to, relation, f"{object}#{node[1]}")
            frontier, step = following, step + 1
        return seen[target]


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
