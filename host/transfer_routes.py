"""The control API's transfer routes: the orchestrator's side of a walk through a portal.

    POST /transfers           the source market: a visitor stepped into a portal
    POST /transfers/accept    the destination market: a client joined with the token
    POST /transfers/complete  the destination market: the visitor is live there
    POST /transfers/abort     either market: give up; answers the fallback market
    GET  /transfers/{id}      where a transfer stands
    POST /characters/{id}/arrive  a market: the character joins here directly, not
                              through a portal (a key, or a resume token); answers
                              its newest snapshot as `last`
    POST /characters/elsewhere    a market: which of these visitors, whose entities it
                              has with no socket, the book places in another market

Every write of the book commits to the store before it returns, so each runs in a thread:
the control API, heartbeats included, never waits on the disk. Accepting is where
authority moves. The book records the token's consumption, then the
orchestrator asks the source market to release the visitor (its socket closes, its
entity leaves) and records the release; only then does the destination hear yes and
spawn it. A running source that does not release it aborts the transfer instead: the
visitor is then held by the fallback market, never by two. A source whose process is down
holds no socket of the visitor (no process of it runs), so there the release stands and
the visitor goes on.

A character may also join a market directly, with its key or a resume token, while the
book places it in another. Arriving moves it as a transfer would, in one go: the market
the book placed it in releases it (its socket there closes), and the move is recorded,
so that it is never live in two markets and its next walk through a portal starts from
where it is.
"""

import asyncio
import time
from collections.abc import Callable
from typing import Any

from host.client import HostLink, HostRefused, HostUnavailable
from host.control import ControlApp, ControlRefusal, ControlRequest
from host.orchestrator import MarketRefused, Orchestrator
from host.tokens import TransferRefused, transfer_token_verify, visitor_key_hash
from host.transfers import TransferBook

DESTINATION_READY_S = 30.0  # the longest a request waits for a lazily started destination
MAX_CHARACTERS_ASKED = 10_000  # ids in one /characters/elsewhere question

Releaser = Callable[[int, int, str], None]
Carried = Callable[[str], list[dict[str, Any]]]  # what a character carries, by its id
LastSeen = Callable[[str], dict[str, Any] | None]  # a character's newest snapshot, by its id


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _field(body: Any, name: str, kind: type, what: str) -> Any:
    value = body.get(name) if isinstance(body, dict) else None
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ControlRefusal(400, f"{name} must be {what}", "bad_request")
    return value


def _refusal(refused: TransferRefused) -> ControlRefusal:
    if refused.reason == "unknown_transfer":
        return ControlRefusal(404, str(refused), refused.reason)
    status = 403 if refused.reason in ("bad_signature", "malformed", "replayed") else 409
    return ControlRefusal(status, str(refused), refused.reason)


def release_over_http(orchestrator: Orchestrator) -> Releaser:
    """Ask the source market's web process to release a character (its loopback API)."""

    def release(source: int, character_id: int, transfer_id: str) -> None:
        link = HostLink(
            control_url=orchestrator.market_url(source).rstrip("/"),
            secret=orchestrator.secret,
            market_id=source,
        )
        link.call(
            "POST",
            f"/api/markets/{source}/host/release/",
            {"character_id": str(character_id), "transfer_id": transfer_id},
        )

    return release


