"""The orchestrator: one market process per market, kept running, and its control routes.

Each market of the host runs in a process of its own (`manage.py runmarket --market ID
--port P`), so that a crash of one market never takes another down, nor the
orchestrator. A market process says `ready` once it serves, then sends a heartbeat every
FABRIC_HOST_HEARTBEAT_MS (host/market_link.py). The orchestrator restarts a market
process that exits, that stays silent longer than FABRIC_HOST_HEARTBEAT_TIMEOUT_MS, or
that never says ready, with a backoff that doubles each crash in a row; more than
FABRIC_HOST_RESTART_MAX_IN_WINDOW crashes within FABRIC_HOST_RESTART_WINDOW_MS
quarantine the market for FABRIC_HOST_QUARANTINE_MS, during which starts, joins and
transfers to it are refused with the reason `quarantined` and when to try again.

A market's states: stopped → starting → ready; ready → unhealthy (silent: being
stopped) → restarting → starting; any running state → restarting when its process
exits; restarting → quarantined on a crash loop; quarantined → starting (if it was
wanted) or stopped once the quarantine is over.
"""

import asyncio
import contextlib
import logging
import os
import signal
import socket
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from host.control import ControlRefusal
from host.secret import SECRET_VARIABLE
from host.tunables import Tunables
from zones.parent import STOP_GRACE_S, children_stop
from zones.restarts import CrashRecord, RestartPolicy

log = logging.getLogger(__name__)

MARKET_STATES = ("stopped", "starting", "ready", "unhealthy", "restarting", "quarantined")
POLL_S = 0.1
READY_TIMEOUT_S = 120.0  # a market process that has not said ready by then is restarted
BACKOFF_FIRST_S = 0.5
BACKOFF_MAX_S = 10.0
HEALTHY_AFTER_S = 60.0
HISTORY_KEPT = 32  # state changes remembered per market, for /health and for tests

CONTROL_URL_VARIABLE = "FABRIC_HOST_CONTROL_URL"
MARKET_VARIABLE = "FABRIC_HOST_MARKET_ID"

Launcher = Callable[[int, int], Sequence[str]]  # (market id, port) → argv of its process


class MarketRefused(Exception):
    """A market cannot be started, joined or transferred to now; `reason` says why."""

    def __init__(
        self, market_id: int, reason: str, message: str, retry_after_ms: int | None = None
    ) -> None:
        super().__init__(message)
        self.market_id = market_id
        self.reason = reason
        self.retry_after_ms = retry_after_ms

    def refusal(self) -> ControlRefusal:
        """The control API's answer: 404 for a market the host does not run, else 409."""
        details: dict[str, Any] = {"market_id": self.market_id}
        if self.retry_after_ms is not None:
            details["retry_after_ms"] = self.retry_after_ms
        status = 404 if self.reason == "unknown_market" else 409
        return ControlRefusal(status, str(self), self.reason, **details)


@dataclass
class MarketSlot:
    """One market: its port, its process, its state and its crash record."""

    market_id: int
    port: int
    record: CrashRecord
    state: str = "stopped"
    process: asyncio.subprocess.Process | None = None
    wanted: bool = False  # started and not stopped: restarted after a crash or a quarantine
    started_at: float = 0.0
    restart_at: float = 0.0
    kill_at: float = 0.0  # when an unhealthy process still running gets SIGKILL
    heartbeat_at: float | None = None
    stats: dict[str, Any] = field(default_factory=dict)
    restarts: int = 0
    last_exit: str = ""
    history: deque[str] = field(default_factory=lambda: deque(maxlen=HISTORY_KEPT))
    ready: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def pid(self) -> int | None:
        running = self.process is not None and self.process.returncode is None
        return self.process.pid if running and self.process else None

    def state_set(self, state: str) -> None:
        assert state in MARKET_STATES, state
        if state != self.state:
            log.info("market %d: %s → %s", self.market_id, self.state, state)
        self.state = state
        self.history.append(state)
        if state != "ready":
            self.ready.clear()


