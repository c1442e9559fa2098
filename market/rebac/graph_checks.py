"""The model's relation graph: edges listings walk back along, and relations no tuple can grant.

A node is (type, relation). An edge (A → B) says that evaluating A may evaluate B: through a
computed userset, a tuple-to-userset (the tupleset and the inherited relation on each type it
may point at), or a userset that A's type restrictions allow. Edges under the `subtract` of a
difference are negative.
"""

from collections.abc import Mapping
from typing import TYPE_CHECKING

from market.rebac.errors import RebacModelError
from market.rebac.rewrites import (
    Computed,
    Difference,
    Intersection,
    Rewrite,
    This,
    TupleToUserset,
    Union,
    leaves,
)

if TYPE_CHECKING:
    from market.rebac.schema import AuthorizationModel, Restrictions

Node = tuple[str, str]


def assignable_kinds(
    restrictions: "Mapping[Node, Restrictions]",
) -> dict[str, tuple[Node, ...]]:
    """Subject kind (`user`, `user:*`, `group#member`) → relations that accept it directly."""
    kinds: dict[str, list[Node]] = {}
    for node, allowed in restrictions.items():
        names = [*allowed.types, *(f"{t}:*" for t in allowed.wildcards)]
        names += [f"{t}#{r}" for t, r in allowed.usersets]
        for name in names:
            kinds.setdefault(name, []).append(node)
    return {kind: tuple(nodes) for kind, nodes in kinds.items()}


def computed_dependents(
    relations: Mapping[str, Mapping[str, Rewrite]],
) -> dict[Node, tuple[str, ...]]:
    """(type, relation) → relations of that type that grant whoever holds it (not via subtract)."""
    dependents: dict[Node, list[str]] = {}
    for object_type, by_name in relations.items():
        for relation, rewrite in by_name.items():
            for leaf, positive in leaves(rewrite):
                if positive and isinstance(leaf, Computed):
                    dependents.setdefault((object_type, leaf.relation), []).append(relation)
    return {node: tuple(dict.fromkeys(names)) for node, names in dependents.items()}


def inherited_dependents(
    relations: Mapping[str, Mapping[str, Rewrite]],
    restrictions: "Mapping[Node, Restrictions]",
) -> dict[Node, tuple[tuple[str, str, str], ...]]:
    """(child type, relation) → (parent type, tupleset, relation) inheriting it (not via subtract)."""
    dependents: dict[Node, list[tuple[str, str, str]]] = {}
    for object_type, by_name in relations.items():
        for relation, rewrite in by_name.items():
            for leaf, positive in leaves(rewrite):
                if not positive or not isinstance(leaf, TupleToUserset):
                    continue
                for child_type in restrictions[(object_type, leaf.tupleset)].types:
                    if leaf.relation in relations[child_type]:
                        entry = (object_type, leaf.tupleset, relation)
                        dependents.setdefault((child_type, leaf.relation), []).append(entry)
    return {node: tuple(dict.fromkeys(entries)) for node, entries in dependents.items()}


def dependencies(model: "AuthorizationModel") -> dict[Node, list[tuple[Node, bool]]]:
    """Every node's outgoing edges, each with whether it is positive."""
    edges: dict[Node, list[tuple[Node, bool]]] = {}
    for object_type, by_name in model.relations.items():
        for relation, rewrite in by_name.items():
            node = (object_type, relation)
            out = edges.setdefault(node, [])
            for leaf, positive in leaves(rewrite):
                out += [
                    (target, positive) for target in leaf_targets(model, object_type, node, leaf)
                ]
    return edges


def leaf_targets(
    model: "AuthorizationModel", object_type: str, node: Node, leaf: Rewrite
) -> list[Node]:
    if isinstance(leaf, This):
        return sorted(model.restrictions[node].usersets)
    if isinstance(leaf, Computed):
        return [(object_type, leaf.relation)]
    if isinstance(leaf, TupleToUserset):
        parents = sorted(model.restrictions[(object_type, leaf.tupleset)].types)
        inherited = [(p, leaf.relation) for p in parents if model.has_relation(p, leaf.relation)]
        return [(object_type, leaf.tupleset), *inherited]
    return []


def can_ground(
    model: "AuthorizationModel", object_type: str, node: Node, rewrite: Rewrite, grounded: set[Node]
) -> bool:
    """Whether some set of tuples could grant `rewrite`, given the nodes known to be grantable."""
    match rewrite:
        case This():
            allowed = model.restrictions[node]
            return bool(allowed.types or allowed.wildcards) or bool(allowed.usersets & grounded)
        case Computed(relation):
            return (object_type, relation) in grounded
        case TupleToUserset():
            return any(t in grounded for t in leaf_targets(model, object_type, node, rewrite)[1:])
        case Union(children):
            return any(can_ground(model, object_type, node, c, grounded) for c in children)
        case Intersection(children):
            return all(can_ground(model, object_type, node, c, grounded) for c in children)
        case Difference(base, _):
            return can_ground(model, object_type, node, base, grounded)
    raise AssertionError(rewrite)


def refuse_relations_without_entry_point(model: "AuthorizationModel") -> None:
    """Refuse a relation that no tuple can ever grant, such as `a: b` with `b: a`."""
    grounded: set[Node] = set()
    changed = True
    while changed:
        changed = False
        for object_type, by_name in model.relations.items():
            for relation, rewrite in by_name.items():
                node = (object_type, relation)
                if node not in grounded and can_ground(model, object_type, node, rewrite, grounded):
                    grounded.add(node)
                    changed = True
    stranded = [
        (t, r) for t, by_name in model.relations.items() for r in by_name if (t, r) not in grounded
    ]
    if not stranded:
        return
    edges = dependencies(model)
    walk = [stranded[0]]
    while True:
        following = [t for t, positive in edges[walk[-1]] if positive and t not in grounded]
        if not following:
            cycle = ""
            break
        if following[0] in walk:
            cycle = " → ".join(f"{t}#{r}" for t, r in walk[walk.index(following[0]) :])
            cycle = f" ({cycle} → {following[0][0]}#{following[0][1]})"
            break
        walk.append(following[0])
    first = f"{stranded[0][0]}#{stranded[0][1]}"
    raise RebacModelError(
        f"{first} can never be granted: it is defined only through a cycle with no base "
        f"case{cycle}; give the cycle a direct relation ('this') or remove it"
    )
