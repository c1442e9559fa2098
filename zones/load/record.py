"""What a load run records, second by second and per visitor: the input of the report.

Counters are per second (not cumulative) unless a field says otherwise; frame ages
are kept whole, so the report's percentiles are exact.
"""

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from zones.client.visitor import VisitorStats


@dataclass
class ScenarioSecond(VisitorStats):
    """What one scenario's visitors received during one second (summed), and how many
    of them were connected; `latencies_ms` holds every frame's age."""

    connected: int = 0

    def ages(self) -> np.ndarray:
        """The frame ages in ms, as an array (a view, no copy)."""
        return np.frombuffer(self.latencies_ms, np.float64)


@dataclass
class ZoneSecond:
    """One zone during one second, from the market summary and the harness's visitors."""

    entities: int  # authority slots in use, the peak of the second's summaries
    in_flight: int
    capacity: int
    visitors: int  # harness visitors whose own row this zone holds
    health: str
    tick_p99_ms: float | None = None
    subscribers: int | None = None  # gateways and band neighbours taking its rows
    booth: int | None = None  # the booth it serves; -1: a spare serving nothing


@dataclass
class Second:
    """Everything sampled at the end of one second of the run."""

    t_s: float  # since the first join was attempted
    steady: bool  # after the ramp-up, while the scenarios run
    scenarios: dict[str, ScenarioSecond]
    zones: dict[int, ZoneSecond]
    overruns: int  # cumulative since the run started, every zone worker
    cpu_s: dict[str, float | None]  # cumulative CPU seconds: harness, server, redis, machine
    loop_lag_ms: float  # the harness's event loop: its worst late wake-up in the second

    @property
    def connected(self) -> int:
        return sum(s.connected for s in self.scenarios.values())


@dataclass
class VisitorOutcome:
    """One visitor's run."""

    scenario: str
    joined: bool
    join_error: str = ""
    join_ms: float | None = None  # join request (ticket) to welcome, retries included
    close_code: int | None = None  # the server closed the socket during the run
    left_cleanly: bool = True  # its `leave` at the end was answered with 1000
    error_codes: list[str] = field(default_factory=list)  # error frames received
    bad_frames: int = 0
    zone_changes: int = 0
    handoff_ms: list[float] = field(default_factory=list)  # booth_entered → zone_changed
    steady_frames: int = 0
    steady_bytes: int = 0


@dataclass
class MigrationSample:
    """One zone's migration figures in one summary window."""

    t_s: float
    zone: int
    per_s: float
    count: int | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None


@dataclass
class RunRecord:
    """A whole run: its settings, its seconds, its visitors and the server's windows."""

    settings: dict[str, Any]
    booths: int
    started_at: str  # ISO 8601, wall clock
    steady_s: float  # length of the measured window after the ramp-up
    seconds: list[Second]
    visitors: list[VisitorOutcome]
    cpu_start_s: dict[str, float | None] = field(default_factory=dict)  # readings at t = 0
    migrations: list[MigrationSample] = field(default_factory=list)
    degraded_windows: dict[int, int] = field(default_factory=dict)
    health_windows: dict[str, int] = field(default_factory=dict)  # summaries per health state
    summary_messages: int = 0
    summary_error: str = ""
    server: dict[str, Any] = field(default_factory=dict)
    # joins made while the run's visitors were all live: request to welcome, ms; failures
    live_join_ms: list[float] = field(default_factory=list)
    live_join_errors: list[str] = field(default_factory=list)
    # with contributor agents: the dispatcher's `stats` answers (seconds since the start,
    # answer), and the contributors' settings and own counts
    decisions: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    contributors: dict[str, Any] | None = None
    # splits and merges of the zones: (seconds since the start, the ops event)
    repartitions: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
