"""Contributor keys kept in the database: created and revoked by the management command,
checked by the contributor socket at connect and while connected."""

import asyncio
import io

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.core.management import CommandError, call_command

from market.models import Market
from tests.zones.test_contributors import KEY, MARKET, app, contributor, running_market
from zones import contribute
from zones.contributor_keys import (
    ContributorKeyError,
    key_create,
    key_identity,
    key_revoke,
    key_verdict,
)
from zones.models import ContributorKey

pytestmark = pytest.mark.django_db(transaction=True)


def markets(*ids: int) -> None:
    for pk in ids:
        Market.objects.create(pk=pk, name=f"m{pk}", slug=f"m{pk}")


def command(*args: str) -> str:
    out = io.StringIO()
    call_command("contributorkey", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


async def refused_with(key: str) -> tuple[dict, dict]:
    ws = WebsocketCommunicator(app, f"/ws/markets/{MARKET}/contribute/?key={key}")
    await ws.connect()
    error = await ws.receive_json_from(timeout=2)
    close = await ws.receive_output(timeout=2)
    await ws.disconnect()
    return error, close


def test_a_market_with_no_stored_key_is_open_and_one_key_closes_it():
    markets(MARKET, MARKET + 1)
    assert key_verdict(MARKET, KEY).allowed
    assert key_verdict(MARKET, "short").code == "bad_key"
    _, key = key_create(MARKET, "alice")
    assert len(key) >= 16
    assert ContributorKey.objects.get().digest == key_identity(key)  # the key is not stored
    assert key_verdict(MARKET, key).allowed
    assert key_verdict(MARKET, KEY).code == "bad_key"  # closed now
    assert key_verdict(MARKET + 1, KEY).allowed  # another market stays open
    _, other = key_create(MARKET + 1, "alice")
    assert key_verdict(MARKET + 1, key).code == "bad_key"  # a key is one market's
    assert key_verdict(MARKET, other).code == "bad_key"


def test_the_command_creates_lists_and_revokes_and_says_what_is_wrong():
    markets(MARKET)
    key = command("create", "--market", str(MARKET), "--label", "bob").strip()
    assert key_verdict(MARKET, key).allowed
    assert "bob  active" in command("list", "--market", str(MARKET))
    assert "revoked" in command("revoke", "--market", str(MARKET), "bob")
    verdict = key_verdict(MARKET, key)
    assert verdict.code == "revoked_key" and "revoked at" in verdict.detail
    assert "bob  revoked" in command("list", "--market", str(MARKET))
    # Revoking the last key does not reopen the market.
    assert key_verdict(MARKET, KEY).code == "bad_key"
    with pytest.raises(CommandError, match="no active key"):
        command("revoke", "--market", str(MARKET), "bob")
    with pytest.raises(CommandError, match="no market 99"):
        command("create", "--market", "99", "--label", "x")
    with pytest.raises(ContributorKeyError, match="label"):
        key_create(MARKET, "  ")
    with pytest.raises(ContributorKeyError, match="8 characters"):
        key_revoke(MARKET, "ab")


def test_a_key_is_revoked_by_the_start_of_its_digest():
    markets(MARKET)
    row, key = key_create(MARKET, "carol")
    assert key_revoke(MARKET, row.digest[:10]) == [row]
    assert key_verdict(MARKET, key).code == "revoked_key"


async def test_the_socket_refuses_unknown_and_revoked_keys_with_a_reason(monkeypatch):
    await database_sync_to_async(markets)(MARKET)
    _, good = await database_sync_to_async(key_create)(MARKET, "dave")
    row, gone = await database_sync_to_async(key_create)(MARKET, "erin")
    await database_sync_to_async(key_revoke)(MARKET, "erin")
    async with running_market():
        ws = await contributor(key=good)
        await ws.disconnect()
        error, close = await refused_with(KEY)
        assert error["code"] == "bad_key" and "not one of this market" in error["message"]
        assert close["code"] == contribute.CLOSE_REFUSED
        error, close = await refused_with(gone)
        assert error["code"] == "revoked_key"
        assert close["code"] == contribute.CLOSE_REVOKED
        assert close["reason"].startswith("revoked_key: this key was revoked at")


async def test_a_connected_contributor_whose_key_is_revoked_is_cut_off(monkeypatch):
    monkeypatch.setattr(contribute, "KEYS_RECHECK_S", 0.3)
    await database_sync_to_async(markets)(MARKET)
    _, key = await database_sync_to_async(key_create)(MARKET, "frank")
    _, other = await database_sync_to_async(key_create)(MARKET, "grace")
    async with running_market():
        cut = await contributor(key=key)
        kept = await contributor(key=other)
        await database_sync_to_async(key_revoke)(MARKET, "frank")
        end = asyncio.get_running_loop().time() + 5
        while True:
            message = await cut.receive_output(timeout=end - asyncio.get_running_loop().time())
            if message["type"] == "websocket.close":
                break
        assert message["code"] == contribute.CLOSE_REVOKED
        assert message["reason"].startswith("revoked_key")
        hub = contribute._hubs[MARKET]
        assert len(hub.sockets) == 1  # the other one stays
        await kept.disconnect()
