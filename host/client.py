"""Calling the orchestrator's control API from a market process.

The orchestrator sets three variables in every market process it starts:
`FABRIC_HOST_CONTROL_URL` (loopback), `FABRIC_HOST_SECRET` and `FABRIC_HOST_MARKET_ID`.
A market started by hand has none of them and is not part of a host: it has no
portals to other markets, and `host_link()` is None there.

Calls are blocking (urllib); async code runs them with `asyncio.to_thread`. They are
rare (a transfer, a heartbeat), so a thread hop costs nothing that matters.
"""

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from http.client import HTTPException
from typing import Any
from urllib.error import HTTPError, URLError
from urllib.request import Request, urlopen

SECRET_HEADER = "X-Fabric-Host-Secret"
CALL_TIMEOUT_S = 5.0


class HostUnavailable(Exception):
    """The orchestrator did not answer, or answered with something that is not JSON."""


class HostRefused(Exception):
    """The orchestrator answered with a refusal: `reason` for programs, `message` for people."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        self.status = status
        self.reason = reason
        self.message = message
        super().__init__(f"{reason}: {message}")


@dataclass(frozen=True)
class HostLink:
    """How this market process reaches its orchestrator."""

    control_url: str  # e.g. http://127.0.0.1:9100
    secret: str
    market_id: int

    def call(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None = None,
        timeout: float = CALL_TIMEOUT_S,
    ) -> Any:
        """The JSON answer to `method path`; HostRefused for a 4xx/5xx with a reason.

        `timeout` must outlast any waiting the call asks of the orchestrator.
        """
        data = None if body is None else json.dumps(body).encode()
        request = Request(
            self.control_url.rstrip("/") + path,
            data=data,
            method=method,
            headers={SECRET_HEADER: self.secret, "Content-Type": "application/json"},
        )
        try:
            with urlopen(request, timeout=timeout) as response:
                return _json(response.read())
        except HTTPError as error:
            answer = _json(error.read(), default={})
            raise HostRefused(
                error.code,
                str(answer.get("reason") or f"http_{error.code}"),
                str(answer.get("error") or error.reason),
            ) from None
        except (URLError, OSError, TimeoutError, HTTPException, ValueError) as error:
            raise HostUnavailable(
                f"the orchestrator at {self.control_url} did not answer: {error}"
            ) from None


def _json(raw: bytes, default: Any = None) -> Any:
    try:
        return json.loads(raw) if raw else default
    except ValueError:
        if default is not None:
            return default
        raise HostUnavailable("the orchestrator answered with something that is not JSON") from None


def host_link(env: Mapping[str, str] | None = None) -> HostLink | None:
    """This market process's link to its orchestrator, or None when it runs on its own."""
    env = os.environ if env is None else env
    url, secret, market = (
        env.get("FABRIC_HOST_CONTROL_URL", ""),
        env.get("FABRIC_HOST_SECRET", ""),
        env.get("FABRIC_HOST_MARKET_ID", ""),
    )
    if not (url and secret and market.isdigit()):
        return None
    return HostLink(control_url=url, secret=secret, market_id=int(market))
