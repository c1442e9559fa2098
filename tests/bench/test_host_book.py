"""bench/host_book.py: a store filled through the book's operations, recovered whole."""

from bench.host_book import store_fill, store_recover_timed
from host.persistence import game_store_open
from host.transfers import EVENT_KIND

# requested, token_issued, destination_accepted, source_released, completed
EVENTS_PER_TRANSFER = 5


def test_a_filled_store_holds_every_commit_point_of_every_transfer(tmp_path) -> None:
    ids = store_fill(data_dir=tmp_path, transfers=12)
    store = game_store_open(url=None, data_dir=tmp_path)
    try:
        events = store.critical_events(kind=EVENT_KIND)
    finally:
        store.close()
    assert len(set(ids)) == 12
    for transfer_id in ids:
        states = [e.payload["state"] for e in events if e.payload["transfer_id"] == transfer_id]
        assert states[-1] == "completed" and len(states) == EVENTS_PER_TRANSFER


def test_the_timed_recovery_brings_back_every_transfer_completed(tmp_path) -> None:
    # store_recover_timed raises unless every transfer it wrote comes back completed
    figures = store_recover_timed(transfers=30, workdir=tmp_path)
    assert (figures.transfers, figures.events) == (30, 30 * EVENTS_PER_TRANSFER)
    assert len(figures.recover_ms) == 3 and all(ms > 0 for ms in figures.recover_ms)
