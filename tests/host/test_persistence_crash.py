"""Giveaway claims survive a writer killed at random: no acknowledged claim lost, none doubled.

A writer process (tests/host/store_harness.py) serves claims over its pipes and says
ACK only once `giveaway_claim` has returned. The test kills it with SIGKILL at seeded
random points, restarts it and retries every claim it had no answer to. At the end
every ACK must be in the store with the item it named, no item held twice, no
character holding two, and no more claims than items. The control runs a writer that
says ACK before it commits and shows the same check catches the lost claim.
"""

import os
import queue
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from host.giveaways import giveaway_claims
from tests.host.store_harness import StorePlace, claims_problems, store_place
from tests.subprocesses import REPO_ROOT

ITEMS = 24
KILLS = 12
ANSWER_TIMEOUT_S = 60  # generous: a loaded machine may take long, a right one always answers


@pytest.fixture(params=["sqlite", "postgres"])
def place(request, tmp_path: Path):
    with store_place(request, tmp_path) as found:
        yield found


_started: list[subprocess.Popen] = []


@pytest.fixture(autouse=True)
def no_writer_left_running():
    """A failing test leaves no writer process behind."""
    yield
    while _started:
        process = _started.pop()
        if process.poll() is None:
            process.kill()
            process.wait(timeout=ANSWER_TIMEOUT_S)


class Writer:
    """A claim-serving writer process and the lines it has said."""

    def __init__(self, place: StorePlace, *, log: Path, ack_first: bool = False) -> None:
        arguments = [*place.arguments(), "--giveaway", "lamps", "--items", str(ITEMS)]
        self.log = log
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.host.store_harness", *arguments]
            + (["--ack-first"] if ack_first else []),
            cwd=REPO_ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log.open("a"),
            text=True,
            bufsize=1,
        )
        _started.append(self.process)
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        assert self.next_line() == "READY"

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.put(line.strip())
        self.lines.put(None)

    def next_line(self) -> str | None:
        try:
            return self.lines.get(timeout=ANSWER_TIMEOUT_S)
        except queue.Empty:
            raise AssertionError(
                f"the writer said nothing; its log: {self.log.read_text()}"
            ) from None

    def send(self, line: str) -> None:
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def kill(self) -> list[str]:
        """SIGKILL; the lines it wrote before dying, which its callers were told."""
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=ANSWER_TIMEOUT_S)
        said = []
        while (line := self.next_line()) is not None:
            said.append(line)
        return said

    def stop(self) -> None:
        self.process.stdin.close()
        assert self.process.wait(timeout=ANSWER_TIMEOUT_S) == 0, self.log.read_text()
        assert self.next_line() is None


def claim_requests(rng: random.Random) -> list[tuple[str, str]]:
    """(claim id, character): 30 characters for 24 items, 8 of them asking twice."""
    characters = [f"c{number}" for number in range(30)]
    requests = [(f"k-{c}-a", c) for c in characters]
    requests += [(f"k-{c}-b", c) for c in rng.sample(characters, 8)]
    rng.shuffle(requests)
    return requests


@pytest.mark.parametrize("seed", [7, 2026])
def test_no_acknowledged_claim_is_lost_or_doubled_across_kills(place, tmp_path, seed) -> None:
    rng = random.Random(seed)
    pending = claim_requests(rng)
    character_of = dict(pending)
    acks: dict[str, tuple[str, int]] = {}
    exhausted: set[str] = set()
    log = tmp_path / "writer.log"

    def take(line: str) -> None:
        word, claim_id, *rest = line.split()
        if word == "ACK":
            acks[claim_id] = (character_of[claim_id], int(rest[0]))
        else:
            assert word == "EXHAUSTED", line
            exhausted.add(claim_id)
        pending.remove(next(p for p in pending if p[0] == claim_id))

    kills = 0
    while pending:
        writer = Writer(place, log=log)
        kill_after = rng.randint(0, 2) if kills < KILLS else None
        answered = 0
        while pending:
            writer.send("CLAIM {} {}".format(*pending[0]))
            if answered == kill_after:
                # Sometimes before the claim commits, sometimes during, sometimes after.
                time.sleep(rng.choice([0.0, rng.uniform(0, 0.001), rng.uniform(0, 0.004)]))
                for line in writer.kill():
                    take(line)
                kills += 1
                break
            take(writer.next_line())
            answered += 1
        else:
            writer.stop()

    store = place.open()
    try:
        claims = giveaway_claims(store, giveaway_id="lamps")
        events = store.critical_events(kind="giveaway_claim")
    finally:
        store.close()
    assert kills == KILLS
    assert claims_problems(acks=acks, claims=claims, items=ITEMS) == []
    assert len(claims) == ITEMS  # 30 characters asked: every item went
    holders = {c.character_id for c in claims}
    assert not {character_of[k] for k in exhausted} & holders
    assert sorted((e.payload["claim_id"], e.payload["item"]) for e in events) == sorted(
        (c.claim_id, c.item) for c in claims
    )


def test_control_a_writer_that_acknowledges_before_committing_loses_a_claim(
    place, tmp_path
) -> None:
    writer = Writer(place, log=tmp_path / "writer.log", ack_first=True)
    writer.send("CLAIM k-ada ada")
    said = writer.next_line()
    assert said == "ACK k-ada 0"
    assert writer.kill() == []  # killed between its answer and its commit
    store = place.open()
    try:
        claims = giveaway_claims(store, giveaway_id="lamps")
    finally:
        store.close()
    assert claims_problems(acks={"k-ada": ("ada", 0)}, claims=claims, items=ITEMS) == [
        "acknowledged claim k-ada (item 0) is lost"
    ]
