import base64
import hashlib
import hmac
import json
from dataclasses import replace

import pytest

from host.tokens import (
    TransferClaims,
    TransferRefused,
    transfer_token_issue,
    transfer_token_verify,
    visitor_key_hash,
)

SECRET = b"s" * 32
CLAIMS = TransferClaims(
    transfer_id="t-1",
    character_id=7,
    key_hash=visitor_key_hash(key="visitor-key-7"),
    source=1,
    destination=2,
    instance_id=20,
    issued_at_ms=1_000,
    expires_at_ms=11_000,
    nonce="n-1",
)


def _verify(token: str, *, destination: int = 2, instance_id: int = 20, now_ms: int = 5_000):
    return transfer_token_verify(
        secret=SECRET, token=token, destination=destination, instance_id=instance_id, now_ms=now_ms
    )


def _refusal(token: str, **where) -> str:
    with pytest.raises(TransferRefused) as caught:
        _verify(token, **where)
    assert caught.value.message
    return caught.value.reason


def test_a_token_verifies_to_the_claims_it_was_issued_with() -> None:
    token = transfer_token_issue(secret=SECRET, claims=CLAIMS)
    assert _verify(token) == CLAIMS


def test_the_key_hash_is_a_digest_and_never_the_key() -> None:
    token = transfer_token_issue(secret=SECRET, claims=CLAIMS)
    assert "visitor-key-7" not in base64.urlsafe_b64decode(token.split(".")[0] + "==").decode()
    with pytest.raises(ValueError, match="key_hash must be a SHA-256 hex digest"):
        transfer_token_issue(secret=SECRET, claims=replace(CLAIMS, key_hash="visitor-key-7"))


@pytest.mark.parametrize("position", [0, 5, -3])
def test_one_flipped_bit_is_a_bad_signature(position: int) -> None:
    token = transfer_token_issue(secret=SECRET, claims=CLAIMS)
    payload, signature = token.split(".")
    raw = bytearray(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    raw[position] ^= 0x01
    flipped = base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()
    assert _refusal(f"{flipped}.{signature}") == "bad_signature"
    sig = bytearray(base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)))
    sig[position] ^= 0x01
    assert (
        _refusal(f"{payload}.{base64.urlsafe_b64encode(bytes(sig)).rstrip(b'=').decode()}")
        == "bad_signature"
    )


def test_a_token_signed_with_another_secret_is_a_bad_signature() -> None:
    token = transfer_token_issue(secret=b"o" * 32, claims=CLAIMS)
    assert _refusal(token) == "bad_signature"


def test_a_token_for_another_destination_or_instance_is_refused() -> None:
    token = transfer_token_issue(secret=SECRET, claims=CLAIMS)
    assert _refusal(token, destination=3) == "wrong_destination"
    assert _refusal(token, instance_id=21) == "wrong_instance"


def test_a_token_is_good_until_its_expiry_and_not_from_it() -> None:
    token = transfer_token_issue(secret=SECRET, claims=CLAIMS)
    assert _verify(token, now_ms=10_999) == CLAIMS
    assert _refusal(token, now_ms=11_000) == "expired"


@pytest.mark.parametrize(
    "garbage", ["", "abc", "a.b.c", "not base64!.x", "....", "a" * 40 + ".", 7, None]
)
def test_garbage_is_malformed(garbage) -> None:
    assert _refusal(garbage) == "malformed"


def test_signed_claims_of_the_wrong_shape_are_malformed() -> None:
    # Signed by the host, yet not claims: the shape check still names what is wrong.
    def signed(text: str) -> str:
        payload = base64.urlsafe_b64encode(text.encode()).rstrip(b"=").decode()
        mac = hmac.new(SECRET, payload.encode(), hashlib.sha256).digest()
        return f"{payload}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"

    assert _refusal(signed("[1, 2]")) == "malformed"
    assert _refusal(signed("{not json")) == "malformed"
    claims = json.loads(
        base64.urlsafe_b64decode(
            transfer_token_issue(secret=SECRET, claims=CLAIMS).split(".")[0] + "=="
        )
    )
    claims["character_id"] = "7"
    with pytest.raises(TransferRefused, match="character_id must be a whole number"):
        _verify(signed(json.dumps(claims)))


@pytest.mark.parametrize("secret", [b"short", b"x" * 31, "s" * 32])
def test_a_secret_shorter_than_32_bytes_is_refused(secret) -> None:
    with pytest.raises(ValueError, match="at least 32 bytes"):
        transfer_token_issue(secret=secret, claims=CLAIMS)
    with pytest.raises(ValueError, match="at least 32 bytes"):
        transfer_token_verify(secret=secret, token="a.b", destination=2, instance_id=20, now_ms=0)


def test_claims_that_expire_before_they_are_issued_cannot_be_issued() -> None:
    with pytest.raises(ValueError, match="expires_at_ms must be after issued_at_ms"):
        transfer_token_issue(secret=SECRET, claims=replace(CLAIMS, expires_at_ms=1_000))


def test_an_empty_visitor_key_is_refused() -> None:
    with pytest.raises(ValueError, match="non-empty string"):
        visitor_key_hash(key="")
