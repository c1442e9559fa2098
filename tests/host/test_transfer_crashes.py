"""Kill the source, the destination or the orchestrator at every step of a transfer.

Each run is a deterministic world (tests/host/transfer_sim.py): the book over a durable
log, three markets each with its characters and its own snapshot, and a visitor. The
observer checks after every step that at most one market simulates the character (the
one the durable log names) with its state unchanged, and when the run settles that
exactly one does and that no commit point a caller was told of is missing from the log.
"""

from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from host.persistence import game_store_open
from tests.host.transfer_sim import (
    CARRIED,
    CHARACTER,
    DEFAULT,
    DESTINATION,
    ORCHESTRATOR,
    PROCESSES,
    SOURCE,
    Kill,
    Violation,
    World,
)

STEP_HORIZON = 80  # beyond the steps of the slowest single-kill run, retries included
SHORT, LONG = 2, 25  # restart after 1 s, or after 12.5 s: past the 10 s token
COMMIT_POINTS = (
    "requested",
    "token_issued",
    "destination_accepted",
    "source_released",
    "completed",
)


def _outcome(world: World) -> str:
    transfer = list(world.book._transfers.values())[-1]
    if transfer.state == "aborted":
        return f"aborted to {transfer.fallback}"
    return transfer.state


def _single_kills(*, bugs: frozenset[str] = frozenset()) -> tuple[list[World], list[str]]:
    """Every (process, step, restart delay) kill: the worlds that settled, the violations."""
    settled, caught = [], []
    for process in PROCESSES:
        for step in range(1, STEP_HORIZON + 1):
            for delay in (SHORT, LONG):
                world = World(kills=(Kill(process, step, delay),), bugs=bugs)
                try:
                    settled.append(world.run())
                except Violation as violation:
                    caught.append(f"{process}@{step}+{delay}: {violation}")
    return settled, caught


def test_without_crashes_the_character_arrives_with_what_it_carries() -> None:
    world = World().run()
    assert _outcome(world) == "completed"
    assert world.markets[DESTINATION].active == {CHARACTER: CARRIED}
    assert world.markets[SOURCE].active == world.markets[DEFAULT].active == {}
    assert world.visitor.admitted


def test_a_kill_of_any_process_at_any_step_leaves_one_holder_and_loses_nothing() -> None:
    settled, caught = _single_kills()
    assert caught == []
    sites = {site for world in settled for site in world.kill_sites}
    # Every commit point was crashed on both sides of its record, the orchestrator
    # between recording and answering included, and every market at its own steps.
    for state in COMMIT_POINTS:
        assert (ORCHESTRATOR, f"before recording {state}") in sites
        assert (ORCHESTRATOR, f"after recording {state}") in sites
    for process in ("source", "destination"):
        assert {(process, "call sent"), (process, "call answered")} <= sites
    assert (ORCHESTRATOR, "call answered") in sites
    assert ("source", "stopped simulating") in sites
    assert ("destination", "activated") in sites
    outcomes = Counter(_outcome(world) for world in settled)
    assert {"completed", f"aborted to {SOURCE}", f"aborted to {DEFAULT}"} <= set(outcomes)


def test_a_kill_of_the_orchestrator_at_every_step_of_an_abort_loses_nothing() -> None:
    # The destination is down past the token's life, so the transfer aborts.
    sites = set()
    for step in range(1, STEP_HORIZON + 1):
        kills = (Kill("destination", 7, LONG), Kill(ORCHESTRATOR, step, SHORT))
        world = World(kills=kills).run()
        sites.update(world.kill_sites)
        assert _outcome(world) in ("completed", f"aborted to {SOURCE}")
    assert (ORCHESTRATOR, "before recording aborted") in sites
    assert (ORCHESTRATOR, "after recording aborted") in sites


@settings(max_examples=250, derandomize=True)
@given(
    st.lists(
        st.builds(
            Kill,
            process=st.sampled_from(PROCESSES),
            at_step=st.integers(1, STEP_HORIZON),
            restart_ticks=st.integers(1, 30),
        ),
        min_size=1,
        max_size=5,
    )
)
def test_random_kills_of_several_processes_leave_one_holder(kills: list[Kill]) -> None:
    world = World(kills=tuple(kills)).run()
    holders = [m.market_id for m in world.markets.values() if CHARACTER in m.active]
    assert holders == [world.book.authority(character_id=CHARACTER)]


def test_control_a_destination_activating_on_accept_is_caught() -> None:
    with pytest.raises(Violation, match=r"character in \['source', 'destination'\] at once"):
        World(bugs=frozenset({"activate_on_accept"})).run()


def test_control_a_book_answering_before_recording_lets_a_replay_through() -> None:
    settled, caught = _single_kills(bugs=frozenset({"answer_before_record"}))
    replays = [c for c in caught if "a token was accepted twice" in c]
    assert replays, "the orchestrator crash after the early yes never let a replay in"
    assert all(c.startswith(f"{ORCHESTRATOR}@") for c in caught)
    assert any("acknowledged yet not recorded" in c and "destination_accepted" in c for c in caught)
    assert settled  # without a crash in the gap the early yes goes unseen


def test_control_a_request_that_loses_what_the_visitor_carries_is_caught() -> None:
    with pytest.raises(Violation, match="accepted with state"):
        World(bugs=frozenset({"request_drops_carried"})).run()


def test_control_a_source_restoring_without_asking_the_book_is_caught() -> None:
    _, caught = _single_kills(bugs=frozenset({"restore_blind"}))
    assert any("character in ['source', 'destination'] at once" in c for c in caught)


def test_kills_of_the_orchestrator_over_the_sqlite_store_lose_nothing(tmp_path: Path) -> None:
    def reopen(store):
        store.close()  # the crashed process's file lock goes with it
        return game_store_open(url=None, data_dir=store_dir)

    for step in range(1, 40):
        store_dir = tmp_path / f"run{step}"
        store = game_store_open(url=None, data_dir=store_dir)
        world = World(kills=(Kill(ORCHESTRATOR, step, SHORT),), disk=store, disk_reopen=reopen)
        try:
            world.run()
        finally:
            world.disk.close()
