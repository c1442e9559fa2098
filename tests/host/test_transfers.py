import threading
from pathlib import Path

import pytest

from host.commitlog import CommitLog
from host.persistence import game_store_open
from host.tokens import TransferRefused, visitor_key_hash
from host.transfers import Holding, TransferBook, transfer_recover
from tests.host.transfer_sim import MemoryCommitLog

SECRET = b"k" * 32
TTL = 10_000
SOURCE, DESTINATION, DEFAULT = 1, 2, 9
INSTANCE = 20
CARRIED = {"name": "Ada", "colour": "#ff8800", "carries": [{"item": 5, "count": 2}]}
KEY = visitor_key_hash(key="session-ada")


def _book(log: CommitLog, health: dict[int, str] | None = None) -> TransferBook:
    health = {} if health is None else health
    return TransferBook(
        commit_log=log,
        market_health=lambda market: health.get(market, "healthy"),
        default_market=DEFAULT,
        secret=SECRET,
        token_ttl_ms=TTL,
    )


def _recover(log: CommitLog, health: dict[int, str] | None = None) -> TransferBook:
    health = {} if health is None else health
    return transfer_recover(
        commit_log=log,
        market_health=lambda market: health.get(market, "healthy"),
        default_market=DEFAULT,
        secret=SECRET,
        token_ttl_ms=TTL,
    )


def _request(book: TransferBook, *, now_ms: int = 1_000, character_id: int = 7):
    return book.transfer_request(
        character_id=character_id,
        key_hash=KEY,
        source=SOURCE,
        destination=DESTINATION,
        instance_id=INSTANCE,
        character_state=CARRIED,
        now_ms=now_ms,
    )


def _accept(book: TransferBook, token: str, *, now_ms: int = 2_000):
    return book.transfer_accept(
        token=token, destination=DESTINATION, instance_id=INSTANCE, now_ms=now_ms
    )


def _states(log: MemoryCommitLog, transfer_id: str) -> list[str]:
    return [e.payload["state"] for e in log.events if e.payload["transfer_id"] == transfer_id]


def _reason(call) -> str:
    with pytest.raises(TransferRefused) as caught:
        call()
    return caught.value.reason


def test_the_happy_path_records_each_commit_point_in_order() -> None:
    log = MemoryCommitLog()
    book = _book(log)
    transfer_id, token = _request(book)
    assert book.authority(character_id=7) == SOURCE
    assert _accept(book, token) == CARRIED
    assert book.authority(character_id=7) == SOURCE  # the destination waits for the release
    book.transfer_release(transfer_id=transfer_id, source=SOURCE, now_ms=2_500)
    assert book.authority(character_id=7) == DESTINATION
    book.transfer_complete(transfer_id=transfer_id, now_ms=3_000)
    assert _states(log, transfer_id) == [
        "requested",
        "token_issued",
        "destination_accepted",
        "source_released",
        "completed",
    ]
    assert {e.event_id for e in log.events} == {
        f"{transfer_id}:{s}" for s in _states(log, transfer_id)
    }
    assert all(e.kind == "transfer" and e.instance_id == INSTANCE for e in log.events)
    assert book.characters_held(market_id=DESTINATION) == {7: Holding(CARRIED, 3_000)}
    assert book.characters_held(market_id=SOURCE) == {}


def test_each_commit_point_is_recorded_before_the_book_answers() -> None:
    class FailingLog(MemoryCommitLog):
        def critical_record(self, **event):
            raise OSError("disk full")

    book = _book(FailingLog())
    with pytest.raises(OSError):
        _request(book)
    assert book.authority(character_id=7) is None
    log = MemoryCommitLog()
    book = _book(log)
    transfer_id, token = _request(book)
    book.commit_log = FailingLog()
    with pytest.raises(OSError):
        _accept(book, token)
    assert book.transfer_get(transfer_id=transfer_id).state == "token_issued"


def test_the_state_carried_is_a_copy_the_caller_cannot_change() -> None:
    book = _book(MemoryCommitLog())
    carried = {"carries": [1]}
    transfer_id, token = book.transfer_request(
        character_id=3,
        key_hash=KEY,
        source=SOURCE,
        destination=DESTINATION,
        instance_id=INSTANCE,
        character_state=carried,
        now_ms=0,
    )
    carried["carries"].append(2)
    spawned = _accept(book, token, now_ms=1)
    assert spawned == {"carries": [1]}
    spawned["carries"].append(3)
    assert book.transfer_get(transfer_id=transfer_id).character_state == {"carries": [1]}


