"""Relation tuples: their strings, their validation against a model, and where they are read from.

A tuple is `{"object": "namespace:7", "relation": "reader", "user": ...}` where the user is a
subject: `user:anne`, every user `user:*`, or a userset `group:weavers#member`. The engine
reads tuples through a `TupleSource`, asking only for what an evaluation needs; `TupleIndex`
is the in-memory one, and `LayeredSource` lays a request's contextual tuples over another.
"""

import re
import sys
from array import array
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from typing import Any, NamedTuple, Protocol, runtime_checkable

from market.rebac.errors import RebacTupleError
from market.rebac.ordering import ObjectTable, id_run
from market.rebac.schema import AuthorizationModel, compile_model

NAME = r"[A-Za-z_][A-Za-z0-9_-]{0,63}"
OBJECT_ID = r"[^\s#:*]{1,128}"
OBJECT = re.compile(rf"(?P<type>{NAME}):(?P<id>{OBJECT_ID})")
SUBJECT = re.compile(rf"(?P<type>{NAME}):(?:(?P<id>{OBJECT_ID})(?:#(?P<relation>{NAME}))?|\*)")
RELATION = re.compile(NAME)
TUPLE_KEYS = frozenset({"object", "relation", "user"})


class Subject(NamedTuple):
    """A parsed subject: `id` is "*" for a wildcard, `relation` is "" unless it is a userset."""

    type: str
    id: str
    relation: str

    def __str__(self) -> str:
        base = f"{self.type}:{self.id}"
        return f"{base}#{self.relation}" if self.relation else base


def parse_object(text: Any) -> tuple[str, str]:
    """(type, id) of an object string such as `booth:7`."""
    match = OBJECT.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise RebacTupleError(f"{text!r} is not an object of the form 'type:id'")
    return match["type"], match["id"]


def parse_relation(text: Any) -> str:
    """`text` if it is a well-formed relation name."""
    if not isinstance(text, str) or not RELATION.fullmatch(text):
        raise RebacTupleError(f"{text!r} is not a relation name")
    return text


def parse_subject(text: Any) -> Subject:
    """The subject a string names: `type:id`, `type:*` or `type:id#relation`."""
    match = SUBJECT.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise RebacTupleError(
            f"{text!r} is not a subject of the form 'type:id', 'type:*' or 'type:id#relation'"
        )
    return Subject(match["type"], match["id"] or "*", match["relation"] or "")


def check_object(model: AuthorizationModel, text: Any, relation: Any) -> str:
    """`text` if it is an object of a known type that defines `relation`."""
    object_type, _ = parse_object(text)
    if object_type not in model.relations:
        raise RebacTupleError(f"{text!r}: unknown object type {object_type!r}")
    if not isinstance(relation, str) or not model.has_relation(object_type, relation):
        raise RebacTupleError(f"type {object_type!r} has no relation {relation!r}")
    return text


def check_subject(model: AuthorizationModel, text: Any) -> Subject:
    """The subject `text` names, if its type (and userset relation) exist in `model`."""
    subject = parse_subject(text)
    if subject.type not in model.relations:
        raise RebacTupleError(f"{text!r}: unknown subject type {subject.type!r}")
    if subject.relation and not model.has_relation(subject.type, subject.relation):
        raise RebacTupleError(
            f"{text!r}: type {subject.type!r} has no relation {subject.relation!r}"
        )
    return subject


def validate_tuple(
    model: Mapping[str, Any] | AuthorizationModel, relation_tuple: Any
) -> tuple[str, str, str]:
    """(object, relation, user) of a tuple that `model` allows to be written; raise otherwise."""
    model = compile_model(model)
    if not isinstance(relation_tuple, Mapping) or set(relation_tuple) != TUPLE_KEYS:
        raise RebacTupleError(
            f"a tuple is {{'object': ..., 'relation': ..., 'user': ...}}, not {relation_tuple!r}"
        )
    object_, relation, user = (relation_tuple[k] for k in ("object", "relation", "user"))
    check_object(model, object_, relation)
    object_type, _ = parse_object(object_)
    subject = check_subject(model, user)
    allowed = model.restrictions.get((object_type, relation))
    if allowed is None:
        raise RebacTupleError(
            f"{object_type}#{relation} is computed from other relations; tuples cannot be written on it"
        )
    if not allowed.allows(*subject):
        kind = "userset" if subject.relation else "wildcard" if subject.id == "*" else "subject"
        raise RebacTupleError(f"{object_type}#{relation} does not allow the {kind} {user!r}")
    return object_, relation, user


@runtime_checkable
class TupleSource(Protocol):
    """Where the engine reads tuples from, one narrow question at a time."""

    def users_of(
        self, object: str, relation: str, among: Collection[str] | None = None
    ) -> Iterable[str]:
        """Subjects of the tuples on `object#relation`.

        With `among`, plain subjects (users and wildcards) are narrowed to those in `among`;
        userset subjects (`type:id#relation`) are always all returned.
        """

    def objects_of(self, type: str, relation: str, user: str) -> Iterable[str]:
        """Objects of `type` with a tuple `object#relation@user`."""


