"""Restart backoff and crash-loop quarantine, for anything that supervises processes.

A supervised process that exits on its own is restarted after a backoff that doubles
with each crash in a row, up to a ceiling, and goes back to the first step once the
process has stayed up long enough to count as healthy. More crashes than the limit
within the window mean a crash loop: the process is quarantined (not restarted) for a
while, so that it stops costing the machine and the people waiting on it get a clear
answer instead of a flapping one. The zone-worker supervisor (zones/supervisor.py) and
the host's orchestrator (host/orchestrator.py) both keep one `CrashRecord` per process.
Standard library only.
"""

from collections import deque
from dataclasses import dataclass, field


@dataclass(frozen=True)
class RestartPolicy:
    """How quickly to restart, and when a crash loop is quarantined and for how long."""

    backoff_first_s: float = 0.5
    backoff_max_s: float = 10.0
    healthy_after_s: float = 60.0  # up this long: the backoff starts again from the first step
    crash_limit: int = 3  # more crashes than this within the window: quarantine
    crash_window_s: float = 60.0
    quarantine_s: float = 60.0


@dataclass
class CrashRecord:
    """One process's recent crashes, its next backoff and its quarantine, if any."""

    policy: RestartPolicy
    crashes: deque[float] = field(default_factory=deque)
    backoff_s: float = -1.0  # set from the policy when created
    quarantined_until: float = 0.0

    def __post_init__(self) -> None:
        if self.backoff_s < 0:
            self.backoff_s = self.policy.backoff_first_s

    def crash_note(self, *, now: float) -> float | None:
        """Count a crash at `now`: the delay before restarting, or None when quarantined."""
        self.crashes.append(now)
        while self.crashes and now - self.crashes[0] > self.policy.crash_window_s:
            self.crashes.popleft()
        if len(self.crashes) > self.policy.crash_limit:
            self.quarantined_until = now + self.policy.quarantine_s
            return None
        delay = self.backoff_s
        self.backoff_s = min(self.backoff_s * 2, self.policy.backoff_max_s)
        return delay

    def quarantined(self, *, now: float) -> bool:
        """Whether a quarantine is still running at `now`."""
        return now < self.quarantined_until

    def quarantine_end(self) -> None:
        """The quarantine is over: a clean slate, as if the process had never crashed."""
        self.crashes.clear()
        self.backoff_s = self.policy.backoff_first_s
        self.quarantined_until = 0.0

    def uptime_note(self, *, up_s: float) -> None:
        """The process has been up `up_s`: long enough, and its backoff starts over."""
        if up_s >= self.policy.healthy_after_s:
            self.backoff_s = self.policy.backoff_first_s