def test_a_replayed_token_is_refused() -> None:
    book = _book(MemoryCommitLog())
    _, token = _request(book)
    _accept(book, token)
    assert _reason(lambda: _accept(book, token, now_ms=2_001)) == "replayed"


def test_a_replayed_token_is_refused_after_the_orchestrator_restarts() -> None:
    log = MemoryCommitLog()
    _, token = _request(_book(log))
    _accept(_recover(log), token)
    assert _reason(lambda: _accept(_recover(log), token, now_ms=2_001)) == "replayed"


def test_recover_rebuilds_the_book_from_the_events_alone() -> None:
    log = MemoryCommitLog()
    book = _book(log)
    done_id, token = _request(book, character_id=7)
    _accept(book, token)
    book.transfer_release(transfer_id=done_id, source=SOURCE, now_ms=2_500)
    open_id, _ = _request(book, character_id=8, now_ms=3_000)
    recovered = _recover(log)
    for transfer_id in (done_id, open_id):
        assert recovered.transfer_get(transfer_id=transfer_id) == book.transfer_get(
            transfer_id=transfer_id
        )
    assert recovered.authority(character_id=7) == DESTINATION
    assert recovered.authority(character_id=8) == SOURCE


def test_a_request_asked_again_gets_the_same_transfer_and_token() -> None:
    log = MemoryCommitLog()
    first = _request(_book(log))
    assert _request(_recover(log), now_ms=1_500) == first
    assert len(log.events) == 2


def test_a_token_expired_before_acceptance_aborts_back_to_the_healthy_source() -> None:
    book = _book(MemoryCommitLog())
    transfer_id, token = _request(book, now_ms=1_000)
    assert book.transfers_expire(now_ms=10_999) == {}
    assert book.transfers_expire(now_ms=11_000) == {transfer_id: SOURCE}
    transfer = book.transfer_get(transfer_id=transfer_id)
    assert (transfer.state, transfer.abort_reason, transfer.fallback) == (
        "aborted",
        "expired",
        SOURCE,
    )
    assert book.authority(character_id=7) == SOURCE
    assert _reason(lambda: _accept(book, token, now_ms=11_000)) == "expired"


def test_a_released_transfer_whose_visitor_never_arrives_completes_in_time() -> None:
    book = _book(MemoryCommitLog())
    transfer_id, token = _request(book, now_ms=1_000)
    _accept(book, token)
    book.transfer_release(transfer_id=transfer_id, source=SOURCE, now_ms=1_200)
    assert book.transfers_expire(now_ms=30_999) == {}
    assert book.transfer_get(transfer_id=transfer_id).state == "source_released"
    assert book.transfers_expire(now_ms=31_000) == {}
    assert book.transfer_get(transfer_id=transfer_id).state == "completed"
    assert book.authority(character_id=7) == DESTINATION
    # its next transfer is not refused as in_transfer
    back, _ = book.transfer_request(
        character_id=7,
        key_hash=KEY,
        source=DESTINATION,
        destination=SOURCE,
        instance_id=INSTANCE,
        character_state=CARRIED,
        now_ms=31_001,
    )
    assert back != transfer_id


def test_an_accepted_transfer_whose_release_never_comes_is_aborted() -> None:
    health: dict[int, str] = {}
    book = _book(MemoryCommitLog(), health)
    transfer_id, token = _request(book, now_ms=1_000)
    _accept(book, token)
    assert book.transfers_expire(now_ms=20_999) == {}
    health[SOURCE] = "down"
    assert book.transfers_expire(now_ms=21_000) == {transfer_id: DEFAULT}
    assert book.transfer_get(transfer_id=transfer_id).abort_reason == "release_timeout"
    assert (
        _reason(
            lambda: book.transfer_release(transfer_id=transfer_id, source=SOURCE, now_ms=21_001)
        )
        == "aborted"
    )


