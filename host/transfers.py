"""The book of transfers: the orchestrator's record of visitors walking through portals.

A transfer goes `requested → token_issued → destination_accepted → source_released →
completed`, or ends `aborted`. Each commit point is a critical event (kind "transfer",
event id "<transfer id>:<state>") recorded through a `CommitLog` BEFORE the book answers,
so a crash of the orchestrator never forgets what it said, and `transfer_recover`
rebuilds the book from those events alone.

Authority, as the book sees it: the source holds the character until `source_released`
is recorded, the destination from then on, the fallback market once aborted. Markets
follow three rules, which together keep a character authoritative in at most one market:
the destination activates it only once the release is recorded; the source stops
simulating it before it asks for the release; a market restarting from its own
snapshot keeps only what `market_roster` gives it.
"""

import copy
import functools
import json
import secrets
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Concatenate, ParamSpec, TypeVar

from host.commitlog import CommitLog
from host.tokens import (
    TransferClaims,
    TransferRefused,
    host_secret_check,
    transfer_claims_check,
    transfer_token_issue,
    transfer_token_verify,
)

STATES = (
    "requested",
    "token_issued",
    "destination_accepted",
    "source_released",
    "completed",
    "aborted",
)
HEALTHS = ("healthy", "quarantined", "down")
EVENT_KIND = "transfer"
_OPEN = ("requested", "token_issued", "destination_accepted", "source_released")
_SOURCE_HOLDS = ("requested", "token_issued", "destination_accepted")


@dataclass(frozen=True)
class Transfer:
    """One transfer as the book knows it; `character_state` is what the visitor carries."""

    transfer_id: str
    character_id: int
    key_hash: str
    source: int
    destination: int
    instance_id: int
    character_state: dict[str, Any]
    requested_at_ms: int
    expires_at_ms: int  # the token's expiry, fixed at the request
    state: str = "requested"
    nonce: str | None = None
    issued_at_ms: int | None = None
    changed_at_ms: int = 0  # when the latest commit point was recorded
    abort_reason: str | None = None
    fallback: int | None = None

    @property
    def holder(self) -> int:
        """The market authoritative for the character while this is its latest transfer."""
        if self.state in _SOURCE_HOLDS:
            return self.source
        if self.state == "aborted":
            assert self.fallback is not None
            return self.fallback
        return self.destination


@dataclass(frozen=True)
class Holding:
    """A character's state and the time it was true, from a snapshot or from the book."""

    state: dict[str, Any]
    since_ms: int


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _state_copy(state: dict[str, Any]) -> dict[str, Any]:
    return copy.deepcopy(state)


_P = ParamSpec("_P")
_R = TypeVar("_R")


