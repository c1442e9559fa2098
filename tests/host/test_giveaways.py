"""Giveaways on SQLite and PostgreSQL: one item per character, none twice, none past N."""

import threading
from pathlib import Path

import pytest

from host.giveaways import (
    Claim,
    GiveawayError,
    GiveawayExhausted,
    GiveawayUnknown,
    claim_event_id,
    giveaway_claim,
    giveaway_claims,
    giveaway_create,
    giveaway_state,
)
from host.persistence import PersistenceError
from tests.host.store_harness import claims_problems, store_place


@pytest.fixture(params=["sqlite", "postgres"])
def place(request, tmp_path: Path):
    with store_place(request, tmp_path) as found:
        yield found


@pytest.fixture
def store(place):
    opened = place.open()
    yield opened
    opened.close()


def create(store, items: int, giveaway_id: str = "lamps") -> bool:
    return giveaway_create(
        store, giveaway_id=giveaway_id, market_id=3, booth="lamp-stall", items=items, at_ms=10
    )


def claim(store, character_id: str, claim_id: str | None = None, giveaway_id: str = "lamps"):
    return giveaway_claim(
        store,
        giveaway_id=giveaway_id,
        character_id=character_id,
        claim_id=claim_id or f"claim-{character_id}",
        at_ms=20,
    )


def test_n_characters_get_n_distinct_items_and_the_next_finds_none(store) -> None:
    create(store, items=5)
    items = [claim(store, f"c{number}").item for number in range(5)]
    assert sorted(items) == [0, 1, 2, 3, 4]
    with pytest.raises(GiveawayExhausted, match="'lamps': all 5 items are claimed"):
        claim(store, "c5")
    state = giveaway_state(store, giveaway_id="lamps")
    assert (state.items, state.claimed, state.remaining) == (5, 5, 0)
    # A holder asking again once all are gone still gets its own item back.
    assert claim(store, "c2", "claim-c2-again").item == items[2]


def test_a_characters_second_claim_returns_its_first_item(store) -> None:
    create(store, items=3)
    first = claim(store, "ada", "claim-1")
    claim(store, "bob")
    again = claim(store, "ada", "claim-2")
    assert again == first
    assert giveaway_state(store, giveaway_id="lamps").claimed == 2
    assert len(store.critical_events(kind="giveaway_claim")) == 2


def test_retrying_a_claim_returns_the_same_answer_after_reopening(place) -> None:
    first_store = place.open()
    create(first_store, items=3)
    claim(first_store, "bob")
    first = claim(first_store, "ada", "claim-9")
    first_store.close()
    second_store = place.open()
    try:
        assert claim(second_store, "ada", "claim-9") == first
        assert giveaway_claims(second_store, giveaway_id="lamps")[1] == first
    finally:
        second_store.close()


def test_a_claim_id_used_by_another_character_is_refused(store) -> None:
    create(store, items=3)
    claim(store, "ada", "claim-1")
    with pytest.raises(GiveawayError, match="was made by character 'ada', not 'bob'"):
        claim(store, "bob", "claim-1")


def test_each_claim_is_a_critical_event_of_the_giveaways_market(store) -> None:
    create(store, items=2)
    made = claim(store, "ada")
    (event,) = store.critical_events(kind="giveaway_claim", instance_id=3)
    assert event.event_id == claim_event_id(giveaway_id="lamps", claim_id="claim-ada")
    assert event.payload == {
        "giveaway_id": "lamps",
        "character_id": "ada",
        "claim_id": "claim-ada",
        "item": made.item,
    }


def test_an_exhausted_claim_records_nothing(store) -> None:
    create(store, items=1)
    claim(store, "ada")
    with pytest.raises(GiveawayExhausted):
        claim(store, "bob")
    assert [c.character_id for c in giveaway_claims(store, giveaway_id="lamps")] == ["ada"]
    assert len(store.critical_events()) == 1


def test_creating_again_is_idempotent_and_another_definition_is_refused(store) -> None:
    assert create(store, items=4) is True
    assert create(store, items=4) is False
    with pytest.raises(GiveawayError, match="exists as market 3 booth 'lamp-stall' with 4 items"):
        create(store, items=5)
    assert giveaway_state(store, giveaway_id="lamps").items == 4


