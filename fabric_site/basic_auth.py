"""HTTP Basic for creators' tools, without a password hash on every request.

DRF's BasicAuthentication runs the password hasher on each request, right password
or wrong: about 0.4 s of CPU with Django's default hasher, so a tool fetching many
chunks, or anyone sending wrong passwords, keeps a core busy. Here:

* a successful check is remembered for BASIC_AUTH_CACHE_SECONDS in this process's
  own memory (the `credentials` cache). Neither the password nor a plain hash of it is
  kept: the entry is found by an HMAC of username and password under a key derived
  from SECRET_KEY, and holds the user's id with an HMAC of the user's stored password
  hash, so changing the password or deactivating the user ends it at once;
* failures go through django-axes like every sign-in (the Basic request is passed to
  `authenticate`), so a username or an address that failed too often is refused for a
  cool-off without the hasher running, with 429 and Retry-After instead of 401.
"""

import hmac
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.cache import caches
from django.utils.crypto import salted_hmac
from rest_framework import exceptions
from rest_framework.authentication import BasicAuthentication

from fabric_site.signin import cool_off_seconds, locked_out_detail

CREDENTIALS_CACHE = "credentials"
LOOKUP_PURPOSE = "fabric.basic-auth.lookup"
FINGERPRINT_PURPOSE = "fabric.basic-auth.password-hash"


def _lookup_key(username: str, password: str) -> str:
    digest = salted_hmac(LOOKUP_PURPOSE, f"{username}\0{password}", algorithm="sha256")
    return f"basic:{digest.hexdigest()}"


def _fingerprint(user: AbstractBaseUser) -> str:
    return salted_hmac(FINGERPRINT_PURPOSE, user.password, algorithm="sha256").hexdigest()


def _remembered_user(entry: Any) -> AbstractBaseUser | None:
    """The user a remembered success names, if it is still active with the same password."""
    if not (isinstance(entry, tuple) and len(entry) == 2):
        return None
    pk, fingerprint = entry
    user = get_user_model()._default_manager.filter(pk=pk).first()
    if user is None or not user.is_active:
        return None
    return user if hmac.compare_digest(fingerprint, _fingerprint(user)) else None


class BoundedBasicAuthentication(BasicAuthentication):
    """DRF's HTTP Basic, with successes remembered briefly and failures limited by axes."""

    def authenticate_credentials(
        self, userid: str, password: str, request: Any = None
    ) -> tuple[AbstractBaseUser, None]:
        cache = caches[CREDENTIALS_CACHE]
        key = _lookup_key(userid, password)
        user = _remembered_user(cache.get(key))
        if user is not None:
            return user, None
        # axes is given Django's own request, not DRF's: it records the request's form
        # fields, which on DRF's would parse (or, for a streamed upload, consume) the body;
        # and its middleware then answers the lockout, as for any sign-in.
        django_request = getattr(request, "_request", request)
        try:
            user, _ = super().authenticate_credentials(userid, password, django_request)
        except exceptions.AuthenticationFailed:
            if getattr(django_request, "axes_locked_out", False):
                raise exceptions.Throttled(
                    wait=cool_off_seconds(request), detail=locked_out_detail(request)
                ) from None
            raise
        cache.set(key, (user.pk, _fingerprint(user)), timeout=settings.BASIC_AUTH_CACHE_SECONDS)
        return user, None
