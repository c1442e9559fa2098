"""Short spellings of OpenFGA JSON for the tests, and the documents model most tests use."""

THIS = {"this": {}}


def computed(relation):
    return {"computedUserset": {"relation": relation}}


def inherited(tupleset, relation):
    return {
        "tupleToUserset": {
            "tupleset": {"relation": tupleset},
            "computedUserset": {"relation": relation},
        }
    }


def union(*children):
    return {"union": {"child": list(children)}}


def intersection(*children):
    return {"intersection": {"child": list(children)}}


def difference(base, subtract):
    return {"difference": {"base": base, "subtract": subtract}}


def users(*names):
    """directly_related_user_types from "user", "user:*" and "group#member" spellings."""
    entries = []
    for name in names:
        if name.endswith(":*"):
            entries.append({"type": name[:-2], "wildcard": {}})
        elif "#" in name:
            subject_type, relation = name.split("#")
            entries.append({"type": subject_type, "relation": relation})
        else:
            entries.append({"type": name})
    return {"directly_related_user_types": entries}


def type_definition(name, relations=None, allowed=None):
    """A type with `relations` ({name: rewrite}) and `allowed` ({relation: [names]})."""
    definition = {"type": name}
    if relations:
        definition["relations"] = relations
    if allowed:
        definition["metadata"] = {
            "relations": {relation: users(*names) for relation, names in allowed.items()}
        }
    return definition


def model(*definitions):
    return {"schema_version": "1.1", "type_definitions": list(definitions)}


def t(object, relation, user):
    return {"object": object, "relation": relation, "user": user}


def documents_model():
    """Users, nested groups, folders with parents, and documents with every kind of rewrite."""
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
            {
                "parent": THIS,
                "owner": THIS,
                "editor": union(THIS, computed("owner")),
                "viewer": union(THIS, computed("editor"), inherited("parent", "viewer")),
                "blocked": THIS,
                "approved": THIS,
                "can_share": intersection(computed("editor"), computed("approved")),
                "can_view": difference(computed("viewer"), computed("blocked")),
            },
            {
                "parent": ["folder"],
                "owner": ["user"],
                "editor": ["user", "group#member"],
                "viewer": ["user", "user:*", "group#member", "document#viewer"],
                "blocked": ["user", "group#member"],
                "approved": ["user"],
            },
        ),
    )
