"""Who may read a namespace: the grants a creator manages from the API and the upload page.

A grant is a `reader` tuple on `namespace:<pk>`; its subject is one of

    {"kind": "everyone"}                  → user:*
    {"kind": "visitors"}                  → booth:<the namespace's booth>#visitor
    {"kind": "user", "username": "anne"}  → user:<anne's pk>
    {"kind": "group", "group": "press"}   → group:<the group's pk>#member

Only a principal that can write the namespace may list, grant or revoke.
Grants live in the relation tuples alone (market.rebac), so revoking one takes
effect at the next request.
"""

from dataclasses import dataclass
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction

from chunks.errors import ChunkError, ChunkErrorKind
from chunks.models import Namespace
from chunks.permissions import CAN_WRITE, namespace_allows
from market.events.publish import event_publish_on_commit
from market.events.types import GrantChanged
from market.rebac.selectors import rebac_users_of
from market.rebac.services import rebac_tuple_delete, rebac_tuple_write

READER = "reader"
KINDS = ("everyone", "visitors", "user", "group")


@dataclass(frozen=True)
class Grant:
    """One reader of a namespace, as a subject string and as people read it."""

    kind: str
    subject: str
    label: str


def namespace_for_writer(*, namespace_id: int, principal: str) -> Namespace:
    """The namespace, if `principal` may manage it; 403 otherwise (also when it does not exist)."""
    namespace = Namespace.objects.select_related("booth").filter(pk=namespace_id).first()
    if namespace is None or not namespace_allows(namespace.pk, CAN_WRITE, principal):
        raise ChunkError(ChunkErrorKind.FORBIDDEN, "You may not manage who reads this namespace.")
    return namespace


def grant_subject(namespace: Namespace, spec: Any) -> Grant:
    """Turn a grant request into its tuple subject, refusing anything malformed."""
    if not isinstance(spec, dict) or spec.get("kind") not in KINDS:
        raise ChunkError(
            ChunkErrorKind.INVALID, f"A grant needs a kind, one of {', '.join(KINDS)}."
        )
    kind = spec["kind"]
    if kind == "everyone":
        return Grant(kind, "user:*", "everyone")
    if kind == "visitors":
        if namespace.booth_id is None:
            raise ChunkError(
                ChunkErrorKind.INVALID,
                "This namespace belongs to no booth, so it has no booth visitors.",
            )
        return Grant(kind, f"booth:{namespace.booth_id}#visitor", f"visitors of {namespace.booth}")
    if kind == "user":
        user = get_user_model().objects.filter(username=str(spec.get("username", ""))).first()
        if user is None:
            raise ChunkError(ChunkErrorKind.INVALID, f"No user named {spec.get('username')!r}.")
        return Grant(kind, f"user:{user.pk}", user.get_username())
    group = Group.objects.filter(name=str(spec.get("group", ""))).first()
    if group is None:
        raise ChunkError(ChunkErrorKind.INVALID, f"No group named {spec.get('group')!r}.")
    return Grant(kind, f"group:{group.pk}#member", f"group {group.name}")


def namespace_reader_grant(*, namespace: Namespace, spec: Any) -> Grant:
    """Let the subject described by `spec` read the namespace (idempotent).

    A namespace of a market announces the grant on the market's events after the commit.
    """
    grant = grant_subject(namespace, spec)
    with transaction.atomic():
        rebac_tuple_write(object=namespace.rebac_object, relation=READER, user=grant.subject)
        _grant_announce(namespace, grant, "granted")
    return grant


def namespace_reader_revoke(*, namespace: Namespace, spec: Any) -> bool:
    """Take a read grant away; True if there was one."""
    grant = grant_subject(namespace, spec)
    with transaction.atomic():
        revoked = rebac_tuple_delete(
            object=namespace.rebac_object, relation=READER, user=grant.subject
        )
        if revoked:
            _grant_announce(namespace, grant, "revoked")
    return revoked


def _grant_announce(namespace: Namespace, grant: Grant, change: str) -> None:
    if namespace.market_id is None:
        return  # no market's visitors can be told
    event_publish_on_commit(
        namespace.market_id,
        GrantChanged(
            object=namespace.rebac_object, relation=READER, user=grant.subject, change=change
        ),
    )


def namespace_readers(*, namespace: Namespace) -> list[Grant]:
    """Every direct reader grant of the namespace, labelled."""
    users = {u.pk: u.get_username() for u in get_user_model().objects.all()}
    groups = {g.pk: g.name for g in Group.objects.all()}
    grants = []
    for subject in sorted(rebac_users_of(object=namespace.rebac_object, relation=READER)):
        grants.append(_label(subject, users, groups))
    return grants


def _label(subject: str, users: dict[int, str], groups: dict[int, str]) -> Grant:
    kind, _, rest = subject.partition(":")
    if subject == "user:*":
        return Grant("everyone", subject, "everyone")
    if kind == "user":
        return Grant("user", subject, users.get(int(rest), subject))
    if kind == "group":
        return Grant("group", subject, f"group {groups.get(int(rest.split('#')[0]), rest)}")
    return Grant("visitors", subject, f"visitors of booth {rest.split('#')[0]}")


def market_grants_state(*, market_id: int) -> dict[str, list[str]]:
    """The read grants on the market's namespaces now, as `grant_changed` events build them
    (market/events/projections.py `grants_apply`)."""
    tuples = []
    for namespace in Namespace.objects.filter(market_id=market_id):
        obj = namespace.rebac_object
        tuples += [f"{obj}#{READER}@{s}" for s in rebac_users_of(object=obj, relation=READER)]
    return {"tuples": sorted(tuples)}
