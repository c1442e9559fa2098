"""`Authorization: Bearer <asset token>`: a visitor on the chunk and manifest API.

A visitor has no Django user: it is the entity its authKey (or its disposable
session) names in one market. DRF authenticators must return a user object, so a
valid token becomes a `VisitorPrincipal`, which says only who it is in the relation
engine (`rebac_subject`); every permission question then goes through
chunks.permissions as for anyone else. A visitor may therefore read what the market
granted it and write nothing. Other schemes (Basic, a session) are left to the
authenticators after this one.
"""

from typing import Any

from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header

from market.asset_tokens import AssetTokenClaims, AssetTokenError, asset_token_verify

SCHEME = b"bearer"


class VisitorPrincipal:
    """A visitor proven by an asset token, as DRF's `request.user`."""

    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_staff = False
    is_superuser = False
    pk = None

    def __init__(self, claims: AssetTokenClaims) -> None:
        self.claims = claims
        self.rebac_subject = claims.subject

    def __str__(self) -> str:
        return self.rebac_subject

    def get_username(self) -> str:
        return self.rebac_subject


def bearer_token(header: bytes) -> str | None:
    """The token of an `Authorization: Bearer <token>` header value; None for other schemes."""
    parts = header.split()
    if not parts or parts[0].lower() != SCHEME:
        return None
    if len(parts) != 2:
        raise exceptions.AuthenticationFailed("Bearer needs exactly one token after it.")
    try:
        return parts[1].decode("ascii")
    except UnicodeDecodeError:
        raise exceptions.AuthenticationFailed(AssetTokenError("token_malformed").message) from None


def visitor_for_token(token: str) -> VisitorPrincipal:
    """The visitor a token proves; AuthenticationFailed naming why it does not."""
    try:
        return VisitorPrincipal(asset_token_verify(token))
    except AssetTokenError as error:
        raise exceptions.AuthenticationFailed(error.message) from None


class VisitorTokenAuthentication(BaseAuthentication):
    """DRF authenticator for visitors' asset tokens."""

    def authenticate(self, request: Any) -> tuple[VisitorPrincipal, str] | None:
        token = bearer_token(get_authorization_header(request))
        if token is None:
            return None
        return visitor_for_token(token), token

    def authenticate_header(self, request: Any) -> str:
        return 'Bearer realm="chunks"'
