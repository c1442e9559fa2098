"""Authorization models in OpenFGA's JSON shape, checked once and compiled for evaluation.

`compile_model` reads `{"schema_version": "1.1", "type_definitions": [...]}` and refuses, with
a message naming the type and relation, anything the engine could not answer consistently:
a malformed shape, a reference to an undefined type or relation, and a relation that no tuple
can ever grant (it is defined only through a cycle). A relation that may depend on its own
exclusion (`a but not b` where `b` leads back to `a`, directly or through a userset type
restriction) is accepted, as OpenFGA accepts it: whether it loops depends on the tuples, so
it is found at check time (resolution.py).
"""

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from market.rebac import graph_checks
from market.rebac.errors import RebacModelError
from market.rebac.rewrites import (
    Computed,
    Rewrite,
    This,
    TupleToUserset,
    is_assignable,
    leaves,
    parse_rewrite,
    unions_only,
)

SCHEMA_VERSION = "1.1"
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,63}")


@dataclass(frozen=True, slots=True)
class Restrictions:
    """Which subjects a directly assignable relation accepts (`directly_related_user_types`)."""

    types: frozenset[str]
    wildcards: frozenset[str]
    usersets: frozenset[tuple[str, str]]

    def allows(self, subject_type: str, subject_id: str, subject_relation: str) -> bool:
        if subject_relation:
            return (subject_type, subject_relation) in self.usersets
        if subject_id == "*":
            return subject_type in self.wildcards
        return subject_type in self.types


@dataclass(frozen=True, slots=True)
class AuthorizationModel:
    """A checked model: definitions per type and relation, and the edges listings walk back.

    `assignable` maps a subject kind (`user`, `user:*`, `group#member`) to the relations
    whose tuples may name such a subject; `rewritten_by` maps (type, relation) to the
    relations of the same type computed from it; `inherited_by` maps (type, relation) to
    (parent type, tupleset, relation) triples that inherit it through a tuple-to-userset.
    """

    relations: Mapping[str, Mapping[str, Rewrite]]
    restrictions: Mapping[tuple[str, str], Restrictions]
    assignable: Mapping[str, tuple[tuple[str, str], ...]]
    rewritten_by: Mapping[tuple[str, str], tuple[str, ...]]
    inherited_by: Mapping[tuple[str, str], tuple[tuple[str, str, str], ...]]
    unions_only: bool

    def has_relation(self, object_type: str, relation: str) -> bool:
        return relation in self.relations.get(object_type, {})


def compile_model(model: "Mapping[str, Any] | AuthorizationModel") -> AuthorizationModel:
    """`model` checked and compiled; an already compiled model is returned as it is."""
    if isinstance(model, AuthorizationModel):
        return model
    if not isinstance(model, Mapping):
        raise RebacModelError(
            f"an authorization model is a JSON object, not {type(model).__name__}"
        )
    version = model.get("schema_version", SCHEMA_VERSION)
    if version != SCHEMA_VERSION:
        raise RebacModelError(f"schema_version must be {SCHEMA_VERSION!r}, got {version!r}")
    definitions = model.get("type_definitions")
    if not isinstance(definitions, list) or not definitions:
        raise RebacModelError("type_definitions must be a non-empty list")
    relations: dict[str, dict[str, Rewrite]] = {}
    declared: dict[tuple[str, str], list[Any]] = {}
    for index, definition in enumerate(definitions):
        object_type = read_type_definition(definition, index, relations, declared)
        relations[object_type] = relations.get(object_type, {})
    restrictions = {
        key: read_restrictions(entries, key, relations) for key, entries in declared.items()
    }
    for object_type, by_name in relations.items():
        for relation, rewrite in by_name.items():
            check_definition(object_type, relation, rewrite, relations, restrictions)
    compiled = AuthorizationModel(
        relations=relations,
        restrictions=restrictions,
        assignable=graph_checks.assignable_kinds(restrictions),
        rewritten_by=graph_checks.computed_dependents(relations),
        inherited_by=graph_checks.inherited_dependents(relations, restrictions),
        unions_only=all(unions_only(r) for by_name in relations.values() for r in by_name.values()),
    )
    graph_checks.refuse_relations_without_entry_point(compiled)
    return compiled


def validate_model(model: "Mapping[str, Any] | AuthorizationModel") -> AuthorizationModel:
    """Raise RebacModelError if `model` cannot be used; return its compiled form otherwise."""
    return compile_model(model)


def load_model(path: Path) -> AuthorizationModel:
    """The model stored as JSON at `path`, checked and compiled."""
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise RebacModelError(f"{path} is not JSON: {error}") from error
    return compile_model(document)


