"""A crash record doubles the backoff, quarantines a crash loop, and forgets old crashes."""

import pytest

from zones.restarts import CrashRecord, RestartPolicy

POLICY = RestartPolicy(
    backoff_first_s=1.0,
    backoff_max_s=5.0,
    healthy_after_s=30.0,
    crash_limit=3,
    crash_window_s=60.0,
    quarantine_s=20.0,
)


def test_the_backoff_doubles_with_each_crash_up_to_its_ceiling():
    record = CrashRecord(RestartPolicy(backoff_first_s=1.0, backoff_max_s=5.0, crash_limit=10))
    delays = [record.crash_note(now=float(t)) for t in range(5)]
    assert delays == [1.0, 2.0, 4.0, 5.0, 5.0]


def test_one_crash_more_than_the_limit_within_the_window_quarantines():
    record = CrashRecord(POLICY)
    assert all(record.crash_note(now=t) is not None for t in (0.0, 1.0, 2.0))
    assert record.crash_note(now=3.0) is None
    assert record.quarantined(now=22.9) and not record.quarantined(now=23.0)
    record.quarantine_end()
    assert not record.crashes and record.backoff_s == 1.0
    assert record.crash_note(now=24.0) == 1.0


def test_crashes_older_than_the_window_do_not_count():
    record = CrashRecord(POLICY)
    for t in (0.0, 1.0, 2.0):
        record.crash_note(now=t)
    assert record.crash_note(now=61.5) is not None  # the crashes at 0 and 1 have left
    assert list(record.crashes) == [2.0, 61.5]


@pytest.mark.parametrize(("up_s", "after"), [(29.9, 4.0), (30.0, 1.0)])
def test_a_process_up_long_enough_starts_its_backoff_over(up_s, after):
    record = CrashRecord(POLICY)
    record.crash_note(now=0.0)
    record.crash_note(now=1.0)
    record.uptime_note(up_s=up_s)
    assert record.backoff_s == after
