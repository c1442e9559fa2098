"""Readiness: whether this web process can take visitors now, service by service.

`/healthz` says the process is alive (a probe that fails should restart it);
`/readyz` says whether the services the market needs answer too: the database,
and Redis when the market is distributed (its channel layer, rows bus, events and
the memory of used join tickets all live there). While one does not, a load
balancer should send the process no one, the join endpoint refuses tickets with
`503 service_unavailable` and the visitor socket closes with 4503 saying so:
before, a Redis outage left `/healthz` at 200, tickets issued and sockets
dropped without a word. Nothing needs a restart afterwards: each check asks
again, and the clients of Redis and the database reconnect on their own.

A result is reused for FRESH_S, so probes, joins and sockets arriving together
cost one check, and a service that hangs costs at most CHECK_TIMEOUT_S each time.
"""

import logging
import threading
import time
from dataclasses import dataclass

import redis
from django.conf import settings
from django.db import connection
from django.http import HttpResponse

from zones.logthrottle import LogThrottle

log = logging.getLogger(__name__)
_lines = LogThrottle(log)

CHECK_TIMEOUT_S = 1.0
FRESH_S = 1.0
RETRY_AFTER_S = 5  # what refusals tell clients to wait before they ask again

SERVICES = {
    "database": "the market's database",
    "redis": "Redis, the market's message broker",
}


@dataclass(frozen=True)
class Readiness:
    """Each service's answer: name → None when it answered, else why not."""

    failures: dict[str, str | None]
    checked_at: float

    @property
    def ready(self) -> bool:
        return not any(self.failures.values())

    def reason(self) -> str:
        """A sentence for visitors naming what is down (never an address or an error text)."""
        down = [SERVICES[name] for name, failure in self.failures.items() if failure]
        return f"{' and '.join(down)} not answering; try again in a few seconds" if down else ""

    def as_json(self) -> dict[str, object]:
        return {
            "ready": self.ready,
            "checks": {
                name: "down" if failure else "ok" for name, failure in self.failures.items()
            },
        }


_lock = threading.Lock()
_latest: Readiness | None = None
_redis_client: redis.Redis | None = None


def _database() -> str | None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as error:  # any driver's error: the database did not answer
        connection.close()  # the next query opens a fresh connection
        return f"{type(error).__name__}: {error}"
    return None


def _redis() -> str | None:
    global _redis_client
    if _redis_client is None:
        _redis_client = redis.Redis.from_url(
            settings.REDIS_URL,
            socket_connect_timeout=CHECK_TIMEOUT_S,
            socket_timeout=CHECK_TIMEOUT_S,
        )
    try:
        _redis_client.ping()
    except (redis.RedisError, OSError) as error:
        return f"{type(error).__name__}: {error}"
    return None


def readiness(now: float | None = None) -> Readiness:
    """This process's services, checked at most once per FRESH_S (blocking: not on a loop)."""
    global _latest
    now = time.monotonic() if now is None else now
    with _lock:
        if _latest is not None and now - _latest.checked_at < FRESH_S:
            return _latest
        failures = {"database": _database()}
        if settings.REDIS_URL:
            failures["redis"] = _redis()
        _latest = Readiness(failures=failures, checked_at=now)
    for name, failure in failures.items():
        if failure:
            _lines.error(f"ready {name}", "not ready: %s does not answer (%s)", name, failure)
        else:
            _lines.clear(f"ready {name}", "ready again: %s answers", name)
    return _latest


def quiet(response: HttpResponse) -> HttpResponse:
    """Keep Django from logging this 503 as a server error: probes and refused joins repeat
    it all through an outage, which `readiness` already logs once per 10 s."""
    response._has_been_logged = True  # type: ignore[attr-defined]  # django.utils.log
    return response


def readiness_cached() -> Readiness | None:
    """The latest result if it is still fresh, without checking (for code on an event loop)."""
    latest = _latest
    if latest is not None and time.monotonic() - latest.checked_at < FRESH_S:
        return latest
    return None