def test_the_fallback_is_the_default_market_when_the_source_is_down() -> None:
    health: dict[int, str] = {}
    book = _book(MemoryCommitLog(), health)
    transfer_id, token = _request(book)
    health[SOURCE] = "down"
    assert (
        book.transfer_abort(transfer_id=transfer_id, reason="source lost", now_ms=3_000) == DEFAULT
    )
    assert book.authority(character_id=7) == DEFAULT
    assert book.characters_held(market_id=DEFAULT) == {7: Holding(CARRIED, 3_000)}
    assert _reason(lambda: _accept(book, token)) == "aborted"
    # Asked again, the abort keeps its first answer even though the source is back.
    health[SOURCE] = "healthy"
    assert book.transfer_abort(transfer_id=transfer_id, reason="again", now_ms=3_100) == DEFAULT


def test_a_quarantined_or_stopped_destination_refuses_the_request() -> None:
    log = MemoryCommitLog()
    book = _book(log, {DESTINATION: "quarantined"})
    assert _reason(lambda: _request(book)) == "destination_quarantined"
    book = _book(log, {DESTINATION: "down"})
    assert _reason(lambda: _request(book)) == "destination_unavailable"
    assert log.events == []


def test_a_character_in_transfer_cannot_start_another() -> None:
    book = _book(MemoryCommitLog())
    _, token = _request(book)
    _accept(book, token)
    assert _reason(lambda: _request(book, now_ms=2_100)) == "in_transfer"


def test_only_the_market_holding_a_character_can_send_it_on() -> None:
    book = _book(MemoryCommitLog())
    transfer_id, token = _request(book)
    _accept(book, token)
    book.transfer_release(transfer_id=transfer_id, source=SOURCE, now_ms=2_500)
    book.transfer_complete(transfer_id=transfer_id, now_ms=2_600)
    # The old source, restarted from a stale snapshot, tries to send the character again.
    assert _reason(lambda: _request(book, now_ms=3_000)) == "wrong_source"


def test_release_and_complete_refuse_what_is_out_of_order() -> None:
    book = _book(MemoryCommitLog())
    transfer_id, token = _request(book)
    release = lambda **k: book.transfer_release(transfer_id=transfer_id, now_ms=2_500, **k)  # noqa: E731
    assert _reason(lambda: release(source=SOURCE)) == "wrong_state"
    assert (
        _reason(lambda: book.transfer_complete(transfer_id=transfer_id, now_ms=2_600))
        == "wrong_state"
    )
    _accept(book, token)
    assert _reason(lambda: release(source=DESTINATION)) == "wrong_source"
    release(source=SOURCE)
    release(source=SOURCE)  # asked again after a lost answer: the same yes
    assert (
        _reason(lambda: book.transfer_abort(transfer_id=transfer_id, reason="late", now_ms=2_700))
        == "wrong_state"
    )
    assert (
        _reason(lambda: book.transfer_complete(transfer_id="nope", now_ms=2_600))
        == "unknown_transfer"
    )


def test_a_market_restarting_from_its_snapshot_keeps_only_what_the_book_allows() -> None:
    book = _book(MemoryCommitLog())
    transfer_id, token = _request(book)
    _accept(book, token)
    book.transfer_release(transfer_id=transfer_id, source=SOURCE, now_ms=2_500)
    stale = {7: Holding(CARRIED, 500), 11: Holding({"name": "Bo"}, 500)}
    # The source's snapshot predates the transfer: 7 moved on, 11 never transferred.
    assert book.market_roster(market_id=SOURCE, snapshot=stale) == {11: {"name": "Bo"}}
    # The destination crashed before its snapshot held 7: the book brings it back.
    assert book.market_roster(market_id=DESTINATION, snapshot={}) == {7: CARRIED}
    # A newer snapshot of the destination wins over the state the transfer carried.
    later = {7: Holding({**CARRIED, "carries": []}, 9_000)}
    assert book.market_roster(market_id=DESTINATION, snapshot=later) == {7: later[7].state}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"character_id": -1}, "character_id must be a whole number >= 0"),
        ({"destination": "2"}, "destination must be a whole number >= 0"),
        ({"destination": SOURCE}, "needs two markets"),
        ({"character_state": [1]}, "character_state must be a dict"),
        ({"character_state": {"x": object()}}, "JSON-serialisable"),
        ({"key_hash": "session-ada"}, "key_hash must be a SHA-256 hex digest"),
    ],
)
def test_a_bad_request_names_what_is_wrong_and_records_nothing(change, message) -> None:
    log = MemoryCommitLog()
    request = {
        "character_id": 7,
        "key_hash": KEY,
        "source": SOURCE,
        "destination": DESTINATION,
        "instance_id": INSTANCE,
        "character_state": CARRIED,
        "now_ms": 0,
        **change,
    }
    with pytest.raises(ValueError, match=message):
        _book(log).transfer_request(**request)
    assert log.events == []


