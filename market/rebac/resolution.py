"""One user's checks: a depth-first walk of the definitions that is right on cycles.

The walk keeps the (object, relation) pairs on its current path. Stepping onto one of them
again answers "no" for that step: a grant is a finite derivation from tuples, and a smallest
one never meets the same pair twice along a branch, so cutting there loses no grant and
makes none up (the least fixed point). A "no" that relied on such a cut holds only for that
path, so it is not remembered; every other answer is exact and is remembered for the rest
of the resolution.

A step back onto the path from inside the `subtract` of a difference that is itself on the
cycle is different: the relation would exclude itself, and neither answer is consistent
("yes" excludes it, "no" grants it). Such a model is accepted, as OpenFGA accepts it, and
the check that actually loops this way raises RebacCycleError naming the loop; checks whose
tuples do not loop are answered. Like a depth error, the cycle error is set aside when
another branch settles the answer (a union grants, an intersection denies).
"""

from collections.abc import Sequence

from market.rebac.errors import RebacCycleError, RebacDepthError, RebacUnresolvedError
from market.rebac.rewrites import (
    Computed,
    Difference,
    Intersection,
    Rewrite,
    This,
    TupleToUserset,
    Union,
)
from market.rebac.schema import AuthorizationModel, Restrictions
from market.rebac.tuples import TupleSource

# As in OpenFGA: resolving a check may nest at most this many relation lookups.
MAX_DEPTH = 25
NOT_ON_PATH = MAX_DEPTH + 1


