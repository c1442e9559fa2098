"""What keeps a zone from ticking or persisting, as its worker reports it.

Writing a snapshot or the input log can fail while the process lives on: a full
disk, or no file descriptor left because something else holds them all (then
even a step can fail, where a library imports a module lazily). A zone worker
never lets that end the process (zones/worker.py says what the zone does
meanwhile); it counts each failure here, logs it without repeating itself every
tick, and reports the zone `degraded` with the reason in its summary until the
same kind of operation works again.
"""

import logging

from zones.logthrottle import LogThrottle

log = logging.getLogger(__name__)
_lines = LogThrottle(log)


class ZoneFaults:
    """The failures of one zone: how many so far, and what is failing now."""

    def __init__(self, zone: int) -> None:
        self.zone = zone
        self.failures = 0
        # "tick", "input log write", "snapshot write" → the last error, while it lasts
        self.failing: dict[str, str] = {}

    def failed(self, what: str, error: OSError, consequence: str) -> None:
        """`what` failed with `error`; `consequence` says what the zone does now."""
        self.failures += 1
        self.failing[what] = f"{what} fails: {error.strerror or error}"
        _lines.error(
            f"zone {self.zone} {what}",
            "zone %d: %s failed (%s); %s",
            self.zone,
            what,
            error,
            consequence,
        )

    def worked(self, what: str) -> None:
        """`what` succeeded: that fault, if there was one, is over."""
        if self.failing.pop(what, None) is not None:
            _lines.clear(f"zone {self.zone} {what}", "zone %d: %s works again", self.zone, what)

    @property
    def reason(self) -> str:
        """What is failing now, for the zone's health; empty when all is well."""
        return "; ".join(self.failing.values())
