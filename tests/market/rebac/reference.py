"""A second, independent answer for the property tests: the least fixed point by iteration.

It knows the shape of the random models (random_model) and nothing of the engine: every
set is computed over the whole universe by applying the definitions until nothing changes.
Subjects are user ids plus "*", which stands for the wildcard subject `user:*` itself.
"""

USERS = ("u0", "u1")
GROUPS = ("g0", "g1")
FOLDERS = ("f0", "f1")
DOCUMENTS = ("d0", "d1", "d2")
EVERYONE = frozenset(USERS) | {"*"}


def written(tuples, object, relation):
    return [x["user"] for x in tuples if x["object"] == object and x["relation"] == relation]


def direct_users(subjects):
    found = set()
    for subject in subjects:
        if subject == "user:*":
            found |= EVERYONE
        elif subject.startswith("user:"):
            found.add(subject.removeprefix("user:"))
    return found


def least_fixed_point(objects, step):
    """{object: users} from the empty sets, applying `step(current, object)` until stable."""
    current = {o: set() for o in objects}
    while True:
        following = {o: step(current, o) for o in objects}
        if following == current:
            return current
        current = following


def usersets(subjects, relation):
    """Ids of the objects named by `<type>:<id>#relation` subjects."""
    return [s.split(":")[1].split("#")[0] for s in subjects if s.endswith(f"#{relation}")]


def evaluate(tuples, derived):
    """{(object, relation): users} for every object and relation of the random model."""
    members = least_fixed_point(
        GROUPS,
        lambda cur, g: (
            direct_users(written(tuples, f"group:{g}", "member"))
            | {
                u
                for h in usersets(written(tuples, f"group:{g}", "member"), "member")
                for u in cur[h]
            }
        ),
    )

    def with_groups(object, relation):
        subjects = written(tuples, object, relation)
        return direct_users(subjects) | {
            u for g in usersets(subjects, "member") for u in members[g]
        }

    def parents(object, type):
        return [
            s.split(":")[1] for s in written(tuples, object, "parent") if s.startswith(f"{type}:")
        ]

    folder_viewers = least_fixed_point(
        FOLDERS,
        lambda cur, f: (
            with_groups(f"folder:{f}", "viewer")
            | {u for p in parents(f"folder:{f}", "folder") for u in cur[p]}
        ),
    )
    viewers = least_fixed_point(
        DOCUMENTS,
        lambda cur, d: (
            with_groups(f"document:{d}", "viewer")
            | {
                u
                for e in usersets(written(tuples, f"document:{d}", "viewer"), "viewer")
                for u in cur[e]
            }
        ),
    )
    sets = {("group:" + g, "member"): members[g] for g in GROUPS}
    sets |= {("folder:" + f, "viewer"): folder_viewers[f] for f in FOLDERS}
    for d in DOCUMENTS:
        object = f"document:{d}"
        sets[(object, "viewer")] = viewers[d]
        sets[(object, "owner")] = direct_users(written(tuples, object, "owner"))
        sets[(object, "blocked")] = with_groups(object, "blocked")
        inherited = {u for f in parents(object, "folder") for u in folder_viewers[f]}
        for name, rewrite in derived:
            sets[(object, name)] = expression(rewrite, object, sets, inherited)
    return sets


def expression(rewrite, object, sets, inherited):
    ((kind, body),) = rewrite.items()
    if kind == "computedUserset":
        return sets[(object, body["relation"])]
    if kind == "tupleToUserset":
        return inherited
    if kind == "difference":
        return expression(body["base"], object, sets, inherited) - expression(
            body["subtract"], object, sets, inherited
        )
    parts = [expression(child, object, sets, inherited) for child in body["child"]]
    return set.union(*parts) if kind == "union" else set.intersection(*parts)
