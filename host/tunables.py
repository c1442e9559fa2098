"""The host's tunables, each read from the environment with a default.

Every value is a whole number of milliseconds or a count. A value that is not a whole
number, or is out of its range, stops the host at start with a message naming the
variable, rather than running with a setting nobody asked for.
"""

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields


class TunableError(ValueError):
    """An environment variable holds a value the host cannot use."""


# (environment variable, default, least allowed, most allowed)
_SPECS: dict[str, tuple[str, int, int, int]] = {
    "checkpoint_ms": ("FABRIC_HOST_CHECKPOINT_MS", 300_000, 1_000, 86_400_000),
    "transfer_token_ttl_ms": ("FABRIC_HOST_TRANSFER_TOKEN_TTL_MS", 10_000, 1_000, 300_000),
    "join_ticket_ttl_ms": ("FABRIC_HOST_JOIN_TICKET_TTL_MS", 10_000, 1_000, 300_000),
    "heartbeat_ms": ("FABRIC_HOST_HEARTBEAT_MS", 5_000, 100, 600_000),
    "heartbeat_timeout_ms": ("FABRIC_HOST_HEARTBEAT_TIMEOUT_MS", 15_000, 300, 3_600_000),
    "snapshot_push_ms": ("FABRIC_HOST_SNAPSHOT_PUSH_MS", 10_000, 100, 3_600_000),
    "restart_window_ms": ("FABRIC_HOST_RESTART_WINDOW_MS", 60_000, 1_000, 3_600_000),
    "restart_max_in_window": ("FABRIC_HOST_RESTART_MAX_IN_WINDOW", 3, 1, 100),
    "quarantine_ms": ("FABRIC_HOST_QUARANTINE_MS", 60_000, 0, 3_600_000),
    "control_port": ("FABRIC_HOST_CONTROL_PORT", 9100, 1, 65_535),
}


@dataclass(frozen=True)
class Tunables:
    """The host's timings and limits; `from_environment` reads them."""

    checkpoint_ms: int = 300_000  # non-critical state may roll back this far after a crash
    transfer_token_ttl_ms: int = 10_000  # a transfer token is good this long, and once
    join_ticket_ttl_ms: int = 10_000
    heartbeat_ms: int = 5_000  # a market process reports this often
    heartbeat_timeout_ms: int = 15_000  # silent this long: the market is unhealthy
    snapshot_push_ms: int = 10_000  # a market sends its state to the orchestrator this often
    restart_window_ms: int = 60_000
    restart_max_in_window: int = 3  # more crashes than this in the window: quarantine
    quarantine_ms: int = 60_000  # a quarantined market refuses joins and transfers this long
    control_port: int = 9100

    @classmethod
    def from_environment(cls, env: Mapping[str, str] | None = None) -> "Tunables":
        """The tunables, each from its `FABRIC_HOST_*` variable when set."""
        env = os.environ if env is None else env
        values: dict[str, int] = {}
        for name, (variable, default, least, most) in _SPECS.items():
            raw = env.get(variable, "").strip()
            if not raw:
                values[name] = default
                continue
            try:
                value = int(raw)
            except ValueError:
                raise TunableError(f"{variable} must be a whole number, got {raw!r}") from None
            if not least <= value <= most:
                raise TunableError(f"{variable} must be {least}..{most}, got {value}")
            values[name] = value
        if values["heartbeat_timeout_ms"] <= values["heartbeat_ms"]:
            raise TunableError(
                "FABRIC_HOST_HEARTBEAT_TIMEOUT_MS must be longer than FABRIC_HOST_HEARTBEAT_MS"
                f" ({values['heartbeat_timeout_ms']} <= {values['heartbeat_ms']})"
            )
        return cls(**values)


def tunable_variables() -> list[tuple[str, str, int]]:
    """(field, environment variable, default) for every tunable, for docs and `--help`."""
    by_field = {f.name: f for f in fields(Tunables)}
    return [(name, spec[0], spec[1]) for name, spec in _SPECS.items() if name in by_field]
