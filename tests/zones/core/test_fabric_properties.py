"""The fabric's promises on an unreliable network, and the bugs they catch.

Each property runs the crowd over a network that drops 1 message in 5, delays
by 1–4 ticks (so reorders) and duplicates, with zone crashes. Each control
plants one bug and asserts that the same check catches it, so the check cannot
pass vacuously.

Every run also checks that zones forget the transfer decisions no intent can need
any more (decisions.py): once the network is quiet, no zone holds one older than
a few seconds about an entity nobody has in flight to it.
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from zones.core import migration, step
from zones.core.decisions import Decisions, Report
from zones.core.state import Status

from .fabric_run import Run, run_fabric

# Shrinking a whole simulation takes minutes and the failing run is printed
# either way, so properties generate and report without shrinking.
PROPERTY = settings(
    max_examples=12,
    deadline=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,
)
CONTROL = settings(
    max_examples=12,
    deadline=None,
    phases=[Phase.generate],
    suppress_health_check=[HealthCheck.too_slow],
    database=None,
)


@st.composite
def runs(draw, with_crashes=True, **overrides):
    zones = draw(st.integers(2, 4))
    crashes = {}
    if with_crashes:
        for _ in range(draw(st.integers(0, 2))):
            crashes[draw(st.integers(50, 450))] = (
                draw(st.integers(0, zones - 1)),
                draw(st.integers(1, 40)),
            )
    base = {
        "seed": draw(st.integers(0, 2**31)),
        "zones": zones,
        "walkers": draw(st.integers(60, 320)),
        "crashes": crashes,
    }
    base.update(overrides)
    return Run(**base)


def expect_caught(check, symptom):
    """A control: the planted bug must make `check` fail, with `symptom`, for some run."""
    with pytest.raises(AssertionError, match=symptom):
        check()


# --- the properties -----------------------------------------------------------


@PROPERTY
@given(runs())
def test_every_entity_has_exactly_one_owner_at_every_tick_despite_loss_and_crashes(run):
    report = run_fabric(run)
    assert not report.problems, report.problems[:5]
    assert report.migrations > 0  # the run really moved entities between zones
    assert report.forgotten > 0  # ... and its zones forgot decisions on the way


@PROPERTY
@given(runs(with_crashes=False, capacity=54, spawn_cap=50, walkers=240))
def test_no_zone_exceeds_capacity_when_migrants_outnumber_free_slots(run):
    report = run_fabric(run)
    assert not report.problems, report.problems[:5]
    assert report.nacks > 0  # full targets really answered nack
    assert report.peak_live <= 54


@PROPERTY
@given(runs(with_crashes=False, extra_spawns=15, walkers=60))
def test_spawns_stop_at_the_spawn_cap(run):
    report = run_fabric(run)
    assert not report.problems, report.problems[:5]


def test_a_quiet_network_settles_to_one_record_per_entity():
    report = run_fabric(Run(seed=7, ticks=800, crashes={300: (1, 30), 600: (0, 5)}))
    assert not report.problems and report.leftovers == 0
    assert report.migrations > 100
    assert report.remembered == 0 and report.forgotten > 100


# --- the controls: each plants a bug the properties must catch ------------------


def test_control_taking_the_entity_back_on_timeout_leaves_two_owners(monkeypatch):
    """The original server's behaviour: on timeout the source simply resumes ownership."""

    def take_back(state, budget, outbox, events):
        due = np.flatnonzero((state.status == Status.STAGING) & (state.deadline <= state.tick))
        state.status[due] = Status.OWNED
        return 0

    monkeypatch.setattr(migration, "retransmit_due", take_back)
    expect_caught(
        test_every_entity_has_exactly_one_owner_at_every_tick_despite_loss_and_crashes,
        "stale OWNED|two owners",
    )


