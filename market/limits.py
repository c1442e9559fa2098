"""Counting what a caller does, per subject and fixed window, on the shared cache.

The join endpoint spends from three budgets (market/api.py): joins per address, joins
per visitor key, and new visitor keys per address (each a database row). Counts live in
Django's default cache, Redis once REDIS_URL is set, so every web process of a market
spends from the same budget; a market's channel prefix is part of every key, so markets
sharing one Redis keep apart. A window is a fixed stretch of the clock: the count starts
at zero when the next one begins, which is what Retry-After tells the caller.
"""

import hashlib
import math
import time

from django.conf import settings
from django.core.cache import cache

from market.rates import Rate


class RateLimited(Exception):
    """A budget is spent: `retry_after` whole seconds until its window ends."""

    def __init__(self, retry_after: int, detail: str) -> None:
        super().__init__(detail)
        self.retry_after = retry_after
        self.detail = detail


def _counter_key(scope: str, subject: str, window: int) -> str:
    # Subjects are addresses and key hashes: hashed again, every key has one safe shape.
    digest = hashlib.sha256(subject.encode("utf-8")).hexdigest()[:32]
    return f"limit:{settings.FABRIC_CHANNEL_PREFIX}:{scope}:{digest}:{window}"


def limit_spend(scope: str, subject: str, rate: Rate | None, what: str) -> None:
    """Count one event of `subject` in `scope`; RateLimited once `rate` is exceeded.

    `what` names the budget in the refusal ("joins from this address"). A refused event
    is counted too, so a caller that keeps trying stays refused until the window ends.
    """
    if rate is None:
        return
    now = time.time()
    window = int(now // rate.seconds)
    key = _counter_key(scope, subject, window)
    timeout = rate.seconds + 1
    if cache.add(key, 1, timeout=timeout):
        count = 1
    else:
        try:
            count = cache.incr(key)
        except ValueError:  # the window's counter expired between add and incr
            cache.add(key, 1, timeout=timeout)
            count = 1
    if count > rate.count:
        retry_after = max(1, math.ceil((window + 1) * rate.seconds - now))
        raise RateLimited(
            retry_after,
            f"Too many {what}: at most {rate.count} in {rate.seconds} s. "
            f"Try again in {retry_after} s.",
        )