def _locked(
    method: Callable[Concatenate["TransferBook", _P], _R],
) -> Callable[Concatenate["TransferBook", _P], _R]:
    """One operation at a time: two accepts of one token must not both see it unspent."""

    def locked(book: "TransferBook", /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        with book._lock:
            return method(book, *args, **kwargs)

    functools.update_wrapper(locked, method)  # keeps the name and the docstring
    return locked


class TransferBook:
    """The orchestrator's transfers; every commit point is durable before it answers."""

    def __init__(
        self,
        *,
        commit_log: CommitLog,
        market_health: Callable[[int], str],
        default_market: int,
        secret: bytes,
        token_ttl_ms: int,
    ) -> None:
        if not _is_int(token_ttl_ms) or token_ttl_ms <= 0:
            raise ValueError(f"token_ttl_ms must be a whole number > 0, got {token_ttl_ms!r}")
        if not _is_int(default_market) or default_market < 0:
            raise ValueError(f"default_market must be a market id >= 0, got {default_market!r}")
        host_secret_check(secret=secret)
        self.commit_log = commit_log
        self.market_health = market_health
        self.default_market = default_market
        self.secret = secret
        self.token_ttl_ms = token_ttl_ms
        self._transfers: dict[str, Transfer] = {}
        self._latest: dict[int, str] = {}  # character id -> its latest transfer id
        self._open: set[str] = set()  # transfers neither completed nor aborted
        self._lock = threading.RLock()

    # -- commit points ---------------------------------------------------------------

    def _record(
        self, *, transfer_id: str, instance_id: int, state: str, at_ms: int, **details: Any
    ) -> bool:
        """Record the commit point durably, then and only then change the book.

        False when the log had it already: another book over the same log got there first.
        """
        payload = {"transfer_id": transfer_id, "state": state, **details}
        new = self.commit_log.critical_record(
            event_id=f"{transfer_id}:{state}",
            instance_id=instance_id,
            kind=EVENT_KIND,
            payload=payload,
            at_ms=at_ms,
        )
        self._apply(payload, instance_id=instance_id, at_ms=at_ms)
        return new

    def _apply(self, payload: dict[str, Any], *, instance_id: int, at_ms: int) -> None:
        """Change the book by one recorded commit point (also used to recover)."""
        state, transfer_id = payload["state"], payload["transfer_id"]
        if state == "requested":
            transfer = Transfer(
                transfer_id=transfer_id,
                character_id=payload["character_id"],
                key_hash=payload["key_hash"],
                source=payload["source"],
                destination=payload["destination"],
                instance_id=instance_id,
                character_state=payload["character_state"],
                requested_at_ms=payload["requested_at_ms"],
                expires_at_ms=payload["expires_at_ms"],
                changed_at_ms=at_ms,
            )
            self._latest[transfer.character_id] = transfer_id
        else:
            transfer = replace(self._transfers[transfer_id], state=state, changed_at_ms=at_ms)
        if state == "token_issued":
            transfer = replace(
                transfer, nonce=payload["nonce"], issued_at_ms=payload["issued_at_ms"]
            )
        if state == "aborted":
            transfer = replace(
                transfer, abort_reason=payload["reason"], fallback=payload["fallback"]
            )
        self._transfers[transfer_id] = transfer
        if state in _OPEN:
            self._open.add(transfer_id)
        else:
            self._open.discard(transfer_id)

    # -- operations ------------------------------------------------------------------

    @_locked
    def transfer_request(
        self,
        *,
        character_id: int,
        key_hash: str,
        source: int,
        destination: int,
        instance_id: int,
        character_state: dict[str, Any],
        now_ms: int,
    ) -> tuple[str, str]:
        """(transfer id, token) for a character stepping into a portal of `source`.

        Asked again with the same request while its token is good (an answer lost to a
        crash), it gives the same transfer and token rather than a second transfer.
        """
        for name, value in (
            ("character_id", character_id),
            ("source", source),
            ("destination", destination),
            ("instance_id", instance_id),
        ):
            if not _is_int(value) or value < 0:
                raise ValueError(f"{name} must be a whole number >= 0, got {value!r}")
        if source == destination:
            raise ValueError(f"a transfer needs two markets, got {source} to itself")
        if not isinstance(character_state, dict):
            raise ValueError("character_state must be a dict")
        try:
            json.dumps(character_state)
        except (TypeError, ValueError) as error:
            raise ValueError(f"character_state must be JSON-serialisable: {error}") from None
        health = self._health(destination)
        if health == "quarantined":
            raise TransferRefused(
                "destination_quarantined", f"market {destination} is quarantined after crashes"
            )
        if health == "down":
            raise TransferRefused("destination_unavailable", f"market {destination} is not running")
        latest = self._latest_of(character_id)
        if latest is not None and latest.state in _OPEN:
            same = (latest.key_hash, latest.source, latest.destination, latest.instance_id) == (
                key_hash,
                source,
                destination,
                instance_id,
            )
            if (
                same
                and latest.state in ("requested", "token_issued")
                and now_ms < latest.expires_at_ms
            ):
                return latest.transfer_id, self._token_issue(latest, now_ms=now_ms)
            raise TransferRefused(
                "in_transfer",
                f"character {character_id} is in transfer {latest.transfer_id} ({latest.state})",
            )
        if latest is not None and latest.holder != source:
            raise TransferRefused(
                "wrong_source",
                f"character {character_id} is held by market {latest.holder}, not {source}",
            )
        transfer_id = secrets.token_hex(16)
        # The claims are checked before anything is recorded, so a bad key hash records nothing.
        transfer_claims_check(
            claims=TransferClaims(
                transfer_id=transfer_id,
                character_id=character_id,
                key_hash=key_hash,
                source=source,
                destination=destination,
                instance_id=instance_id,
                issued_at_ms=now_ms,
                expires_at_ms=now_ms + self.token_ttl_ms,
                nonce="unissued",
            )
        )
        self._record(
            transfer_id=transfer_id,
            state="requested",
            at_ms=now_ms,
            character_id=character_id,
            key_hash=key_hash,
            source=source,
            destination=destination,
            instance_id=instance_id,
            character_state=_state_copy(character_state),
            requested_at_ms=now_ms,
            expires_at_ms=now_ms + self.token_ttl_ms,
        )
        return transfer_id, self._token_issue(self._transfers[transfer_id], now_ms=now_ms)

    def _token_issue(self, transfer: Transfer, *, now_ms: int) -> str:
        """The transfer's token, recording `token_issued` the first time."""
        if transfer.state == "requested":
            self._record(
                transfer_id=transfer.transfer_id,
                instance_id=transfer.instance_id,
                state="token_issued",
                at_ms=now_ms,
                nonce=secrets.token_urlsafe(16),
                issued_at_ms=now_ms,
            )
            transfer = self._transfers[transfer.transfer_id]
        assert transfer.nonce is not None and transfer.issued_at_ms is not None
        claims = TransferClaims(
            transfer_id=transfer.transfer_id,
            character_id=transfer.character_id,
            key_hash=transfer.key_hash,
            source=transfer.source,
            destination=transfer.destination,
            instance_id=transfer.instance_id,
            issued_at_ms=transfer.issued_at_ms,
            expires_at_ms=transfer.expires_at_ms,
            nonce=transfer.nonce,
        )
        return transfer_token_issue(secret=self.secret, claims=claims)

    @_locked
    def transfer_accept(
        self, *, token: str, destination: int, instance_id: int, now_ms: int
    ) -> dict[str, Any]:
        """The character state to spawn, once per token; the consumption is durable first.

        The destination holds the character only once `source_released` is recorded.
        """
        claims = transfer_token_verify(
            secret=self.secret,
            token=token,
            destination=destination,
            instance_id=instance_id,
            now_ms=now_ms,
        )
        transfer = self._transfers.get(claims.transfer_id)
        if transfer is None or transfer.nonce != claims.nonce:
            raise TransferRefused("unknown_transfer", f"no transfer {claims.transfer_id} here")
        if transfer.state == "aborted":
            raise TransferRefused(
                "aborted", f"transfer {transfer.transfer_id} was aborted ({transfer.abort_reason})"
            )
        if transfer.state != "token_issued":
            raise TransferRefused(
                "replayed", f"the token of transfer {transfer.transfer_id} was used already"
            )
        spent_here = self._record(
            transfer_id=transfer.transfer_id,
            instance_id=transfer.instance_id,
            state="destination_accepted",
            at_ms=now_ms,
            nonce=claims.nonce,
        )
        if not spent_here:
            raise TransferRefused(
                "replayed", f"the token of transfer {transfer.transfer_id} was used already"
            )
        return _state_copy(transfer.character_state)

    @_locked
    def transfer_release(self, *, transfer_id: str, source: int, now_ms: int) -> None:
        """Record that `source` stopped simulating the character: the destination holds it."""
        transfer = self._get(transfer_id)
        if transfer.source != source:
            raise TransferRefused(
                "wrong_source",
                f"transfer {transfer_id} leaves market {transfer.source}, not {source}",
            )
        if transfer.state in ("source_released", "completed"):
            return  # a release asked again after a lost answer
        self._refuse_aborted(transfer)
        if transfer.state != "destination_accepted":
            raise TransferRefused(
                "wrong_state",
                f"transfer {transfer_id} is {transfer.state}; release needs destination_accepted",
            )
        self._record(
            transfer_id=transfer.transfer_id,
            instance_id=transfer.instance_id,
            state="source_released",
            at_ms=now_ms,
        )

    @_locked
    def transfer_complete(self, *, transfer_id: str, now_ms: int) -> None:
        """Record that the destination is simulating the character."""
        transfer = self._get(transfer_id)
        if transfer.state == "completed":
            return
        self._refuse_aborted(transfer)
        if transfer.state != "source_released":
            raise TransferRefused(
                "wrong_state",
                f"transfer {transfer_id} is {transfer.state}; complete needs source_released",
            )
        self._record(
            transfer_id=transfer.transfer_id,
            instance_id=transfer.instance_id,
            state="completed",
            at_ms=now_ms,
        )

    @_locked
    def transfer_abort(self, *, transfer_id: str, reason: str, now_ms: int) -> int:
        """Abort before the release; the fallback market: the source if healthy, else the default."""
        if not isinstance(reason, str) or not reason:
            raise ValueError("an abort needs a reason (a non-empty string)")
        transfer = self._get(transfer_id)
        if transfer.state == "aborted":
            assert transfer.fallback is not None
            return transfer.fallback
        if transfer.state not in _SOURCE_HOLDS:
            # From the release on the destination holds the character; it brings it back
            # from the book when it restarts, so there is nothing to fall back from.
            raise TransferRefused(
                "wrong_state", f"transfer {transfer_id} is {transfer.state}; too late to abort"
            )
        source_healthy = self._health(transfer.source) == "healthy"
        fallback = transfer.source if source_healthy else self.default_market
        self._record(
            transfer_id=transfer.transfer_id,
            instance_id=transfer.instance_id,
            state="aborted",
            at_ms=now_ms,
            reason=reason,
            fallback=fallback,
        )
        return fallback

    @_locked
    def transfers_expire(self, *, now_ms: int) -> dict[str, int]:
        """Abort transfers whose token expired unaccepted, or whose release never came;
        complete those released whose destination never said the visitor arrived.

        A release is waited for one token lifetime past the token's expiry, an arrival two.
        A released character is the destination's whether or not its visitor came (it may
        join there later), so such a transfer completes rather than staying open and
        refusing the character's next transfer as `in_transfer`. Returns the aborted
        transfers' fallback markets by transfer id.
        """
        aborted: dict[str, int] = {}
        for transfer in [self._transfers[t] for t in sorted(self._open)]:
            if (
                transfer.state == "source_released"
                and now_ms >= transfer.expires_at_ms + 2 * self.token_ttl_ms
            ):
                self.transfer_complete(transfer_id=transfer.transfer_id, now_ms=now_ms)
                continue
            unaccepted = transfer.state in ("requested", "token_issued")
            if unaccepted and now_ms >= transfer.expires_at_ms:
                reason = "expired"
            elif (
                transfer.state == "destination_accepted"
                and now_ms >= transfer.expires_at_ms + self.token_ttl_ms
            ):
                reason = "release_timeout"
            else:
                continue
            aborted[transfer.transfer_id] = self.transfer_abort(
                transfer_id=transfer.transfer_id, reason=reason, now_ms=now_ms
            )
        return aborted

    # -- what the book says ----------------------------------------------------------

    @_locked
    def transfer_get(self, *, transfer_id: str) -> Transfer:
        """The transfer as recorded."""
        return self._get(transfer_id)

    @_locked
    def transfers_open(self, *, market_id: int) -> list[Transfer]:
        """Transfers not yet completed or aborted that leave or enter `market_id`."""
        return [
            t
            for t in (self._transfers[t] for t in sorted(self._open))
            if market_id in (t.source, t.destination)
        ]

    @_locked
    def authority(self, *, character_id: int) -> int | None:
        """The market authoritative for the character, or None if it never transferred."""
        latest = self._latest_of(character_id)
        return None if latest is None else latest.holder

    @_locked
    def held_elsewhere(self, *, market_id: int, character_ids: Iterable[int]) -> dict[int, int]:
        """Of `character_ids`, those the book places in a market other than `market_id`,
        with that market (characters it has no transfer of are not among them)."""
        elsewhere = {}
        for character_id in character_ids:
            latest = self._latest_of(character_id)
            if latest is not None and latest.holder != market_id:
                elsewhere[character_id] = latest.holder
        return elsewhere

    @_locked
    def characters_held(self, *, market_id: int) -> dict[int, Holding]:
        """Characters the book places in `market_id`, with the state their transfer carried."""
        held: dict[int, Holding] = {}
        for character_id in self._latest:
            latest = self._latest_of(character_id)
            if latest is not None and latest.holder == market_id:
                held[character_id] = Holding(
                    _state_copy(latest.character_state), latest.changed_at_ms
                )
        return held

    @_locked
    def market_roster(
        self, *, market_id: int, snapshot: Mapping[int, Holding]
    ) -> dict[int, dict[str, Any]]:
        """What a market restarting from `snapshot` may hold: its characters and their state.

        A character that moved on since the snapshot is dropped; one that arrived or fell
        back since is added; of the snapshot's and the book's state the newer wins.
        """
        held = self.characters_held(market_id=market_id)
        roster: dict[int, dict[str, Any]] = {}
        for character_id, kept in snapshot.items():
            holder = self.authority(character_id=character_id)
            if holder is None:
                roster[character_id] = _state_copy(kept.state)
            elif holder == market_id:
                book = held[character_id]
                newer = book if book.since_ms > kept.since_ms else kept
                roster[character_id] = _state_copy(newer.state)
        for character_id, book in held.items():
            roster.setdefault(character_id, _state_copy(book.state))
        return roster

    # -- inside ----------------------------------------------------------------------

    def _health(self, market_id: int) -> str:
        health = self.market_health(market_id)
        if health not in HEALTHS:
            raise ValueError(f"market_health({market_id}) gave {health!r}, not one of {HEALTHS}")
        return health

    def _get(self, transfer_id: str) -> Transfer:
        transfer = self._transfers.get(transfer_id) if isinstance(transfer_id, str) else None
        if transfer is None:
            raise TransferRefused("unknown_transfer", f"no transfer {transfer_id!r} here")
        return transfer

    def _latest_of(self, character_id: int) -> Transfer | None:
        transfer_id = self._latest.get(character_id)
        return None if transfer_id is None else self._transfers[transfer_id]

    @staticmethod
    def _refuse_aborted(transfer: Transfer) -> None:
        if transfer.state == "aborted":
            raise TransferRefused(
                "aborted",
                f"transfer {transfer.transfer_id} was aborted ({transfer.abort_reason});"
                f" the character is in market {transfer.fallback}",
            )


def transfer_recover(
    *,
    commit_log: CommitLog,
    market_health: Callable[[int], str],
    default_market: int,
    secret: bytes,
    token_ttl_ms: int,
) -> TransferBook:
    """The book rebuilt from the transfer events of `commit_log` alone, after a crash."""
    book = TransferBook(
        commit_log=commit_log,
        market_health=market_health,
        default_market=default_market,
        secret=secret,
        token_ttl_ms=token_ttl_ms,
    )
    for event in commit_log.critical_events(kind=EVENT_KIND):
        book._apply(event.payload, instance_id=event.instance_id, at_ms=event.at_ms)
    return book
