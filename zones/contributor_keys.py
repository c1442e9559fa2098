"""Contributor keys in the database: create, revoke, and the verdict on a key presented.

A market with no key stored (revoked ones count) and no NPC_CONTRIBUTOR_KEYS setting is
open: any key of MIN_KEY_CHARS characters or more is let in, its SHA-256 its identity (a
market on a developer's machine). Once one key is stored for a market, only its stored,
unrevoked keys and those NPC_CONTRIBUTOR_KEYS lists are let in. A revoked key is always
refused, with its own reason. Keys are revoked, never deleted (the admin offers no
deletion), so a market once closed stays closed.

A connected contributor is judged again every KEYS_RECHECK_S (zones/contribute.py), by
the same rules (`identity_verdicts`), and cut off when its key no longer passes: revoked,
deleted from the database, dropped from NPC_CONTRIBUTOR_KEYS, or an arbitrary key let in
while the market was open that the market's first key has closed since.
"""

import hashlib
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.utils import timezone

from market.models import Market
from zones.models import ContributorKey

MIN_KEY_CHARS = 16
KEY_BYTES = 24  # a new key: 32 URL-safe characters
MAX_LABEL_CHARS = ContributorKey._meta.get_field("label").max_length


class ContributorKeyError(ValueError):
    """A key could not be created or revoked; the message says why."""


@dataclass(frozen=True)
class Verdict:
    """What the socket answers a key with: `code` empty when it is let in."""

    code: str = ""
    detail: str = ""

    @property
    def allowed(self) -> bool:
        return not self.code


ALLOWED = Verdict()


def key_identity(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def key_verdict(market_id: int, key: str) -> Verdict:
    """Whether `key` may contribute to market `market_id` (one query at most)."""
    if len(key) < MIN_KEY_CHARS:
        return Verdict("bad_key", f"no key, or one shorter than {MIN_KEY_CHARS} characters")
    digest = key_identity(key)
    stored = ContributorKey.objects.filter(digest=digest).first()
    if stored is not None and stored.market_id == market_id:
        return _revoked(stored.revoked_at) if stored.revoked_at is not None else ALLOWED
    listed = _listed()
    if digest in listed:
        return ALLOWED
    if listed or ContributorKey.objects.filter(market_id=market_id).exists():
        return NOT_THIS_MARKETS
    return ALLOWED


def identity_verdicts(market_id: int, identities: Iterable[str]) -> dict[str, Verdict]:
    """The verdict on each key identity (SHA-256) of contributors already let in, by the
    rules of `key_verdict` (their length was checked at connect): one query, for all the
    market's stored keys."""
    stored = dict(
        ContributorKey.objects.filter(market_id=market_id).values_list("digest", "revoked_at")
    )
    listed = _listed()
    closed = bool(listed) or bool(stored)
    verdicts = {}
    for digest in identities:
        if digest in stored:
            revoked_at = stored[digest]
            verdicts[digest] = ALLOWED if revoked_at is None else _revoked(revoked_at)
        elif digest in listed or not closed:
            verdicts[digest] = ALLOWED
        else:
            verdicts[digest] = NOT_THIS_MARKETS
    return verdicts


NOT_THIS_MARKETS = Verdict("bad_key", "this key is not one of this market's contributor keys")


def _revoked(revoked_at: datetime) -> Verdict:
    when = revoked_at.isoformat(timespec="seconds")
    return Verdict("revoked_key", f"this key was revoked at {when}")


def _listed() -> tuple[str, ...]:
    return tuple(getattr(settings, "NPC_CONTRIBUTOR_KEYS", ()))


def key_create(market_id: int, label: str) -> tuple[ContributorKey, str]:
    """A new key for the market: the stored row and the key itself, never stored."""
    label = label.strip()
    if not label:
        raise ContributorKeyError("a key needs a label: who holds it")
    if len(label) > MAX_LABEL_CHARS:
        raise ContributorKeyError(f"a label has at most {MAX_LABEL_CHARS} characters")
    if not Market.objects.filter(pk=market_id).exists():
        raise ContributorKeyError(f"there is no market {market_id}")
    key = secrets.token_urlsafe(KEY_BYTES)
    row = ContributorKey.objects.create(market_id=market_id, label=label, digest=key_identity(key))
    return row, key


def key_revoke(market_id: int, which: str) -> list[ContributorKey]:
    """Revoke the market's unrevoked keys whose label is `which` or digest starts with it."""
    which = which.strip()
    if not which:
        raise ContributorKeyError("name the key to revoke by its label or the start of its digest")
    keys = ContributorKey.objects.filter(market_id=market_id, revoked_at__isnull=True)
    by_label = list(keys.filter(label=which))
    found = by_label or (
        list(keys.filter(digest__startswith=which.lower())) if len(which) >= 8 else []
    )
    if not found:
        raise ContributorKeyError(
            f"market {market_id} has no active key labelled {which!r} "
            "or whose digest starts so (8 characters at least)"
        )
    now = timezone.now()
    for row in found:
        row.revoked_at = now
        row.save(update_fields=["revoked_at"])
    return found
