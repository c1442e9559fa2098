"""Log lines that repeat while a fault lasts, at most once per interval each.

A Redis that went away, a disk that refuses writes or a flood of refused
connections makes the same warning true many times a second; logged each time,
it buries everything else (thousands of lines a minute). A `LogThrottle` writes
the first occurrence of each kind at once, then at most one line per interval
saying how many were held back, and one line when the fault is over.
Standard library only: web processes import it before Django is set up.
"""

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

DEFAULT_INTERVAL_S = 10.0


@dataclass
class _Fault:
    """One kind of repeated line: when it was last written and how many were held back."""

    written_at: float
    held_back: int = 0
    total: int = 1


class LogThrottle:
    """Writes each kind of repeated warning at most once per `interval_s`."""

    def __init__(
        self,
        logger: logging.Logger,
        interval_s: float = DEFAULT_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.interval_s = interval_s
        self.clock = clock
        self._faults: dict[str, _Fault] = {}

    def warning(self, kind: str, message: str, *args: object) -> None:
        """Log `message % args` unless a line of this kind went out within the interval."""
        self._log(logging.WARNING, kind, message, args)

    def error(self, kind: str, message: str, *args: object) -> None:
        """As `warning`, at ERROR."""
        self._log(logging.ERROR, kind, message, args)

    def failing(self, kind: str) -> bool:
        """Whether a fault of this kind was reported and has not been cleared."""
        return kind in self._faults

    def clear(self, kind: str, message: str, *args: object) -> None:
        """The fault of this kind is over: say so once (with how often it occurred)."""
        fault = self._faults.pop(kind, None)
        if fault is not None:
            self.logger.info(message + " (after %d occurrences)", *args, fault.total)

    def _log(self, level: int, kind: str, message: str, args: tuple[object, ...]) -> None:
        now = self.clock()
        fault = self._faults.get(kind)
        if fault is None:
            self._faults[kind] = _Fault(written_at=now)
            self.logger.log(level, message, *args)
            return
        fault.total += 1
        if now - fault.written_at < self.interval_s:
            fault.held_back += 1
            return
        held, fault.held_back, fault.written_at = fault.held_back, 0, now
        if held:
            self.logger.log(level, message + " (%d more since the last such line)", *args, held)
        else:
            self.logger.log(level, message, *args)