class Orchestrator:
    """Supervises the market processes of `markets` (market id → port)."""

    def __init__(
        self,
        *,
        markets: Mapping[int, int],
        launcher: Launcher,
        secret: str,
        control_url: str,
        tunables: Tunables | None = None,
        default_market: int | None = None,
        env: Mapping[str, str] | None = None,
        host: str = "127.0.0.1",
        ready_timeout_s: float = READY_TIMEOUT_S,
        backoff_first_s: float = BACKOFF_FIRST_S,
        market_exists: Callable[[int], bool] | None = None,
        reserved_ports: Iterable[int] = (),
    ) -> None:
        if not markets:
            raise ValueError("an orchestrator needs at least one market")
        self.tunables = tunables or Tunables.from_environment()
        self.default_market = next(iter(markets)) if default_market is None else default_market
        if self.default_market not in markets:
            raise ValueError(f"the default market {self.default_market} is not one of the host's")
        policy = RestartPolicy(
            backoff_first_s=backoff_first_s,
            backoff_max_s=BACKOFF_MAX_S,
            healthy_after_s=HEALTHY_AFTER_S,
            crash_limit=self.tunables.restart_max_in_window,
            crash_window_s=self.tunables.restart_window_ms / 1000,
            quarantine_s=self.tunables.quarantine_ms / 1000,
        )
        self.policy = policy
        self.slots = {m: MarketSlot(m, port, CrashRecord(policy)) for m, port in markets.items()}
        # a market created after the host started joins it on its first start; blocking
        # (the database), so it runs in a thread
        self.market_exists = market_exists
        self.reserved_ports = set(reserved_ports)
        self.launcher = launcher
        self.secret = secret
        self.control_url = control_url
        self.env = dict(os.environ if env is None else env)
        self.host = host
        self.ready_timeout_s = ready_timeout_s
        self.started_at = time.monotonic()

    # Supervision

    async def run(self, stop: asyncio.Event) -> None:
        """Watch every market until `stop`, then stop every market process."""
        try:
            while not stop.is_set():
                for slot in self.slots.values():
                    await self._watch(slot)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), POLL_S)
        finally:
            for slot in self.slots.values():
                slot.wanted = False
            await children_stop(
                [s.process for s in self.slots.values() if s.process], "market process", log
            )
            for slot in self.slots.values():
                slot.process = None
                slot.state_set("stopped")

    async def ensure_started(self, market_id: int) -> str:
        """Start the market unless it runs or is starting; its state, or MarketRefused.

        A market the host was not started with joins it, on the next free port, if it
        exists (created since, on the dashboard or with `market_generate`).
        """
        unknown = market_id not in self.slots and self.market_exists is not None
        if unknown and await asyncio.to_thread(self.market_exists, market_id):  # type: ignore[arg-type]
            self._market_add(market_id)
        slot = self._slot(market_id)
        self._refuse_if_quarantined(slot)
        slot.wanted = True
        if slot.state == "stopped":
            await self._start(slot)
        return slot.state

    async def market_ready_wait(self, market_id: int, *, timeout_s: float) -> bool:
        """Wait until the market says ready; False when `timeout_s` passes first."""
        try:
            await asyncio.wait_for(self._slot(market_id).ready.wait(), timeout_s)
        except TimeoutError:
            return False
        return True

    async def market_stop(self, market_id: int) -> str:
        """Stop the market's process and leave it stopped (a quarantine runs its course)."""
        slot = self._slot(market_id)
        slot.wanted = False
        process, slot.process = slot.process, None
        if process is not None:
            await children_stop([process], f"market {market_id} process", log)
        if slot.state != "quarantined":
            slot.state_set("stopped")
        return slot.state

    def market_ready_note(self, market_id: int, *, pid: int | None) -> None:
        """The market's process says it serves."""
        slot = self._running_slot(market_id, pid)
        slot.heartbeat_at = time.monotonic()
        if slot.state == "starting":
            slot.state_set("ready")
            slot.ready.set()

    def market_heartbeat_note(
        self, market_id: int, *, pid: int | None, stats: Mapping[str, Any]
    ) -> None:
        """The market's process is alive; `stats` are its latest figures."""
        slot = self._running_slot(market_id, pid)
        slot.heartbeat_at = time.monotonic()
        slot.stats = dict(stats)

    def market_health(self, market_id: int) -> str:
        """ "healthy" (ready), "quarantined", or "down" (anything else, or unknown)."""
        slot = self.slots.get(market_id)
        if slot is None:
            return "down"
        if slot.state == "ready":
            return "healthy"
        return "quarantined" if slot.state == "quarantined" else "down"

    def market_running(self, market_id: int) -> bool:
        """Whether a process of the market is alive (even one not answering)."""
        slot = self.slots.get(market_id)
        process = None if slot is None else slot.process
        return process is not None and process.returncode is None

    def market_url(self, market_id: int) -> str:
        """The address a browser opens for the market."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self._slot(market_id).port}/"

    async def _start(self, slot: MarketSlot) -> None:
        argv = list(self.launcher(slot.market_id, slot.port))
        env = {
            **self.env,
            CONTROL_URL_VARIABLE: self.control_url,
            SECRET_VARIABLE: self.secret,
            MARKET_VARIABLE: str(slot.market_id),
        }
        slot.heartbeat_at, slot.stats = None, {}
        slot.started_at = time.monotonic()
        slot.state_set("starting")
        try:
            # A session of its own: a ^C at the terminal reaches the orchestrator, which
            # stops its markets in order, not every market at once behind its back.
            slot.process = await asyncio.create_subprocess_exec(
                *argv, env=env, start_new_session=True
            )
        except OSError as error:
            log.error("market %d: cannot start %s: %s", slot.market_id, argv[0], error)
            slot.last_exit = f"could not start: {error}"
            self._crashed(slot, time.monotonic())
            return
        log.info("market %d: process started (pid %d)", slot.market_id, slot.process.pid)

    async def _watch(self, slot: MarketSlot) -> None:
        now = time.monotonic()
        if slot.state == "quarantined":
            if not slot.record.quarantined(now=now):
                slot.record.quarantine_end()
                log.warning("market %d: quarantine over", slot.market_id)
                slot.state_set("stopped")
                if slot.wanted:
                    await self._start(slot)
            return
        process = slot.process
        if process is not None and process.returncode is None:
            self._check_alive(slot, process, now)
            return
        if process is not None:  # it exited on its own (a stop clears slot.process first)
            slot.process = None
            exit_note = f"exited with {process.returncode}"
            slot.last_exit = (
                f"{slot.last_exit}; {exit_note}" if slot.state == "unhealthy" else exit_note
            )
            log.warning("market %d: process %s", slot.market_id, slot.last_exit)
            self._crashed(slot, now)
        if slot.state == "restarting" and now >= slot.restart_at:
            await self._start(slot)

    def _check_alive(
        self, slot: MarketSlot, process: asyncio.subprocess.Process, now: float
    ) -> None:
        """Mark a silent process unhealthy and stop it; SIGKILL it if it ignores that."""
        slot.record.uptime_note(up_s=now - slot.started_at)
        if slot.state == "unhealthy":
            if now >= slot.kill_at:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
            return
        timeout_s = self.tunables.heartbeat_timeout_ms / 1000
        if slot.state == "starting" and now - slot.started_at > self.ready_timeout_s:
            why = f"not ready within {self.ready_timeout_s:.0f} s"
        elif (
            slot.state == "ready"
            and slot.heartbeat_at is not None
            and now - slot.heartbeat_at > timeout_s
        ):
            why = f"no heartbeat for {now - slot.heartbeat_at:.1f} s"
        else:
            return
        log.error("market %d: %s; stopping its process (pid %d)", slot.market_id, why, process.pid)
        slot.last_exit = why
        slot.state_set("unhealthy")
        slot.kill_at = now + STOP_GRACE_S
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)

    def _crashed(self, slot: MarketSlot, now: float) -> None:
        delay = slot.record.crash_note(now=now)
        if delay is None:
            log.error(
                "market %d: %d crashes within %.0f s; quarantined for %.0f s",
                slot.market_id,
                len(slot.record.crashes),
                slot.record.policy.crash_window_s,
                slot.record.policy.quarantine_s,
            )
            slot.state_set("quarantined")
            return
        slot.restarts += 1
        slot.restart_at = now + delay
        slot.state_set("restarting")

    def _market_add(self, market_id: int) -> MarketSlot:
        """A slot for a market created since the host started, on the next free port."""
        if market_id in self.slots:  # added while this start was asking the database
            return self.slots[market_id]
        taken = {s.port for s in self.slots.values()} | self.reserved_ports
        port = max(taken) + 1
        while port in taken or not _port_free(self.host, port):
            port += 1
            if port > 65_535:
                raise MarketRefused(market_id, "no_port", "no free port is left for the market")
        slot = self.slots[market_id] = MarketSlot(market_id, port, CrashRecord(self.policy))
        log.info("market %d: added to the host on port %d", market_id, port)
        return slot

    def _slot(self, market_id: int) -> MarketSlot:
        slot = self.slots.get(market_id)
        if slot is None:
            known = ", ".join(str(m) for m in self.slots)
            raise MarketRefused(
                market_id,
                "unknown_market",
                f"this host runs no market {market_id} (it runs {known})",
            )
        return slot

    def _refuse_if_quarantined(self, slot: MarketSlot) -> None:
        now = time.monotonic()
        if slot.state == "quarantined" and slot.record.quarantined(now=now):
            left_ms = max(1, round((slot.record.quarantined_until - now) * 1000))
            raise MarketRefused(
                slot.market_id,
                "quarantined",
                f"market {slot.market_id} crashed more than {slot.record.policy.crash_limit}"
                f" times within {slot.record.policy.crash_window_s:.0f} s and is quarantined;"
                f" try again in {left_ms / 1000:.1f} s",
                retry_after_ms=left_ms,
            )

    def _running_slot(self, market_id: int, pid: int | None) -> MarketSlot:
        """The market's slot, if `pid` (when given) is its current process's."""
        slot = self._slot(market_id)
        if slot.pid is None or slot.state not in ("starting", "ready"):
            raise MarketRefused(market_id, "not_running", f"market {market_id} is {slot.state}")
        if pid is not None and pid != slot.pid:
            raise MarketRefused(
                market_id,
                "stale_process",
                f"pid {pid} is not market {market_id}'s process (pid {slot.pid})",
            )
        return slot

    # Reports

    def market_report(self, market_id: int) -> dict[str, Any]:
        """One market's state as the control API shows it."""
        slot = self._slot(market_id)
        now = time.monotonic()
        age = None if slot.heartbeat_at is None else round((now - slot.heartbeat_at) * 1000)
        report: dict[str, Any] = {
            "market_id": market_id,
            "state": slot.state,
            "health": self.market_health(market_id),
            "pid": slot.pid,
            "port": slot.port,
            "url": self.market_url(market_id),
            "restarts": slot.restarts,
            "last_heartbeat_age_ms": age,
            "last_exit": slot.last_exit,
            "stats": slot.stats,
        }
        if slot.state == "quarantined":
            report["retry_after_ms"] = max(0, round((slot.record.quarantined_until - now) * 1000))
        return report

    def health(self) -> dict[str, Any]:
        """The orchestrator and every market, for `GET /health`."""
        return {
            "orchestrator": {
                "pid": os.getpid(),
                "uptime_ms": round((time.monotonic() - self.started_at) * 1000),
                "control_url": self.control_url,
                "default_market": self.default_market,
            },
            "markets": [self.market_report(m) for m in self.slots],
        }


def _port_free(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True