def read_type_definition(
    definition: Any,
    index: int,
    relations: dict[str, dict[str, Rewrite]],
    declared: dict[tuple[str, str], list[Any]],
) -> str:
    """Parse one entry of type_definitions into `relations` and `declared` restrictions."""
    if not isinstance(definition, Mapping) or not isinstance(definition.get("type"), str):
        raise RebacModelError(f"type_definitions[{index}] must be an object with a 'type' name")
    object_type = definition["type"]
    if not NAME.fullmatch(object_type):
        raise RebacModelError(f"type name {object_type!r} is not a valid name")
    if object_type in relations:
        raise RebacModelError(f"type {object_type!r} is defined twice")
    unknown_keys = set(definition) - {"type", "relations", "metadata"}
    if unknown_keys:
        raise RebacModelError(f"type {object_type!r}: unknown keys {sorted(unknown_keys)}")
    raw_relations = definition.get("relations") or {}
    if not isinstance(raw_relations, Mapping):
        raise RebacModelError(f"type {object_type!r}: 'relations' must be an object")
    by_name: dict[str, Rewrite] = {}
    for relation, body in raw_relations.items():
        if not isinstance(relation, str) or not NAME.fullmatch(relation):
            raise RebacModelError(f"type {object_type!r}: {relation!r} is not a valid name")
        by_name[relation] = parse_rewrite(body, f"{object_type}#{relation}")
    relations[object_type] = by_name
    for relation, entries in read_metadata(definition.get("metadata"), object_type).items():
        if relation not in by_name:
            raise RebacModelError(
                f"type {object_type!r}: metadata names relation {relation!r}, which is not defined"
            )
        declared[(object_type, relation)] = entries
    return object_type


def read_metadata(metadata: Any, object_type: str) -> dict[str, list[Any]]:
    """directly_related_user_types per relation, as raw lists (empty ones dropped)."""
    if metadata is None:
        return {}
    relations = metadata.get("relations") if isinstance(metadata, Mapping) else None
    if relations is None:
        return {}
    if not isinstance(relations, Mapping):
        raise RebacModelError(f"type {object_type!r}: metadata.relations must be an object")
    declared = {}
    for relation, info in relations.items():
        entries = info.get("directly_related_user_types") if isinstance(info, Mapping) else None
        if entries is None:
            entries = []
        if not isinstance(entries, list):
            raise RebacModelError(
                f"{object_type}#{relation}: directly_related_user_types must be a list"
            )
        if entries:
            declared[relation] = entries
    return declared


def read_restrictions(
    entries: list[Any], key: tuple[str, str], relations: Mapping[str, Mapping[str, Rewrite]]
) -> Restrictions:
    """Restrictions of relation `key` from its directly_related_user_types entries."""
    where = f"{key[0]}#{key[1]}"
    types, wildcards, usersets = set(), set(), set()
    for entry in entries:
        if not isinstance(entry, Mapping) or not isinstance(entry.get("type"), str):
            raise RebacModelError(f"{where}: a restriction is {{'type': ...}}, not {entry!r}")
        subject_type = entry["type"]
        if subject_type not in relations:
            raise RebacModelError(f"{where}: restriction names unknown type {subject_type!r}")
        if set(entry) - {"type", "relation", "wildcard", "condition"} or entry.get("condition"):
            raise RebacModelError(f"{where}: unsupported restriction {dict(entry)!r}")
        if "wildcard" in entry and "relation" in entry:
            raise RebacModelError(f"{where}: a restriction is a wildcard or a userset, not both")
        if "relation" in entry:
            subject_relation = entry["relation"]
            if subject_relation not in relations[subject_type]:
                raise RebacModelError(
                    f"{where}: restriction {subject_type}#{subject_relation} names an "
                    f"undefined relation of {subject_type!r}"
                )
            usersets.add((subject_type, subject_relation))
        elif "wildcard" in entry:
            if entry["wildcard"] not in ({}, None):
                raise RebacModelError(f"{where}: 'wildcard' takes an empty object")
            wildcards.add(subject_type)
        else:
            types.add(subject_type)
    return Restrictions(frozenset(types), frozenset(wildcards), frozenset(usersets))


def check_definition(
    object_type: str,
    relation: str,
    rewrite: Rewrite,
    relations: Mapping[str, Mapping[str, Rewrite]],
    restrictions: Mapping[tuple[str, str], Restrictions],
) -> None:
    """Every relation `rewrite` names exists, and `this` comes with type restrictions."""
    where = f"{object_type}#{relation}"
    own = relations[object_type]
    if is_assignable(rewrite) != ((object_type, relation) in restrictions):
        raise RebacModelError(
            f"{where}: a relation defined with 'this' must list directly_related_user_types, "
            "and only such a relation may list them"
        )
    for leaf, _ in leaves(rewrite):
        if isinstance(leaf, Computed) and leaf.relation not in own:
            raise RebacModelError(f"{where}: computes from undefined relation {leaf.relation!r}")
        if isinstance(leaf, TupleToUserset):
            check_tupleset(where, object_type, leaf, relations, restrictions)


def check_tupleset(
    where: str,
    object_type: str,
    leaf: TupleToUserset,
    relations: Mapping[str, Mapping[str, Rewrite]],
    restrictions: Mapping[tuple[str, str], Restrictions],
) -> None:
    """A tupleset is a plain direct relation to objects, one of which defines the relation."""
    if leaf.tupleset not in relations[object_type]:
        raise RebacModelError(f"{where}: tupleset names undefined relation {leaf.tupleset!r}")
    tupleset = restrictions.get((object_type, leaf.tupleset))
    if (
        relations[object_type][leaf.tupleset] != This()
        or tupleset is None
        or tupleset.wildcards
        or tupleset.usersets
    ):
        raise RebacModelError(
            f"{where}: tupleset {object_type}#{leaf.tupleset} must be defined as 'this' "
            "with plain types only (no wildcard, no userset)"
        )
    if not any(leaf.relation in relations[parent] for parent in tupleset.types):
        raise RebacModelError(
            f"{where}: no type that {object_type}#{leaf.tupleset} points at "
            f"({', '.join(sorted(tupleset.types))}) defines relation {leaf.relation!r}"
        )
