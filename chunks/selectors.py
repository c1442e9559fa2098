"""Reads of the chunk store, each with the permission check it needs."""

from dataclasses import dataclass
from pathlib import Path

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import connection
from django.db.models import Prefetch

from chunks.errors import ChunkError, ChunkErrorKind, chunk_forbidden
from chunks.hashes import chunk_hash_validate
from chunks.models import (
    Asset,
    AssetChunk,
    BoothLayout,
    Chunk,
    ChunkNamespace,
    Namespace,
    Placement,
)
from chunks.permissions import (
    CAN_READ,
    CAN_WRITE,
    namespace_allows,
    principal_of,
    read_access,
)
from chunks.storage import chunk_store
from market.models import Booth

MISSING_QUERY_LIMIT = 10_000


@dataclass(frozen=True)
class ChunkReadable:
    """A chunk the principal may read: where its file is, and whether all the world may."""

    hash: str
    size: int
    path: Path
    public: bool


@dataclass(frozen=True)
class BoothManifest:
    """The assets of a booth that the principal may read, with their chunks in order."""

    booth: Booth
    assets: list[Asset]
    layout_version: int = 0


def namespace_for_reference(reference: str | None) -> Namespace:
    """The namespace named by its id (all digits) or its slug; ChunkError if there is none."""
    if not reference:
        raise ChunkError(
            ChunkErrorKind.INVALID,
            "Name the namespace to write to: ?namespace=<id or slug>.",
        )
    lookup = {"pk": int(reference)} if reference.isdigit() else {"slug": reference}
    namespace = Namespace.objects.filter(**lookup).first()
    if namespace is None:
        raise ChunkError(
            ChunkErrorKind.INVALID,
            f"There is no namespace {reference[:80]!r} (give its id or its slug).",
            extra={"namespace": reference[:80]},
        )
    return namespace


def namespace_for_writing(
    *, user: AbstractBaseUser | AnonymousUser, reference: str | None
) -> Namespace:
    """The namespace `reference` names, if `user` may write to it; ChunkError otherwise."""
    if not user.is_authenticated:
        raise ChunkError(ChunkErrorKind.NOT_AUTHENTICATED, "Sign in to write to a namespace.")
    namespace = namespace_for_reference(reference)
    if not namespace_allows(namespace.pk, CAN_WRITE, principal_of(user)):
        raise ChunkError(
            ChunkErrorKind.FORBIDDEN, f"You may not write to namespace {namespace.slug!r}."
        )
    return namespace


def chunks_missing(
    *, user: AbstractBaseUser | AnonymousUser, namespace_reference: str | None, hashes: list[str]
) -> list[str]:
    """Which of `hashes` the namespace does not hold yet, in the order given.

    A chunk stored only in other namespaces counts as missing: the uploader must
    send its bytes (which then link it), and the answer reveals nothing about
    namespaces the writer cannot see. Writers only: this is an upload helper.
    """
    if len(hashes) > MISSING_QUERY_LIMIT:
        raise ChunkError(
            ChunkErrorKind.INVALID,
            f"Ask about at most {MISSING_QUERY_LIMIT} hashes at a time; got {len(hashes)}.",
        )
    for chunk_hash in hashes:
        chunk_hash_validate(chunk_hash)
    namespace = namespace_for_writing(user=user, reference=namespace_reference)
    held = set(
        ChunkNamespace.objects.filter(namespace=namespace, chunk_id__in=hashes).values_list(
            "chunk_id", flat=True
        )
    )
    return list(dict.fromkeys(h for h in hashes if h not in held))


def chunk_readable(*, chunk_hash: str, principal: str) -> ChunkReadable:
    """The chunk, if `principal` can read one of its namespaces.

    A chunk that does not exist and one the principal may not read raise the
    same ChunkError, so the answer says nothing about which hashes are stored.
    """
    chunk_hash_validate(chunk_hash)
    readable = chunk_read_decision(chunk_hash=chunk_hash, principal=principal)
    if readable is None:
        raise chunk_forbidden()
    return readable


