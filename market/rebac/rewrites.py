"""How a relation is defined: OpenFGA's userset rewrites, read from JSON into small records.

A relation's definition is a tree whose leaves are `This` (the tuples written on the relation
itself), `Computed` (another relation of the same object) and `TupleToUserset` (a relation of
the objects a tupleset relation points at), joined by `Union`, `Intersection` and `Difference`.
"""

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from market.rebac.errors import RebacModelError


@dataclass(frozen=True, slots=True)
class This:
    """The subjects written directly on the relation (`{"this": {}}`)."""


@dataclass(frozen=True, slots=True)
class Computed:
    """Whoever holds `relation` on the same object (`computedUserset`)."""

    relation: str


@dataclass(frozen=True, slots=True)
class TupleToUserset:
    """Whoever holds `relation` on an object that `tupleset` points at."""

    tupleset: str
    relation: str


@dataclass(frozen=True, slots=True)
class Union:
    children: tuple["Rewrite", ...]


@dataclass(frozen=True, slots=True)
class Intersection:
    children: tuple["Rewrite", ...]


@dataclass(frozen=True, slots=True)
class Difference:
    """Whoever is in `base` and not in `subtract` (`base but not subtract`)."""

    base: "Rewrite"
    subtract: "Rewrite"


Rewrite = This | Computed | TupleToUserset | Union | Intersection | Difference

REWRITE_KEYS = ("this", "computedUserset", "tupleToUserset", "union", "intersection", "difference")


def parse_rewrite(value: Any, where: str) -> Rewrite:
    """The rewrite that the JSON `value` declares; `where` names it in error messages."""
    if not isinstance(value, Mapping):
        raise RebacModelError(f"{where}: a relation is defined by an object, not {value!r}")
    keys = [key for key in value if key in REWRITE_KEYS]
    if len(keys) != 1 or len(value) != 1:
        raise RebacModelError(
            f"{where}: expected exactly one of {', '.join(REWRITE_KEYS)}, got {sorted(value)}"
        )
    key = keys[0]
    body = value[key]
    if key == "this":
        if body not in ({}, None):
            raise RebacModelError(f"{where}: 'this' takes an empty object, got {body!r}")
        return This()
    if key == "computedUserset":
        return Computed(relation_reference(body, f"{where}.computedUserset"))
    if key == "tupleToUserset":
        if not isinstance(body, Mapping) or set(body) != {"tupleset", "computedUserset"}:
            raise RebacModelError(
                f"{where}: tupleToUserset needs exactly 'tupleset' and 'computedUserset'"
            )
        return TupleToUserset(
            tupleset=relation_reference(body["tupleset"], f"{where}.tupleset"),
            relation=relation_reference(body["computedUserset"], f"{where}.computedUserset"),
        )
    if key == "difference":
        if not isinstance(body, Mapping) or set(body) != {"base", "subtract"}:
            raise RebacModelError(f"{where}: difference needs exactly 'base' and 'subtract'")
        return Difference(
            base=parse_rewrite(body["base"], f"{where}.base"),
            subtract=parse_rewrite(body["subtract"], f"{where}.subtract"),
        )
    children = body.get("child") if isinstance(body, Mapping) else None
    if not isinstance(children, list) or not children or set(body) != {"child"}:
        raise RebacModelError(f"{where}: {key} needs a non-empty 'child' list")
    parsed = tuple(parse_rewrite(child, f"{where}.{key}[{i}]") for i, child in enumerate(children))
    return Union(parsed) if key == "union" else Intersection(parsed)


def relation_reference(value: Any, where: str) -> str:
    """The relation named by `{"relation": name}` (OpenFGA also writes an empty `object`)."""
    if (
        not isinstance(value, Mapping)
        or not isinstance(value.get("relation"), str)
        or not value["relation"]
        or set(value) - {"relation", "object"}
        or value.get("object", "") != ""
    ):
        raise RebacModelError(f"{where}: expected {{'relation': '<name>'}}, got {value!r}")
    return value["relation"]


def leaves(rewrite: Rewrite, *, positive: bool = True) -> Iterator[tuple[Rewrite, bool]]:
    """Every leaf of `rewrite`, with whether it counts for the relation (False under `subtract`)."""
    match rewrite:
        case Union(children) | Intersection(children):
            for child in children:
                yield from leaves(child, positive=positive)
        case Difference(base, subtract):
            yield from leaves(base, positive=positive)
            yield from leaves(subtract, positive=False)
        case _:
            yield rewrite, positive


def is_assignable(rewrite: Rewrite) -> bool:
    """Whether tuples may be written on the relation: its definition uses `this` somewhere."""
    return any(isinstance(leaf, This) for leaf, _ in leaves(rewrite))


def unions_only(rewrite: Rewrite) -> bool:
    """Whether `rewrite` grows with the tuples and only joins with `union` (no and, no but not)."""
    match rewrite:
        case Union(children):
            return all(unions_only(child) for child in children)
        case Intersection() | Difference():
            return False
    return True