class TransferRoutes:
    """The transfer routes over one book and one orchestrator."""

    def __init__(
        self,
        *,
        book: TransferBook,
        orchestrator: Orchestrator,
        release: Releaser | None = None,
        carried: Carried | None = None,
        last_seen: LastSeen | None = None,
    ) -> None:
        self.book = book
        self.orchestrator = orchestrator
        self.release = release or release_over_http(orchestrator)
        self.carried = carried or (lambda character: [])
        self.last_seen = last_seen or (lambda character: None)

    def routes_add(self, app: ControlApp) -> None:
        app.route_add("POST", "/transfers", self._request)
        app.route_add("POST", "/transfers/accept", self._accept)
        app.route_add("POST", "/transfers/complete", self._complete)
        app.route_add("POST", "/transfers/abort", self._abort)
        app.route_add("GET", "/transfers/{transfer_id}", self._get)
        app.route_add("POST", "/characters/{character_id}/arrive", self._arrive)
        app.route_add("POST", "/characters/elsewhere", self._elsewhere)

    async def _request(self, request: ControlRequest) -> dict[str, Any]:
        body = request.body
        character = _field(body, "character_id", str, "the visitor's entity id, as a string")
        if not character.isdigit():
            raise ControlRefusal(400, "character_id must be digits", "bad_request")
        source = _field(body, "source", int, "the market id the visitor is in")
        destination = _field(body, "destination", int, "the market id the portal leads to")
        state = _field(body, "state", dict, "the character's state, an object")
        # what it carries is the host's to say (the store), not the market's
        character_state = state.get("character") if isinstance(state.get("character"), dict) else {}
        carrying = await asyncio.to_thread(self.carried, character)
        state = {**state, "character": {**character_state, "carrying": carrying}}
        try:
            await self.orchestrator.ensure_started(destination)
        except MarketRefused as refused:
            raise refused.refusal() from None
        if not await self.orchestrator.market_ready_wait(
            destination, timeout_s=DESTINATION_READY_S
        ):
            raise ControlRefusal(
                503, f"market {destination} did not get ready", "destination_unavailable"
            )
        try:
            transfer_id, token = await asyncio.to_thread(
                self.book.transfer_request,
                character_id=int(character),
                key_hash=visitor_key_hash(key=f"character:{character}"),
                source=source,
                destination=destination,
                instance_id=0,
                character_state=state,
                now_ms=_now_ms(),
            )
        except TransferRefused as refused:
            raise _refusal(refused) from None
        except ValueError as error:
            raise ControlRefusal(400, str(error), "bad_request") from None
        return {
            "transfer_id": transfer_id,
            "token": token,
            "destination": destination,
            "url": self.orchestrator.market_url(destination),
            "expires_in_ms": self.book.token_ttl_ms,
        }

    async def _accept(self, request: ControlRequest) -> dict[str, Any]:
        token = _field(request.body, "token", str, "the transfer token")
        destination = _field(request.body, "destination", int, "this market's id")
        instance = _field(request.body, "instance_id", int, "this market's instance")
        now_ms = _now_ms()
        try:
            claims = transfer_token_verify(
                secret=self.book.secret,
                token=token,
                destination=destination,
                instance_id=instance,
                now_ms=now_ms,
            )
            state = await asyncio.to_thread(
                self.book.transfer_accept,
                token=token,
                destination=destination,
                instance_id=instance,
                now_ms=now_ms,
            )
        except TransferRefused as refused:
            raise _refusal(refused) from None
        await self._release(
            source=claims.source, character_id=claims.character_id, transfer_id=claims.transfer_id
        )
        try:
            await asyncio.to_thread(
                self.book.transfer_release,
                transfer_id=claims.transfer_id,
                source=claims.source,
                now_ms=_now_ms(),
            )
        except TransferRefused as refused:  # aborted meanwhile (its expiry): the join is refused
            raise _refusal(refused) from None
        return {"transfer_id": claims.transfer_id, "source": claims.source, "state": state}

    async def _release(self, *, source: int, character_id: int, transfer_id: str) -> None:
        """Have `source` let the character go; else abort the transfer and refuse.

        A source with no process running holds no socket of the character, so there the
        release stands (what it restores from its zones has no socket, and leaves); a
        process still running, even one not answering, may hold it.
        """
        try:
            await asyncio.to_thread(self.release, source, character_id, transfer_id)
            return
        except HostUnavailable as error:
            if not self.orchestrator.market_running(source):
                return
            why = str(error)
        except HostRefused as error:
            why = str(error)
        fallback = await asyncio.to_thread(
            self.book.transfer_abort,
            transfer_id=transfer_id,
            reason="source_unreachable",
            now_ms=_now_ms(),
        )
        raise ControlRefusal(
            409,
            f"market {source} could not release the visitor ({why}); it is held by market"
            f" {fallback} again",
            "source_unreachable",
            fallback=fallback,
        )

    async def _arrive(self, request: ControlRequest) -> dict[str, Any]:
        character = request.params["character_id"]
        if not character.isdigit():
            raise ControlRefusal(400, "the character id must be digits", "bad_request")
        market = _field(request.body, "market", int, "the market the character joins")
        holder = await asyncio.to_thread(self.book.authority, character_id=int(character))
        last = await asyncio.to_thread(self.last_seen, character)
        if holder is None and last is not None:
            # never through a portal: where its market last said it stood (the snapshots
            # come every FABRIC_HOST_SNAPSHOT_PUSH_MS, so a join sooner than that after a
            # first join elsewhere is not seen)
            holder = last.get("market") if isinstance(last.get("market"), int) else None
        if holder is None or holder == market:
            return {"moved": False, "market": market, "last": last}
        await self._settle_released(int(character), holder)
        try:
            transfer_id, token = await asyncio.to_thread(
                self.book.transfer_request,
                character_id=int(character),
                key_hash=visitor_key_hash(key=f"character:{character}"),
                source=holder,
                destination=market,
                instance_id=0,
                character_state={"entity": int(character), "arrived": "join"},
                now_ms=_now_ms(),
            )
            await asyncio.to_thread(
                self.book.transfer_accept,
                token=token,
                destination=market,
                instance_id=0,
                now_ms=_now_ms(),
            )
            await self._release(source=holder, character_id=int(character), transfer_id=transfer_id)
            await asyncio.to_thread(
                self.book.transfer_release, transfer_id=transfer_id, source=holder, now_ms=_now_ms()
            )
            await asyncio.to_thread(
                self.book.transfer_complete, transfer_id=transfer_id, now_ms=_now_ms()
            )
        except TransferRefused as refused:
            raise _refusal(refused) from None
        return {
            "moved": True,
            "market": market,
            "from": holder,
            "transfer_id": transfer_id,
            "last": last,
        }

    async def _elsewhere(self, request: ControlRequest) -> dict[str, Any]:
        """A market restarted from its zones' snapshot may hold entities of characters
        that left it while it was down: the book names their market now."""
        market = _field(request.body, "market", int, "the market asking")
        characters = _field(request.body, "characters", list, "a list of character ids")
        if len(characters) > MAX_CHARACTERS_ASKED or not all(
            isinstance(c, str) and c.isdigit() for c in characters
        ):
            raise ControlRefusal(
                400,
                f"characters must be at most {MAX_CHARACTERS_ASKED} ids, each a string of digits",
                "bad_request",
            )
        elsewhere = await asyncio.to_thread(
            self.book.held_elsewhere, market_id=market, character_ids=[int(c) for c in characters]
        )
        return {"market": market, "elsewhere": {str(c): m for c, m in elsewhere.items()}}

    async def _settle_released(self, character_id: int, holder: int) -> None:
        """Complete a transfer released to `holder` whose visitor never said it arrived.

        The client came to another market instead: the character is the holder's, so the
        transfer is complete, and the move from there can start now rather than at expiry.
        """
        open_transfers = await asyncio.to_thread(self.book.transfers_open, market_id=holder)
        for transfer in open_transfers:
            if transfer.character_id == character_id and transfer.state == "source_released":
                await asyncio.to_thread(
                    self.book.transfer_complete, transfer_id=transfer.transfer_id, now_ms=_now_ms()
                )

    async def _complete(self, request: ControlRequest) -> dict[str, Any]:
        transfer_id = _field(request.body, "transfer_id", str, "the transfer's id")
        try:
            await asyncio.to_thread(
                self.book.transfer_complete, transfer_id=transfer_id, now_ms=_now_ms()
            )
        except TransferRefused as refused:
            raise _refusal(refused) from None
        return {"transfer_id": transfer_id, "state": "completed"}

    async def _abort(self, request: ControlRequest) -> dict[str, Any]:
        transfer_id = _field(request.body, "transfer_id", str, "the transfer's id")
        reason = _field(request.body, "reason", str, "why, a short code")
        try:
            fallback = await asyncio.to_thread(
                self.book.transfer_abort, transfer_id=transfer_id, reason=reason, now_ms=_now_ms()
            )
        except TransferRefused as refused:
            raise _refusal(refused) from None
        return {
            "transfer_id": transfer_id,
            "fallback": fallback,
            "url": self.orchestrator.market_url(fallback),
        }

    async def _get(self, request: ControlRequest) -> dict[str, Any]:
        try:
            transfer = await asyncio.to_thread(
                self.book.transfer_get, transfer_id=request.params["transfer_id"]
            )
        except TransferRefused as refused:
            raise ControlRefusal(404, str(refused), refused.reason) from None
        return {
            "transfer_id": transfer.transfer_id,
            "character_id": transfer.character_id,
            "source": transfer.source,
            "destination": transfer.destination,
            "state": transfer.state,
            "abort_reason": transfer.abort_reason,
            "fallback": transfer.fallback,
        }
