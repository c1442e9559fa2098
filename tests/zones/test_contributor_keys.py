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
    ALLOWED,
    NOT_THIS_MARKETS,
    ContributorKeyError,
    identity_verdicts,
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


async def closed_within(ws, seconds: float = 5) -> dict:
    end = asyncio.get_running_loop().time() + seconds
    while True:
        message = await ws.receive_output(timeout=end - asyncio.get_running_loop().time())
        if message["type"] == "websocket.close":
            return message


async def test_a_contributor_let_into_an_open_market_is_cut_when_its_first_key_is_made(
    monkeypatch,
):
    monkeypatch.setattr(contribute, "KEYS_RECHECK_S", 0.3)
    await database_sync_to_async(markets)(MARKET)
    async with running_market():
        arbitrary = await contributor(key=KEY)  # the market is open: any long key
        _, key = await database_sync_to_async(key_create)(MARKET, "heidi")
        kept = await contributor(key=key)
        message = await closed_within(arbitrary)
        assert message["code"] == contribute.CLOSE_REFUSED
        assert message["reason"] == "bad_key: this key is not one of this market's contributor keys"
        assert [s.identity for s in contribute._hubs[MARKET].sockets.values()] == [
            key_identity(key)
        ]
        await kept.disconnect()


async def test_a_contributor_whose_key_row_is_deleted_is_cut_off(monkeypatch):
    monkeypatch.setattr(contribute, "KEYS_RECHECK_S", 0.3)
    await database_sync_to_async(markets)(MARKET)
    row, key = await database_sync_to_async(key_create)(MARKET, "ivan")
    _, other = await database_sync_to_async(key_create)(MARKET, "judy")
    async with running_market():
        cut = await contributor(key=key)
        kept = await contributor(key=other)
        await database_sync_to_async(row.delete)()
        message = await closed_within(cut)
        assert message["code"] == contribute.CLOSE_REFUSED
        assert message["reason"].startswith("bad_key")
        assert len(contribute._hubs[MARKET].sockets) == 1
        await kept.disconnect()


def test_every_key_is_judged_again_as_at_connect(settings):
    markets(MARKET)
    listed = key_identity("listed-contributor-key-01")
    arbitrary = key_identity(KEY)
    assert identity_verdicts(MARKET, [arbitrary]) == {arbitrary: ALLOWED}  # open
    settings.NPC_CONTRIBUTOR_KEYS = [listed]
    assert identity_verdicts(MARKET, [arbitrary, listed]) == {
        arbitrary: NOT_THIS_MARKETS,
        listed: ALLOWED,
    }
    settings.NPC_CONTRIBUTOR_KEYS = []
    row, key = key_create(MARKET, "kim")
    key_revoke(MARKET, "kim")
    verdicts = identity_verdicts(MARKET, [key_identity(key), arbitrary])
    assert verdicts[key_identity(key)] == key_verdict(MARKET, key)
    assert verdicts[key_identity(key)].code == "revoked_key"
    assert verdicts[arbitrary] == key_verdict(MARKET, KEY) == NOT_THIS_MARKETS  # stays closed


def test_the_admin_revokes_keys_and_offers_no_deletion(admin_client):
    markets(MARKET)
    row, _ = key_create(MARKET, "leo")

    listing = admin_client.get("/admin/zones/contributorkey/")
    page = listing.content.decode()
    assert listing.status_code == 200
    assert "delete_selected" not in page
    assert 'value="revoke"' in page
    assert "never deleted" in page
    assert admin_client.get(f"/admin/zones/contributorkey/{row.pk}/delete/").status_code == 403
    answer = admin_client.post(f"/admin/zones/contributorkey/{row.pk}/delete/", {"post": "yes"})
    assert answer.status_code == 403
    assert ContributorKey.objects.filter(pk=row.pk).exists()


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
