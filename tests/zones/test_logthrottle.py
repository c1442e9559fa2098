"""A warning that repeats while a fault lasts is written once per interval, then once at its end."""

import logging

from zones.logthrottle import LogThrottle


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def throttle(caplog) -> tuple[LogThrottle, Clock]:
    caplog.set_level(logging.INFO, logger="test.throttle")
    clock = Clock()
    return LogThrottle(logging.getLogger("test.throttle"), interval_s=10.0, clock=clock), clock


def test_a_repeated_warning_is_written_once_per_interval_with_the_count_held_back(caplog):
    lines, clock = throttle(caplog)
    for step in range(250):  # 25 s of a warning ten times a second
        clock.now = step / 10
        lines.warning("receive", "receive on %s failed", "zone.0")

    written = [r.getMessage() for r in caplog.records]
    assert written == [
        "receive on zone.0 failed",
        "receive on zone.0 failed (99 more since the last such line)",
        "receive on zone.0 failed (99 more since the last such line)",
    ]


def test_each_kind_is_counted_on_its_own(caplog):
    lines, clock = throttle(caplog)
    for _ in range(5):
        lines.warning("zone.0", "receive on %s failed", "zone.0")
        lines.warning("zone.1", "receive on %s failed", "zone.1")

    assert [r.getMessage() for r in caplog.records] == [
        "receive on zone.0 failed",
        "receive on zone.1 failed",
    ]


def test_the_end_of_a_fault_is_said_once_and_the_next_fault_is_written_at_once(caplog):
    lines, clock = throttle(caplog)
    for _ in range(3):
        lines.error("redis", "redis down")
    assert lines.failing("redis")

    lines.clear("redis", "redis back")
    lines.clear("redis", "redis back")  # nothing was failing any more: nothing to say
    clock.now = 1.0
    lines.error("redis", "redis down")

    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("ERROR", "redis down"),
        ("INFO", "redis back (after 3 occurrences)"),
        ("ERROR", "redis down"),
    ]
    assert lines.failing("redis")


def test_a_kind_that_never_failed_is_not_failing(caplog):
    lines, _ = throttle(caplog)
    assert not lines.failing("anything")