class Resolution:
    """Checks for one user against one model and source, sharing what they settle."""

    __slots__ = (
        "model",
        "source",
        "user",
        "user_type",
        "user_kind",
        "settled",
        "path",
        "low",
        "candidates",
        "negations",
    )

    def __init__(self, model: AuthorizationModel, source: TupleSource, user: str) -> None:
        self.model = model
        self.source = source
        self.user = user
        user_object, _, user_relation = user.partition("#")
        self.user_type, _, user_id = user_object.partition(":")
        self.user_kind = "userset" if user_relation else "wildcard" if user_id == "*" else "plain"
        self.settled: dict[tuple[str, str], bool] = {}
        self.path: dict[tuple[str, str], int] = {}
        # The shallowest path position a step back onto the path reached below the current pair.
        self.low = NOT_ON_PATH
        self.candidates: dict[tuple[str, str], tuple[str, ...]] = {}
        # Path positions of the pairs whose `subtract` is being evaluated, shallowest first.
        self.negations: list[int] = []

    def holds(self, object: str, relation: str) -> bool:
        """Whether the user holds `relation` on `object`."""
        self.low = NOT_ON_PATH
        return self.relation(object, relation, 1)

    def relation(self, object: str, relation: str, depth: int) -> bool:
        key = (object, relation)
        known = self.settled.get(key)
        if known is not None:
            return known
        position = self.path.get(key)
        if position is not None:
            if self.negations and self.negations[-1] >= position:
                raise self.cycle_error(key, position)
            self.low = min(self.low, position)
            return False
        if depth > MAX_DEPTH:
            raise RebacDepthError(
                f"checking {self.user} needed more than {MAX_DEPTH} nested steps "
                f"(reached {object}#{relation}); the tuples nest too deeply to answer"
            )
        if self.user_kind == "userset" and self.user == f"{object}#{relation}":
            return True
        object_type = object.partition(":")[0]
        rewrite = self.model.relations[object_type][relation]
        self.path[key] = depth
        outer_low, self.low = self.low, NOT_ON_PATH
        try:
            granted = self.rewrite(rewrite, object, object_type, relation, depth)
        finally:
            del self.path[key]
            inner_low, self.low = self.low, min(outer_low, self.low)
        if granted or inner_low >= depth:
            self.settled[key] = granted
        return granted

    def rewrite(
        self, rewrite: Rewrite, object: str, object_type: str, relation: str, depth: int
    ) -> bool:
        if isinstance(rewrite, This):
            return self.direct(object, object_type, relation, depth)
        if isinstance(rewrite, Computed):
            return self.relation(object, rewrite.relation, depth + 1)
        if isinstance(rewrite, TupleToUserset):
            return self.inherited(object, object_type, rewrite, depth)
        if isinstance(rewrite, Union):
            return self.any_child(rewrite, object, object_type, relation, depth)
        if isinstance(rewrite, Intersection):
            return self.every_child(rewrite, object, object_type, relation, depth)
        assert isinstance(rewrite, Difference)
        if not self.rewrite(rewrite.base, object, object_type, relation, depth):
            return False
        self.negations.append(depth)
        try:
            return not self.rewrite(rewrite.subtract, object, object_type, relation, depth)
        finally:
            self.negations.pop()

    def cycle_error(self, key: tuple[str, str], position: int) -> RebacCycleError:
        """The error for a step back onto `key` (at `position`) through an exclusion."""
        loop = [f"{o}#{r}" for (o, r), at in self.path.items() if at >= position]
        loop.append(f"{key[0]}#{key[1]}")
        return RebacCycleError(
            f"checking {self.user} loops through an exclusion ('but not'): "
            f"{' → '.join(loop)}; {key[0]}#{key[1]} would exclude itself, so it has no answer"
        )

    def any_child(
        self, rewrite: Union, object: str, object_type: str, relation: str, depth: int
    ) -> bool:
        """Union: a grant from any child, even if another could not be answered; else its error."""
        return self.settled_by(True, rewrite.children, object, object_type, relation, depth)

    def every_child(
        self, rewrite: Intersection, object: str, object_type: str, relation: str, depth: int
    ) -> bool:
        """Intersection: "no" from any child settles it; a grant needs every child answered."""
        return self.settled_by(False, rewrite.children, object, object_type, relation, depth)

    def settled_by(
        self,
        answer: bool,
        children: Sequence[Rewrite],
        object: str,
        object_type: str,
        relation: str,
        depth: int,
    ) -> bool:
        """`answer` as soon as one child gives it; if none does, a child's depth or cycle
        error if there was one (its answer is unknown), else the opposite of `answer`."""
        too_deep = None
        for child in children:
            try:
                if self.rewrite(child, object, object_type, relation, depth) is answer:
                    return answer
            except RebacUnresolvedError as error:
                too_deep = too_deep or error
        if too_deep is not None:
            raise too_deep
        return not answer

    def direct(self, object: str, object_type: str, relation: str, depth: int) -> bool:
        """Tuples on the relation itself: the user, its type's wildcard, or a userset holding it."""
        restrictions = self.model.restrictions[(object_type, relation)]
        candidates = self.candidates.get((object_type, relation))
        if candidates is None:
            candidates = self.candidates[(object_type, relation)] = self.allowed_names(restrictions)
        usersets = []
        for subject in self.source.users_of(object, relation, candidates):
            if subject in candidates:
                return True
            if "#" in subject:
                usersets.append(subject)
        too_deep = None
        for subject in usersets:
            subject_object, _, subject_relation = subject.partition("#")
            if (subject_object.partition(":")[0], subject_relation) not in restrictions.usersets:
                continue
            try:
                if self.relation(subject_object, subject_relation, depth + 1):
                    return True
            except RebacUnresolvedError as error:
                too_deep = too_deep or error
        if too_deep is not None:
            raise too_deep
        return False

    def inherited(self, object: str, object_type: str, rewrite: TupleToUserset, depth: int) -> bool:
        """Tuple to userset: the relation on any object the tupleset points at."""
        allowed_parents = self.model.restrictions[(object_type, rewrite.tupleset)].types
        too_deep = None
        for parent in self.source.users_of(object, rewrite.tupleset):
            parent_type, _, parent_id = parent.partition(":")
            if (
                parent_type not in allowed_parents
                or "#" in parent_id
                or not self.model.has_relation(parent_type, rewrite.relation)
            ):
                continue
            try:
                if self.relation(parent, rewrite.relation, depth + 1):
                    return True
            except RebacUnresolvedError as error:
                too_deep = too_deep or error
        if too_deep is not None:
            raise too_deep
        return False

    def allowed_names(self, restrictions: Restrictions) -> tuple[str, ...]:
        """The subject strings naming the user that a relation with `restrictions` accepts."""
        if self.user_kind == "userset":
            subject_type, _, rest = self.user.partition(":")
            accepted = (subject_type, rest.partition("#")[2]) in restrictions.usersets
            return (self.user,) if accepted else ()
        wildcard = f"{self.user_type}:*"
        names = (
            [self.user]
            if self.user_kind == "plain" and self.user_type in restrictions.types
            else []
        )
        if self.user_type in restrictions.wildcards:
            names.append(wildcard)
        return tuple(names)