class _Subjects:
    __slots__ = ("all", "usersets")

    def __init__(self) -> None:
        self.all: set[str] = set()
        self.usersets: list[str] = []


class TupleIndex:
    """Tuples in memory, indexed both ways: object#relation → subjects, subject → objects.

    The objects each subject has on a (type, relation) are kept as a run of ids of the type's
    `ObjectTable`, so that a listing sorts integers rather than names (`sorted_objects`).
    """

    def __init__(
        self, tuples: Iterable[Mapping[str, str]] = (), *, model: AuthorizationModel | None = None
    ) -> None:
        """Index `tuples`, validating each against `model` when one is given."""
        self._subjects: dict[str, dict[str, _Subjects]] = {}
        self._objects: dict[tuple[str, str], dict[str, array]] = {}
        self._tables: dict[str, ObjectTable] = {}
        self.size = 0
        for relation_tuple in tuples:
            if model is not None:
                self.add(*validate_tuple(model, relation_tuple))
            else:
                self.add(
                    relation_tuple["object"], relation_tuple["relation"], relation_tuple["user"]
                )

    def add(self, object: str, relation: str, user: str) -> None:
        """Index one tuple (again is a no-op)."""
        by_object = self._subjects.setdefault(relation, {})
        subjects = by_object.get(object)
        if subjects is None:
            object = sys.intern(object)
            subjects = by_object[object] = _Subjects()
        elif user in subjects.all:
            return
        user = sys.intern(user)
        subjects.all.add(user)
        if "#" in user:
            subjects.usersets.append(user)
        object_type = object.partition(":")[0]
        table = self._tables.get(object_type)
        if table is None:
            table = self._tables[object_type] = ObjectTable()
        by_subject = self._objects.get((object_type, relation))
        if by_subject is None:
            by_subject = self._objects[(object_type, relation)] = {}
        run = by_subject.get(user)
        if run is None:
            run = by_subject[user] = id_run()
        run.append(table.id(object))
        self.size += 1

    def remove(self, object: str, relation: str, user: str) -> None:
        """Forget one tuple (one that is not indexed is a no-op)."""
        by_object = self._subjects.get(relation)
        subjects = by_object.get(object) if by_object is not None else None
        if subjects is None or user not in subjects.all:
            return
        subjects.all.discard(user)
        if "#" in user:
            subjects.usersets.remove(user)
        if not subjects.all:
            del by_object[object]
        object_type = object.partition(":")[0]
        by_subject = self._objects[(object_type, relation)]
        run = by_subject[user]
        run.remove(self._tables[object_type].ids[object])
        if not run:
            del by_subject[user]
        self.size -= 1

    def users_of(
        self, object: str, relation: str, among: Collection[str] | None = None
    ) -> Iterable[str]:
        subjects = self._subjects.get(relation, _NO_OBJECTS).get(object)
        if subjects is None:
            return ()
        if among is None:
            return subjects.all
        hits = [subject for subject in among if subject in subjects.all]
        return hits + subjects.usersets if hits else subjects.usersets

    def objects_of(self, type: str, relation: str, user: str) -> Iterable[str]:
        run = self._objects.get((type, relation), _NO_SUBJECTS).get(user)
        if run is None:
            return ()
        names = self._tables[type].names
        return [names[number] for number in run]

    def object_run(self, type: str, relation: str, user: str) -> array | None:
        """The ids (in `type`'s table) of the objects `objects_of` names; None if there are none."""
        return self._objects.get((type, relation), _NO_SUBJECTS).get(user)

    def sorted_objects(
        self, type: str, runs: Sequence[array], loose: Iterable[str] = ()
    ) -> list[str]:
        """The objects of `type` in `runs` (from `object_run`) and in `loose`, sorted, each once."""
        table = self._tables.get(type)
        if table is None:
            return sorted(set(loose))
        return table.sorted_names(runs, loose)

    def rank_objects(self) -> None:
        """Rank every object numbered so far (else the first listing of each type does)."""
        for table in self._tables.values():
            table.rank()

    def __len__(self) -> int:
        return self.size

    def tuples(self) -> Iterator[tuple[str, str, str]]:
        """Every indexed tuple as (object, relation, user)."""
        for relation, by_object in self._subjects.items():
            for object, subjects in by_object.items():
                for user in subjects.all:
                    yield object, relation, user


_NO_OBJECTS: dict[str, _Subjects] = {}
_NO_SUBJECTS: dict[str, array] = {}


class LayeredSource:
    """The tuples of `base` and of `overlay` together (contextual tuples over stored ones)."""

    def __init__(self, base: TupleSource, overlay: TupleSource) -> None:
        self.base = base
        self.overlay = overlay

    def users_of(
        self, object: str, relation: str, among: Collection[str] | None = None
    ) -> Iterable[str]:
        return [
            *self.base.users_of(object, relation, among),
            *self.overlay.users_of(object, relation, among),
        ]

    def objects_of(self, type: str, relation: str, user: str) -> Iterable[str]:
        return [
            *self.base.objects_of(type, relation, user),
            *self.overlay.objects_of(type, relation, user),
        ]