def chunk_read_decision(*, chunk_hash: str, principal: str) -> ChunkReadable | None:
    """The chunk (a well-formed hash) if `principal` may read it, else None (the same for a
    chunk not stored). One query for its namespaces, then the relation engine."""
    links, chunks = ChunkNamespace._meta.db_table, Chunk._meta.db_table
    with connection.cursor() as cursor:
        # Raw SQL: the ORM would cost more than the rest of a chunk download's decision.
        cursor.execute(
            f"SELECT l.namespace_id, c.size FROM {links} l JOIN {chunks} c ON c.hash = l.chunk_id "
            "WHERE l.chunk_id = %s ORDER BY l.namespace_id",
            [chunk_hash],
        )
        rows = cursor.fetchall()
    allowed, public = read_access([namespace_id for namespace_id, _ in rows], principal)
    if not allowed:
        return None
    return ChunkReadable(
        hash=chunk_hash, size=rows[0][1], path=chunk_store().path_for(chunk_hash), public=public
    )


def booth_for_assets(booth_id: int) -> Booth:
    """The booth whose assets are asked for; a missing booth is refused like a forbidden one."""
    booth = Booth.objects.filter(pk=booth_id).first()
    if booth is None:
        raise ChunkError(
            ChunkErrorKind.FORBIDDEN, f"You may not use the assets of booth {booth_id}."
        )
    return booth


def booth_at_zone(*, market_id: int, zone: int) -> int:
    """The id of the booth at zone `zone` of the market (visitors know booths by zone);
    a missing one is refused like a forbidden booth."""
    booth = Booth.objects.filter(market_id=market_id, zone_index=zone).values_list("pk", flat=True)
    found = booth.first()
    if found is None:
        raise ChunkError(
            ChunkErrorKind.FORBIDDEN,
            f"You may not use the assets of zone {zone} of market {market_id}.",
        )
    return int(found)


def booth_manifest(*, booth_id: int, principal: str) -> BoothManifest:
    """The booth's assets in the namespaces `principal` can read; ChunkError if none."""
    booth = booth_for_assets(booth_id)
    namespace_ids = list(booth.chunk_namespaces.values_list("pk", flat=True))
    readable = [n for n in namespace_ids if namespace_allows(n, CAN_READ, principal)]
    if not readable:
        raise ChunkError(
            ChunkErrorKind.FORBIDDEN, f"You may not use the assets of booth {booth_id}."
        )
    assets = list(
        Asset.objects.filter(booth=booth, namespace_id__in=readable)
        .order_by("id")
        .prefetch_related(
            Prefetch("parts", queryset=AssetChunk.objects.order_by("index")),
            Prefetch("placements", queryset=Placement.objects.order_by("index")),
        )
    )
    version = BoothLayout.objects.filter(booth=booth).values_list("version", flat=True).first()
    return BoothManifest(booth=booth, assets=assets, layout_version=version or 0)


@dataclass(frozen=True)
class WritableBooth:
    """A booth with the namespaces of it that someone may write (upload to)."""

    booth: Booth
    namespaces: list[Namespace]


def booths_writable(*, user: AbstractBaseUser | AnonymousUser) -> list[WritableBooth]:
    """The booths, each with its namespaces, where `user` holds `can_write` (ReBAC)."""
    if not user.is_authenticated:
        return []
    principal = principal_of(user)
    by_booth: dict[int, WritableBooth] = {}
    namespaces = Namespace.objects.filter(booth__isnull=False).select_related("booth")
    for namespace in namespaces.order_by("booth__market_id", "booth__zone_index", "slug"):
        if namespace_allows(namespace.pk, CAN_WRITE, principal):
            entry = by_booth.setdefault(namespace.booth_id, WritableBooth(namespace.booth, []))
            entry.namespaces.append(namespace)
    return list(by_booth.values())


def market_assets_state(*, market_id: int) -> dict[str, dict[str, str]]:
    """Every booth's assets now, as `asset_changed` events build them: zone → asset id → name.

    The snapshot a consumer of `market.<id>.booth.*.assets` starts from
    (market/events/projections.py `assets_apply`).
    """
    state: dict[str, dict[str, str]] = {}
    assets = Asset.objects.filter(booth__market_id=market_id).values_list(
        "booth__zone_index", "pk", "name"
    )
    for zone, asset_id, name in assets:
        state.setdefault(str(zone), {})[str(asset_id)] = name
    return state