def test_a_book_refuses_bad_settings_and_a_health_it_does_not_know() -> None:
    with pytest.raises(ValueError, match="at least 32 bytes"):
        TransferBook(
            commit_log=MemoryCommitLog(),
            market_health=lambda m: "healthy",
            default_market=DEFAULT,
            secret=b"short",
            token_ttl_ms=TTL,
        )
    with pytest.raises(ValueError, match="token_ttl_ms must be a whole number > 0"):
        TransferBook(
            commit_log=MemoryCommitLog(),
            market_health=lambda m: "healthy",
            default_market=DEFAULT,
            secret=SECRET,
            token_ttl_ms=0,
        )
    book = TransferBook(
        commit_log=MemoryCommitLog(),
        market_health=lambda m: "fine",
        default_market=DEFAULT,
        secret=SECRET,
        token_ttl_ms=TTL,
    )
    with pytest.raises(ValueError, match="gave 'fine', not one of"):
        _request(book)
    with pytest.raises(ValueError, match="an abort needs a reason"):
        _book(MemoryCommitLog()).transfer_abort(transfer_id="x", reason="", now_ms=0)


def test_a_genuine_token_the_book_never_issued_is_unknown() -> None:
    _, token = _request(_book(MemoryCommitLog()))
    assert _reason(lambda: _accept(_book(MemoryCommitLog()), token)) == "unknown_transfer"


def test_a_replay_is_refused_after_a_restart_over_the_sqlite_store(tmp_path: Path) -> None:
    store = game_store_open(url=None, data_dir=tmp_path)
    try:
        transfer_id, token = _request(_book(store))
        assert _accept(_recover(store), token) == CARRIED
    finally:
        store.close()
    store = game_store_open(url=None, data_dir=tmp_path)  # the orchestrator, started again
    try:
        recovered = _recover(store)
        assert recovered.transfer_get(transfer_id=transfer_id).state == "destination_accepted"
        assert _reason(lambda: _accept(recovered, token, now_ms=2_001)) == "replayed"
    finally:
        store.close()


def test_a_token_spent_through_another_book_over_the_same_log_is_refused() -> None:
    # The log is the judge: a book whose memory missed the spending still says no.
    log = MemoryCommitLog()
    _, token = _request(_book(log))
    stale = _recover(log)
    _accept(_recover(log), token)
    assert _reason(lambda: _accept(stale, token, now_ms=2_001)) == "replayed"


def test_concurrent_accepts_of_one_token_give_one_yes() -> None:
    book = _book(MemoryCommitLog())
    _, token = _request(book)
    barrier = threading.Barrier(8)
    answers: list[str] = []

    def accept() -> None:
        barrier.wait(timeout=30)
        try:
            _accept(book, token)
            answers.append("yes")
        except TransferRefused as refused:
            answers.append(refused.reason)

    threads = [threading.Thread(target=accept) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(answers) == ["replayed"] * 7 + ["yes"]


def test_open_transfers_are_listed_for_both_markets_until_they_end() -> None:
    book = _book(MemoryCommitLog())
    transfer_id, token = _request(book)
    assert [t.transfer_id for t in book.transfers_open(market_id=SOURCE)] == [transfer_id]
    assert [t.transfer_id for t in book.transfers_open(market_id=DESTINATION)] == [transfer_id]
    assert book.transfers_open(market_id=DEFAULT) == []
    _accept(book, token)
    book.transfer_release(transfer_id=transfer_id, source=SOURCE, now_ms=2_500)
    book.transfer_complete(transfer_id=transfer_id, now_ms=2_600)
    assert book.transfers_open(market_id=SOURCE) == book.transfers_open(market_id=DESTINATION) == []
