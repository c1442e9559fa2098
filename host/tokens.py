"""Transfer tokens: what a visitor carries through a portal from one market to another.

A token is `base64url(canonical JSON of the claims) + "." + base64url(HMAC-SHA256)`,
signed with the host secret. It is bound to one character, its source market, its
destination market and the destination's instance, and good for a short time. Whether
it was already used is not in the token: `host/transfers.py` keeps that, durably.
"""

import base64
import binascii
import hashlib
import hmac
import json
import re
from dataclasses import asdict, dataclass, fields
from typing import Any

SECRET_MIN_BYTES = 32

# Every way a transfer can be refused, by the token check or by the book of transfers.
REFUSAL_REASONS = frozenset(
    {
        "malformed",
        "bad_signature",
        "expired",
        "wrong_destination",
        "wrong_instance",
        "replayed",
        "aborted",
        "destination_unavailable",
        "destination_quarantined",
        "in_transfer",
        "unknown_transfer",
        "wrong_source",
        "wrong_state",
    }
)

_TOKEN_SHAPE = re.compile(r"([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)")
_KEY_HASH_SHAPE = re.compile(r"[0-9a-f]{64}")


class TransferRefused(Exception):
    """A transfer step refused: `reason` for machines, `message` for people."""

    def __init__(self, reason: str, message: str) -> None:
        if reason not in REFUSAL_REASONS:
            raise ValueError(f"unknown refusal reason {reason!r}")
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class TransferClaims:
    """What a transfer token asserts; `key_hash` is a hash of the visitor's key, never the key."""

    transfer_id: str
    character_id: int
    key_hash: str
    source: int  # market id
    destination: int  # market id
    instance_id: int  # the destination market's instance
    issued_at_ms: int
    expires_at_ms: int  # the first millisecond the token is no longer good
    nonce: str


def visitor_key_hash(*, key: str) -> str:
    """The SHA-256 hex digest of a visitor's key or session id, as claims carry it."""
    if not isinstance(key, str) or not key:
        raise ValueError("a visitor key must be a non-empty string")
    return hashlib.sha256(key.encode()).hexdigest()


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _secret_check(secret: bytes) -> None:
    if not isinstance(secret, bytes) or len(secret) < SECRET_MIN_BYTES:
        size = len(secret) if isinstance(secret, bytes) else type(secret).__name__
        raise ValueError(f"the host secret must be at least {SECRET_MIN_BYTES} bytes, got {size}")


def _signature(secret: bytes, payload: str) -> bytes:
    return hmac.new(secret, payload.encode("ascii"), hashlib.sha256).digest()


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _claims_problem(claims: dict[str, Any]) -> str | None:
    """What is wrong with a claims mapping, or None when it is well formed."""
    names = {f.name for f in fields(TransferClaims)}
    if set(claims) != names:
        return f"claims must be exactly {sorted(names)}, got {sorted(claims)}"
    for name in ("transfer_id", "nonce"):
        if not isinstance(claims[name], str) or not claims[name]:
            return f"{name} must be a non-empty string"
    for name in ("character_id", "source", "destination", "instance_id"):
        if not _is_int(claims[name]) or claims[name] < 0:
            return f"{name} must be a whole number >= 0, got {claims[name]!r}"
    for name in ("issued_at_ms", "expires_at_ms"):
        if not _is_int(claims[name]):
            return f"{name} must be a whole number of milliseconds, got {claims[name]!r}"
    if not isinstance(claims["key_hash"], str) or not _KEY_HASH_SHAPE.fullmatch(claims["key_hash"]):
        return "key_hash must be a SHA-256 hex digest (64 lowercase hex digits), not a raw key"
    if claims["expires_at_ms"] <= claims["issued_at_ms"]:
        return "expires_at_ms must be after issued_at_ms"
    return None


def host_secret_check(*, secret: bytes) -> None:
    """Raise ValueError unless `secret` is bytes, at least SECRET_MIN_BYTES long."""
    _secret_check(secret)


def transfer_claims_check(*, claims: TransferClaims) -> None:
    """Raise ValueError naming what is wrong with claims a token could not carry."""
    if not isinstance(claims, TransferClaims):
        raise TypeError(f"claims must be TransferClaims, got {type(claims).__name__}")
    problem = _claims_problem(asdict(claims))
    if problem is not None:
        raise ValueError(f"cannot issue a transfer token: {problem}")


def transfer_token_issue(*, secret: bytes, claims: TransferClaims) -> str:
    """A signed transfer token carrying `claims`."""
    _secret_check(secret)
    transfer_claims_check(claims=claims)
    # Sorted keys and no spaces: the same claims always sign the same bytes.
    text = json.dumps(asdict(claims), sort_keys=True, separators=(",", ":"))
    payload = _b64encode(text.encode())
    return f"{payload}.{_b64encode(_signature(secret, payload))}"


def transfer_token_verify(
    *, secret: bytes, token: str, destination: int, instance_id: int, now_ms: int
) -> TransferClaims:
    """The claims of a genuine, unexpired token for this destination and instance.

    Raises `TransferRefused` (malformed, bad_signature, expired, wrong_destination,
    wrong_instance). Whether the token was used before is the book's to say.
    """
    _secret_check(secret)
    match = _TOKEN_SHAPE.fullmatch(token) if isinstance(token, str) else None
    if match is None:
        raise TransferRefused("malformed", "a transfer token is two base64url parts joined by '.'")
    payload, signature_text = match.groups()
    try:
        signature = _b64decode(signature_text)
    except binascii.Error:
        raise TransferRefused("malformed", "the token's signature is not base64url") from None
    # Constant time, so a forger learns nothing from how long a refusal takes.
    if not hmac.compare_digest(signature, _signature(secret, payload)):
        raise TransferRefused("bad_signature", "the token was not signed by this host")
    try:
        claims = json.loads(_b64decode(payload))
    except (binascii.Error, ValueError):  # ValueError covers JSON and UTF-8
        raise TransferRefused("malformed", "the token's claims are not base64url JSON") from None
    problem = _claims_problem(claims) if isinstance(claims, dict) else "claims must be an object"
    if problem is not None:
        raise TransferRefused("malformed", problem)
    verified = TransferClaims(**claims)
    if now_ms >= verified.expires_at_ms:
        raise TransferRefused(
            "expired", f"the token expired at {verified.expires_at_ms} ms, it is {now_ms} ms"
        )
    if verified.destination != destination:
        raise TransferRefused(
            "wrong_destination",
            f"the token is for market {verified.destination}, not market {destination}",
        )
    if verified.instance_id != instance_id:
        raise TransferRefused(
            "wrong_instance",
            f"the token is for instance {verified.instance_id}, not instance {instance_id}",
        )
    return verified