def test_an_unknown_giveaway_is_named(store) -> None:
    with pytest.raises(GiveawayUnknown, match="no giveaway 'nothing'"):
        claim(store, "ada", giveaway_id="nothing")
    with pytest.raises(GiveawayUnknown, match="no giveaway 'nothing'"):
        giveaway_state(store, giveaway_id="nothing")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"items": 0}, "items must be >= 1, got 0"),
        ({"items": 10_001}, "items must be 1..10000, got 10001"),
        ({"items": "5"}, "items must be a whole number, got '5'"),
        ({"giveaway_id": ""}, "giveaway_id must be a non-empty string"),
        ({"booth": None}, "booth must be a non-empty string"),
        ({"market_id": -1}, "market_id must be >= 0, got -1"),
    ],
)
def test_a_bad_giveaway_is_refused_with_what_was_wrong(store, change, message) -> None:
    giveaway = {"giveaway_id": "g", "market_id": 1, "booth": "b", "items": 5, "at_ms": 0}
    with pytest.raises(PersistenceError) as caught:
        giveaway_create(store, **{**giveaway, **change})
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"character_id": ""}, "character_id must be a non-empty string"),
        ({"claim_id": 7}, "claim_id must be a non-empty string"),
        ({"at_ms": -1}, "at_ms must be >= 0, got -1"),
    ],
)
def test_a_bad_claim_is_refused_with_what_was_wrong(store, change, message) -> None:
    create(store, items=2)
    request = {"giveaway_id": "lamps", "character_id": "ada", "claim_id": "k", "at_ms": 0}
    with pytest.raises(PersistenceError) as caught:
        giveaway_claim(store, **{**request, **change})
    assert message in str(caught.value)
    assert giveaway_state(store, giveaway_id="lamps").claimed == 0


def test_concurrent_claims_from_threads_never_give_one_item_twice(store) -> None:
    items, characters = 30, 40
    create(store, items=items)
    answers: dict[str, list[Claim | str]] = {f"c{n}": [] for n in range(characters)}
    start = threading.Barrier(8)

    def claim_many(thread: int) -> None:
        start.wait(timeout=60)
        # Every character is claimed for by two threads, each with its own claim id.
        for number in range(thread % 4, characters, 4):
            character = f"c{number}"
            try:
                answers[character].append(claim(store, character, f"{character}-t{thread}"))
            except GiveawayExhausted:
                answers[character].append("exhausted")

    threads = [threading.Thread(target=claim_many, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    stored = giveaway_claims(store, giveaway_id="lamps")
    acks = {
        c.claim_id: (c.character_id, c.item)
        for said in answers.values()
        for c in said
        if isinstance(c, Claim)
    }
    assert claims_problems(acks=acks, claims=stored, items=items) == []
    assert sorted(c.item for c in stored) == list(range(items))
    for said in answers.values():
        assert len(said) == 2 and (said[0] == said[1] or "exhausted" in said)


def test_control_the_checker_finds_each_broken_promise() -> None:
    def made(character: str, item: int, claim_id: str | None = None) -> Claim:
        return Claim("g", character, claim_id or f"k-{character}", item, 0)

    honest = [made("ada", 0), made("bob", 1)]
    acks = {"k-ada": ("ada", 0), "k-bob": ("bob", 1)}
    assert claims_problems(acks=acks, claims=honest, items=2) == []
    assert claims_problems(acks={**acks, "k-cy": ("cy", 1)}, claims=honest, items=2) == [
        "acknowledged claim k-cy (item 1) is lost"
    ]
    twice = [made("ada", 0), made("bob", 0)]
    assert "item 0 is held by ada, bob" in claims_problems(acks={}, claims=twice, items=2)
    greedy = [made("ada", 0), made("ada", 1, "k-2")]
    assert "ada holds items 0, 1" in claims_problems(acks={}, claims=greedy, items=2)
    over = [made("ada", 0), made("bob", 1), made("cy", 2)]
    assert "3 claims of 2 items" in claims_problems(acks={}, claims=over, items=2)
    moved = claims_problems(acks={"k-ada": ("ada", 1)}, claims=honest, items=2)
    assert moved == ["claim k-ada was acknowledged as item 1 for ada, stored as item 0 for ada"]
