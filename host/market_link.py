"""A market process's side of the host: say ready once serving, then heartbeat.

When the orchestrator started this process (`FABRIC_HOST_CONTROL_URL`,
`FABRIC_HOST_SECRET` and `FABRIC_HOST_MARKET_ID` are set), the market posts `ready`
once its web server accepts connections, then a heartbeat every FABRIC_HOST_HEARTBEAT_MS
with a few figures. The orchestrator restarts a market that goes silent, so the link
never gives up: a failed call is logged (at most once per interval while it lasts) and
tried again at the next beat. It never stops the market, except when the orchestrator
itself is gone (this process's parent changed): a market nobody supervises stops.
"""

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Callable
from typing import Any

from host.client import HostLink, HostRefused, HostUnavailable, host_link
from host.tunables import Tunables
from zones.logthrottle import LogThrottle

log = logging.getLogger(__name__)
STARTED_POLL_S = 0.05


def market_link_start(
    *, started: Callable[[], bool], stats: Callable[[], dict[str, Any]]
) -> asyncio.Task[None] | None:
    """The link's task when this process belongs to a host, else None."""
    link = host_link()
    if link is None:
        return None
    heartbeat_s = Tunables.from_environment().heartbeat_ms / 1000
    return asyncio.create_task(
        market_link_run(link=link, heartbeat_s=heartbeat_s, started=started, stats=stats),
        name="market-link",
    )


async def market_link_run(
    *,
    link: HostLink,
    heartbeat_s: float,
    started: Callable[[], bool],
    stats: Callable[[], dict[str, Any]],
    parent: int | None = None,
    call: Callable[..., Any] | None = None,
) -> None:
    """Post ready once `started()`, then a heartbeat every `heartbeat_s`, until cancelled."""
    parent = os.getppid() if parent is None else parent
    call = call or link.call
    failures = LogThrottle(log)
    while not started():
        await asyncio.sleep(STARTED_POLL_S)
    said_ready = False
    while True:
        if os.getppid() != parent:
            log.error("market %d: the orchestrator is gone; stopping", link.market_id)
            os.kill(os.getpid(), signal.SIGTERM)  # the market's own clean stop
            return
        what = "heartbeat" if said_ready else "ready"
        body: dict[str, Any] = {"pid": os.getpid()}
        if said_ready:
            body["stats"] = stats()
        try:
            await asyncio.to_thread(call, "POST", f"/markets/{link.market_id}/{what}", body)
        except (HostRefused, HostUnavailable) as error:
            failures.warning(
                what, "market %d: %s to the orchestrator failed: %s", link.market_id, what, error
            )
        else:
            if failures.failing(what):
                failures.clear(
                    what, "market %d: %s reaches the orchestrator again", link.market_id, what
                )
            said_ready = True
        await asyncio.sleep(heartbeat_s)


def market_stats(*, zones: int, walkers: int) -> dict[str, Any]:
    """This market process's figures for its heartbeat."""
    connections = 0
    asgi = sys.modules.get("fabric_site.asgi")  # loaded by the web server; never import it here
    open_by_address = getattr(getattr(asgi, "application", None), "open", None)
    if isinstance(open_by_address, dict):
        connections = sum(open_by_address.values())
    return {"connections": connections, "zones": zones, "walkers": walkers}
