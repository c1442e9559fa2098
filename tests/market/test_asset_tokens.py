"""Asset tokens: signed, bound to one visitor of one market, short-lived; every refusal named."""

import pytest

from market.asset_tokens import (
    ASSET_TOKEN_REFRESH_S,
    ASSET_TOKEN_TTL_S,
    AssetTokenError,
    asset_token_issue,
    asset_token_verify,
    visitor_subject,
)

NOW = 1_800_000_000.0


def test_a_token_proves_its_visitor_in_its_market_until_it_expires():
    token = asset_token_issue(3, 1099511627777, now_s=NOW)

    claims = asset_token_verify(token, now_s=NOW + ASSET_TOKEN_TTL_S - 1)

    assert (claims.market_id, claims.entity) == (3, 1099511627777)
    assert claims.subject == "visitor:3-1099511627777" == visitor_subject(3, 1099511627777)
    assert claims.expires_s == int(NOW) + ASSET_TOKEN_TTL_S


def test_a_renewed_token_is_issued_before_the_last_one_expires():
    assert 0 < ASSET_TOKEN_REFRESH_S < ASSET_TOKEN_TTL_S


def test_an_expired_token_is_refused():
    token = asset_token_issue(3, 42, now_s=NOW)

    with pytest.raises(AssetTokenError) as refused:
        asset_token_verify(token, now_s=NOW + ASSET_TOKEN_TTL_S)

    assert refused.value.code == "token_expired"


@pytest.mark.parametrize(
    "change",
    [
        lambda t: t.replace("3.42.", "4.42.", 1),  # another market
        lambda t: t.replace("3.42.", "3.43.", 1),  # another visitor
        lambda t: t[:-1] + ("0" if t[-1] != "0" else "1"),  # another signature
        lambda t: ".".join([*t.split(".")[:2], str(int(t.split(".")[2]) + 999), t.split(".")[3]]),
    ],
    ids=["market", "entity", "signature", "longer-life"],
)
def test_a_changed_token_is_refused_as_forged(change):
    token = asset_token_issue(3, 42, now_s=NOW)

    with pytest.raises(AssetTokenError) as refused:
        asset_token_verify(change(token), now_s=NOW)

    assert refused.value.code == "token_forged"


@pytest.mark.parametrize(
    "token",
    ["", "abc", "3.42.1800000120", "3.42.1800000120." + "A" * 64, "0.42.1800000120." + "a" * 64],
    ids=["empty", "word", "unsigned", "upper-case", "market-0"],
)
def test_a_malformed_token_is_refused_as_such(token):
    with pytest.raises(AssetTokenError) as refused:
        asset_token_verify(token, now_s=NOW)

    assert refused.value.code == "token_malformed"


def test_a_token_signed_under_another_key_is_forged(settings):
    token = asset_token_issue(3, 42, now_s=NOW)
    settings.SECRET_KEY = "another market's key, long enough to be a real one"

    with pytest.raises(AssetTokenError) as refused:
        asset_token_verify(token, now_s=NOW)

    assert refused.value.code == "token_forged"