def test_control_ignoring_the_epoch_of_a_nack_leaves_two_owners(monkeypatch):
    """Acting on any answer, whatever transfer it was for, lets stale nacks undo handoffs."""

    def any_epoch(state, slots, epochs, peers):
        held = slots >= 0
        safe = np.where(held, slots, 0)
        return held & (state.status[safe] == Status.STAGING)

    monkeypatch.setattr(migration, "is_current_answer", any_epoch)
    original = migration.handle_intents

    def forgetful_target(state, params, rows, srcs, outbox, events):
        state.decisions = Decisions()  # and a target that forgets it said no
        return original(state, params, rows, srcs, outbox, events)

    monkeypatch.setattr(migration, "handle_intents", forgetful_target)
    expect_caught(
        test_no_zone_exceeds_capacity_when_migrants_outnumber_free_slots, "stale OWNED|two owners"
    )


def test_control_hard_cutover_loses_entities(monkeypatch):
    """Releasing at send time, before any ack, loses every entity whose intent is dropped."""
    original = migration.start_migrations

    def release_on_send(state, assigned, budget, outbox, events):
        sent = original(state, assigned, budget, outbox, events)
        state.status[state.status == Status.STAGING] = Status.FREE
        state.membership_changed()
        return sent

    monkeypatch.setattr(migration, "start_migrations", release_on_send)
    expect_caught(
        test_every_entity_has_exactly_one_owner_at_every_tick_despite_loss_and_crashes, "no owner"
    )


def test_control_short_hysteresis_is_caught(monkeypatch):
    monkeypatch.setattr(migration, "HYSTERESIS_TICKS", 40)
    expect_caught(
        test_every_entity_has_exactly_one_owner_at_every_tick_despite_loss_and_crashes,
        "ticks outside",
    )


def test_control_admitting_beyond_capacity_is_caught(monkeypatch):
    monkeypatch.setattr(
        migration, "inbound_quota", lambda live, requested, admitted, **kw: requested
    )
    expect_caught(test_no_zone_exceeds_capacity_when_migrants_outnumber_free_slots, "> capacity")


def test_control_ignoring_the_spawn_cap_is_caught(monkeypatch):
    monkeypatch.setattr(
        step, "spawn_quota", lambda live, requested, **kw: min(requested, 120 - live)
    )
    expect_caught(test_spawns_stop_at_the_spawn_cap, "cap 90")


def test_control_sending_before_the_snapshot_is_written_duplicates_entities():
    """A worker that sends, then crashes before persisting, comes back with a stale past."""
    crashes = {t: (t % 3, 3) for t in range(40, 480, 9)}
    reports = [run_fabric(Run(seed=s, crashes=crashes, write_ahead=False)) for s in range(3)]
    assert any(
        "stale OWNED" in p or "two owners" in p or "no owner" in p
        for r in reports
        for p in r.problems
    )
    # the same crash schedule with write-ahead snapshots keeps every promise
    assert not run_fabric(Run(seed=0, crashes=crashes)).problems


def test_control_a_zone_that_never_forgets_is_caught(monkeypatch):
    """The table that grows for ever: every decision kept, needed or not."""
    monkeypatch.setattr(Decisions, "forget", lambda self, peers: 0)
    report = run_fabric(Run(seed=7))
    assert any("remembered after the network went quiet" in p for p in report.problems)


def test_control_forgetting_what_a_zone_still_has_in_flight_leaves_two_owners(monkeypatch):
    """Forgetting on a report that names the entity: its source is still waiting for the
    answer, and gets another."""
    monkeypatch.setattr(Report, "names", lambda self: frozenset())
    reports = [run_fabric(Run(seed=seed)) for seed in (7, 14)]
    assert any("stale OWNED" in p or "two owners" in p for r in reports for p in r.problems)


def test_control_forgetting_on_reports_older_than_the_decision_leaves_two_owners(monkeypatch):
    """Forgetting on reports made before the decision: they say nothing of the intent it
    answered, whose source may be waiting still."""
    record = Decisions.record
    monkeypatch.setattr(
        Decisions, "record", lambda self, ident, d, a, at: record(self, ident, d, a, 0)
    )
    runs = [Run(seed=14), Run(seed=2, capacity=54, spawn_cap=50, walkers=240)]
    reports = [run_fabric(run) for run in runs]
    assert any("stale OWNED" in p or "two owners" in p for r in reports for p in r.problems)
