"""The orchestrator's control routes: health, the markets, start, stop, ready, heartbeat.

    GET  /health                       the orchestrator and every market
    GET  /markets                      every market, and the host's default market
    POST /markets/<id>/start           start it unless it runs (409 quarantined, retry_after_ms);
                                       {"wait_ready_s": S} answers once it is ready, or after S
    POST /markets/<id>/stop            stop its process; it stays stopped
    POST /markets/<id>/ready           its process serves: {"pid": N}
    POST /markets/<id>/heartbeat       its process lives: {"pid": N, "stats": {...}}

docs/host.md shows the answers.
"""

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

from host.control import ControlApp, ControlRefusal, ControlRequest
from host.orchestrator import MarketRefused, Orchestrator


class OrchestratorRoutes:
    """The handlers of the orchestrator's routes."""

    def __init__(self, orchestrator: Orchestrator) -> None:
        self.orchestrator = orchestrator

    def add_to(self, app: ControlApp) -> None:
        """Answer the orchestrator's routes on `app`."""
        app.route_add("GET", "/health", self._health_route)
        app.route_add("GET", "/markets", self._markets_route)
        app.route_add("POST", "/markets/{market_id}/start", self._start_route)
        app.route_add("POST", "/markets/{market_id}/stop", self._stop_route)
        app.route_add("POST", "/markets/{market_id}/ready", self._ready_route)
        app.route_add("POST", "/markets/{market_id}/heartbeat", self._heartbeat_route)

    async def _health_route(self, request: ControlRequest) -> dict[str, Any]:
        return self.orchestrator.health()

    async def _markets_route(self, request: ControlRequest) -> dict[str, Any]:
        return {
            "default_market": self.orchestrator.default_market,
            "markets": [self.orchestrator.market_report(m) for m in self.orchestrator.slots],
        }

    async def _start_route(self, request: ControlRequest) -> dict[str, Any]:
        market_id, body = _market_id(request), _body_object(request)
        wait = body.get("wait_ready_s", 0)
        if not isinstance(wait, int | float) or isinstance(wait, bool) or not 0 <= wait <= 60:
            raise ControlRefusal(400, "wait_ready_s must be 0 to 60 seconds", "bad_body")
        with _refused():
            await self.orchestrator.ensure_started(market_id)
            if wait:
                await self.orchestrator.market_ready_wait(market_id, timeout_s=float(wait))
            return self.orchestrator.market_report(market_id)

    async def _stop_route(self, request: ControlRequest) -> dict[str, Any]:
        market_id = _market_id(request)
        with _refused():
            await self.orchestrator.market_stop(market_id)
            return self.orchestrator.market_report(market_id)

    async def _ready_route(self, request: ControlRequest) -> dict[str, Any]:
        market_id, body = _market_id(request), _body_object(request)
        with _refused():
            self.orchestrator.market_ready_note(market_id, pid=_pid(body))
            return self.orchestrator.market_report(market_id)

    async def _heartbeat_route(self, request: ControlRequest) -> dict[str, Any]:
        market_id, body = _market_id(request), _body_object(request)
        stats = body.get("stats", {})
        if not isinstance(stats, dict):
            raise ControlRefusal(400, "stats must be a JSON object", "bad_body")
        with _refused():
            self.orchestrator.market_heartbeat_note(market_id, pid=_pid(body), stats=stats)
            return {"market_id": market_id, "state": self.orchestrator.slots[market_id].state}


@contextlib.contextmanager
def _refused() -> Iterator[None]:
    try:
        yield
    except MarketRefused as refused:
        raise refused.refusal() from None


def _market_id(request: ControlRequest) -> int:
    raw = request.params["market_id"]
    if not raw.isdigit():
        raise ControlRefusal(
            404, f"no market {raw!r}: a market id is a whole number", "unknown_market"
        )
    return int(raw)


def _body_object(request: ControlRequest) -> dict[str, Any]:
    if request.body is None:
        return {}
    if not isinstance(request.body, dict):
        raise ControlRefusal(400, "the body must be a JSON object", "bad_body")
    return request.body


def _pid(body: Mapping[str, Any]) -> int | None:
    pid = body.get("pid")
    if pid is not None and (not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0):
        raise ControlRefusal(400, f"pid must be a positive whole number, not {pid!r}", "bad_body")
    return pid


def orchestrator_routes_add(app: ControlApp, orchestrator: Orchestrator) -> None:
    """Answer the orchestrator's routes on `app`."""
    OrchestratorRoutes(orchestrator).add_to(app)
